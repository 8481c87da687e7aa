//! Names and labels of the objects the operator creates. Deterministic names make creation
//! idempotent: a second create of the same attempt answers `AlreadyExists`, which is success.

use sha2::{Digest, Sha256};

pub const JOB: &str = "tessera.dev/job";
pub const JOB_UID: &str = "tessera.dev/job-uid";
pub const SHARD: &str = "tessera.dev/shard";
pub const ATTEMPT: &str = "tessera.dev/attempt";
pub const ROLE: &str = "tessera.dev/role";
pub const POOL: &str = "tessera.dev/pool";
/// Shard pods: `shard / SHARDS_PER_BLOCK`. The succeeded pods of a block whose shards are all
/// accounted go in one delete-collection request, not one delete each.
pub const SHARD_BLOCK: &str = "tessera.dev/shard-block";
pub const SHARDS_PER_BLOCK: u32 = 256;
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGER: &str = "tessera-operator";
/// Merge pods: their name after the job's (`merge-4-0`, `preview-2-3`, `manifest-0`). Finished
/// merge pods the ledger holds go several at a time, in one delete-collection request that
/// names exactly them (`tessera.dev/merge-id in (…)`).
pub const MERGE_ID: &str = "tessera.dev/merge-id";
/// Annotation on merge pods: the attempt map the merge read, so a failed merge's verdict is
/// applied to exactly those attempts.
pub const MERGE_ATTEMPTS: &str = "tessera.dev/merge-attempts";
/// Annotation on merge pods: their step (`tessera_shard::contract::MergeStep` as JSON): the
/// frame chunks they merge, the chunk they preview, or the job manifest.
pub const MERGE_STEP: &str = "tessera.dev/merge-step";

/// Annotation on a shard pod evicted for a higher-priority job, or because Kueue evicted its
/// job's Workload: by whom (its attempt is recorded as `Preempted`).
pub const PREEMPTED_BY: &str = "tessera.dev/preempted-by";

/// Finalizer on shard pods: the pod object stays until its attempt is in the job's ledger.
pub const LEDGER_FINALIZER: &str = "tessera.dev/ledger";

/// Finalizer on RenderJobs: the job's figures are moved into its pool's GPU-hour ledger before
/// it goes (operator/src/job_usage.rs).
pub const USAGE_FINALIZER: &str = "tessera.dev/usage";

pub const ROLE_SHARD: &str = "shard";
pub const ROLE_MERGE: &str = "merge";

/// Kubernetes label values and host names stop at 63 characters.
const MAX_NAME: usize = 63;

/// `<job>-<shard>-<attempt>`, shortened with a hash of the job name when too long.
pub fn shard_pod_name(job: &str, shard: u32, attempt: u32) -> String {
    fit(job, &format!("-{shard}-{attempt}"))
}

/// `<job>-merge-<first chunk>-<attempt>`: a merge of frame chunks from `first` on.
pub fn merge_pod_name(job: &str, first: u32, attempt: u32) -> String {
    pod_name_of_merge(job, &merge_id(first, attempt))
}

/// `<job>-preview-<chunk>-<splits>`: a preview of one frame chunk from its first `splits`
/// sample splits.
pub fn preview_pod_name(job: &str, chunk: u32, splits: u32) -> String {
    pod_name_of_merge(job, &preview_id(chunk, splits))
}

/// `<job>-manifest-<attempt>`: the job manifest, written last.
pub fn manifest_pod_name(job: &str, attempt: u32) -> String {
    pod_name_of_merge(job, &manifest_id(attempt))
}

/// The [`MERGE_ID`] of a merge of frame chunks from `first` on.
pub fn merge_id(first: u32, attempt: u32) -> String {
    format!("merge-{first}-{attempt}")
}

pub fn preview_id(chunk: u32, splits: u32) -> String {
    format!("preview-{chunk}-{splits}")
}

pub fn manifest_id(attempt: u32) -> String {
    format!("manifest-{attempt}")
}

/// `<job>-<merge id>`.
pub fn pod_name_of_merge(job: &str, merge_id: &str) -> String {
    fit(job, &format!("-{merge_id}"))
}

/// The job name as a label value (label values stop at 63 characters).
pub fn job_label_value(job: &str) -> String {
    fit(job, "")
}

fn fit(stem: &str, suffix: &str) -> String {
    if stem.len() + suffix.len() <= MAX_NAME {
        return format!("{stem}{suffix}");
    }
    let hash = hex8(stem);
    let keep = MAX_NAME - suffix.len() - hash.len() - 1;
    let prefix = stem[..keep.min(stem.len())].trim_end_matches(['-', '.']);
    format!("{prefix}-{hash}{suffix}")
}

fn hex8(text: &str) -> String {
    Sha256::digest(text.as_bytes())[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept() {
        assert_eq!(shard_pod_name("shot010", 12, 0), "shot010-12-0");
        assert_eq!(merge_pod_name("shot010", 4, 1), "shot010-merge-4-1");
        assert_eq!(preview_pod_name("shot010", 4, 2), "shot010-preview-4-2");
        assert_eq!(manifest_pod_name("shot010", 0), "shot010-manifest-0");
        assert_eq!(job_label_value("shot010"), "shot010");
    }

    #[test]
    fn long_names_are_shortened_deterministically_and_stay_distinct() {
        let long = "a".repeat(60) + "-lighting-pass";
        let name = shard_pod_name(&long, 99999, 19);
        assert!(name.len() <= 63, "{name}");
        assert!(name.ends_with("-99999-19"));
        assert_eq!(name, shard_pod_name(&long, 99999, 19));
        let other = "a".repeat(60) + "-lighting-pasS";
        assert_ne!(shard_pod_name(&other, 99999, 19), name);
        assert!(job_label_value(&long).len() <= 63);
    }
}
