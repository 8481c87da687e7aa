//! The API access the operator needs, and a start-up check of it.
//!
//! Kubernetes reports a missing `watch` permission only as a failing watch later (kube#1132),
//! so the operator asks the API server up front (SelfSubjectAccessReview, which every
//! authenticated user may do) and refuses to start with the list of missing rules. The Helm
//! chart's RBAC grants exactly [`REQUIRED`]; the Helm end-to-end test compares the two.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::Client;
use kube::api::{Api, PostParams};

use crate::{Error, Result};

/// One permission: `verb` on `group`/`resource` (with `/subresource`), cluster-wide or in
/// the leader-election Lease's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub group: &'static str,
    pub resource: &'static str,
    pub verb: &'static str,
    pub scope: Scope,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace (or a cluster-scoped resource).
    Cluster,
    /// Only the namespace of the leader-election Lease.
    LeaseNamespace,
}

const fn cluster(group: &'static str, resource: &'static str, verb: &'static str) -> Access {
    Access {
        group,
        resource,
        verb,
        scope: Scope::Cluster,
    }
}

const fn lease(verb: &'static str) -> Access {
    Access {
        group: "coordination.k8s.io",
        resource: "leases",
        verb,
        scope: Scope::LeaseNamespace,
    }
}

/// Everything the operator does against the API, and nothing more.
pub const REQUIRED: &[Access] = &[
    // Watches (reflectors list, then watch).
    cluster("tessera.dev", "renderjobs", "list"),
    cluster("tessera.dev", "renderjobs", "watch"),
    cluster("tessera.dev", "renderpools", "get"), // a fresh ledger when a job is deleted
    cluster("tessera.dev", "renderpools", "list"),
    cluster("tessera.dev", "renderpools", "watch"),
    cluster("", "pods", "list"),
    cluster("", "pods", "watch"),
    cluster("", "nodes", "list"),
    cluster("", "nodes", "watch"),
    cluster("", "namespaces", "list"),
    cluster("", "namespaces", "watch"),
    // Writes.
    cluster("", "pods", "create"),
    cluster("", "pods", "patch"), // drop the ledger finalizer once an attempt is accounted
    cluster("", "pods", "delete"),
    cluster("", "pods", "deletecollection"), // a block's succeeded shard pods at once
    cluster("", "pods/eviction", "create"),  // preemption inside a pool
    cluster("tessera.dev", "renderjobs", "patch"), // the usage finalizer (job_usage.rs)
    cluster("tessera.dev", "renderjobs", "delete"), // ttlSecondsAfterFinished
    cluster("tessera.dev", "renderjobs/status", "patch"),
    cluster("tessera.dev", "renderpools/status", "patch"),
    cluster("events.k8s.io", "events", "create"),
    cluster("events.k8s.io", "events", "patch"),
    // Leader election.
    lease("get"),
    lease("create"),
    lease("patch"),
];

/// What the Kueue integration adds (the chart grants it with `kueue.enabled`): the job's
/// Workloads and the ResourceFlavors their admissions name. Not checked at start-up: without
/// it the operator runs as if Kueue were not installed (kueue/mod.rs, `served`).
pub const KUEUE: &[Access] = &[
    cluster("kueue.x-k8s.io", "workloads", "list"),
    cluster("kueue.x-k8s.io", "workloads", "watch"),
    cluster("kueue.x-k8s.io", "workloads", "create"),
    cluster("kueue.x-k8s.io", "workloads", "delete"), // a finished Workload of a re-render
    cluster("kueue.x-k8s.io", "workloads/status", "patch"), // quota back, reclaimable, finished
    cluster("kueue.x-k8s.io", "resourceflavors", "list"),
    cluster("kueue.x-k8s.io", "resourceflavors", "watch"),
];

impl Access {
    /// `verb group/resource` as RBAC and `kubectl auth can-i` write it.
    pub fn describe(&self) -> String {
        let group = if self.group.is_empty() {
            String::new()
        } else {
            format!(".{}", self.group)
        };
        let (resource, sub) = self
            .resource
            .split_once('/')
            .map_or((self.resource, String::new()), |(r, s)| {
                (r, format!("/{s}"))
            });
        let scope = match self.scope {
            Scope::Cluster => "in every namespace",
            Scope::LeaseNamespace => "in the Lease namespace",
        };
        format!("{} {resource}{group}{sub} {scope}", self.verb)
    }

    fn review(&self, lease_namespace: &str) -> SelfSubjectAccessReview {
        let (resource, subresource) = match self.resource.split_once('/') {
            Some((resource, sub)) => (resource, Some(sub.to_string())),
            None => (self.resource, None),
        };
        SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some(self.group.into()),
                    resource: Some(resource.into()),
                    subresource,
                    verb: Some(self.verb.into()),
                    namespace: match self.scope {
                        Scope::Cluster => None,
                        Scope::LeaseNamespace => Some(lease_namespace.into()),
                    },
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

/// Fails with every missing permission named when RBAC does not allow all of [`REQUIRED`]
/// (the Lease permissions only `with_leases`).
pub async fn check(client: &Client, lease_namespace: &str, with_leases: bool) -> Result<()> {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut missing = Vec::new();
    for access in REQUIRED
        .iter()
        .filter(|a| with_leases || a.scope != Scope::LeaseNamespace)
    {
        let answer = reviews
            .create(&PostParams::default(), &access.review(lease_namespace))
            .await?;
        if !answer.status.is_some_and(|s| s.allowed) {
            missing.push(access.describe());
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Forbidden(missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_read_as_rbac_writes_them() {
        assert_eq!(
            cluster("tessera.dev", "renderjobs/status", "patch").describe(),
            "patch renderjobs.tessera.dev/status in every namespace"
        );
        assert_eq!(
            lease("get").describe(),
            "get leases.coordination.k8s.io in the Lease namespace"
        );
        assert_eq!(
            cluster("", "pods", "create").describe(),
            "create pods in every namespace"
        );
    }

    #[test]
    fn a_status_permission_is_reviewed_as_a_subresource() {
        let review = cluster("tessera.dev", "renderpools/status", "patch").review("ops");
        let attributes = review.spec.resource_attributes.unwrap();
        assert_eq!(attributes.resource.as_deref(), Some("renderpools"));
        assert_eq!(attributes.subresource.as_deref(), Some("status"));
        assert_eq!(attributes.namespace, None);
        let review = lease("patch").review("ops");
        assert_eq!(
            review
                .spec
                .resource_attributes
                .unwrap()
                .namespace
                .as_deref(),
            Some("ops")
        );
    }

    #[test]
    fn nothing_is_required_twice() {
        for (i, a) in REQUIRED.iter().enumerate() {
            assert!(!REQUIRED[i + 1..].contains(a), "{} twice", a.describe());
        }
    }
}
