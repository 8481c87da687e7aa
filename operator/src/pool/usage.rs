//! The GPU-hour ledger of a pool, per namespace: GPU-seconds, shards rendered and cost — the
//! "settle" step of a render farm's accounting. Pure.
//!
//! Each job's own ledger (`operator/src/ledger.rs`) accounts every shard attempt exactly once
//! into the job's status. A pool's figures for a namespace are then the sum over its jobs that
//! exist plus what its deleted jobs had used: a job carries the finalizer `tessera.dev/usage`,
//! and before it goes its figures are moved into the pool's `archived*` fields, its UID
//! recorded in `status.archivedJobs` so a retried move counts once ([`archive`]). Totals only
//! grow, so a budget period's use is the total now minus the total when the period began.

use std::collections::BTreeMap;

use jiff::civil::{Date, Weekday};
use jiff::{Timestamp, tz::TimeZone};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{BudgetPeriod, NamespaceUsage, RenderJob, RenderPoolStatus};
use crate::ledger::{finite, round_ms};

/// Archived job UIDs a pool's status keeps (the CRD's bound).
pub const MAX_ARCHIVED_JOBS: usize = 64;

/// One job's figures, as its ledger holds them.
#[derive(Debug, Clone, PartialEq)]
pub struct JobUsage {
    pub namespace: String,
    pub uid: String,
    /// GPU-seconds as requested (a time-sliced share counts 1 here).
    pub gpu_seconds: f64,
    /// Shard attempts that succeeded.
    pub shards: u64,
}

impl JobUsage {
    pub fn of(job: &RenderJob) -> Self {
        let status = job.status.clone().unwrap_or_default();
        Self {
            namespace: job.metadata.namespace.clone().unwrap_or_default(),
            uid: job.metadata.uid.clone().unwrap_or_default(),
            gpu_seconds: finite(status.gpu_seconds),
            shards: status
                .succeeded_durations
                .iter()
                .map(|(_, n)| u64::from(n))
                .sum(),
        }
    }
}

/// How the pool prices and counts GPU time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pricing {
    /// A share of a time-sliced GPU is 1/shares of a GPU.
    pub shares_per_gpu: u32,
    pub price_per_gpu_hour: Option<f64>,
}

/// The usage entries from the recorded ones (their archived figures and budget periods), the
/// jobs that exist and have not been archived, and each namespace's budget period. `now` starts
/// or rolls over periods.
pub fn usage(
    recorded: &RenderPoolStatus,
    live: &[JobUsage],
    pricing: Pricing,
    period_of: &dyn Fn(&str) -> Option<BudgetPeriod>,
    now: Timestamp,
) -> Vec<NamespaceUsage> {
    let shares = f64::from(pricing.shares_per_gpu.max(1));
    let mut by_namespace: BTreeMap<String, NamespaceUsage> = recorded
        .usage
        .iter()
        .map(|u| {
            let entry = NamespaceUsage {
                gpu_seconds: u.archived_gpu_seconds,
                shards: u.archived_shards,
                ..u.clone()
            };
            (u.namespace.clone(), entry)
        })
        .collect();
    for job in live
        .iter()
        .filter(|j| !recorded.archived_jobs.contains(&j.uid))
    {
        let entry = by_namespace
            .entry(job.namespace.clone())
            .or_insert_with(|| NamespaceUsage {
                namespace: job.namespace.clone(),
                ..Default::default()
            });
        entry.gpu_seconds += job.gpu_seconds / shares;
        entry.shards += job.shards;
    }
    for entry in by_namespace.values_mut() {
        entry.gpu_seconds = round_ms(entry.gpu_seconds);
        entry.cost = pricing
            .price_per_gpu_hour
            .map(|price| round_ms(entry.gpu_seconds / 3600.0 * price));
        match period_of(&entry.namespace) {
            None => {
                entry.period_start = None;
                entry.period_gpu_seconds = 0.0;
                entry.period_baseline_gpu_seconds = 0.0;
            }
            Some(period) => {
                let start = period_start(period, now);
                if entry.period_start.as_ref().map(|t| t.0) != Some(start) {
                    // A namespace new to the ledger used nothing before: all of it counts. An
                    // older one starts the period (or its first budget) from its total now.
                    let known = recorded
                        .usage
                        .iter()
                        .any(|u| u.namespace == entry.namespace);
                    entry.period_start = Some(Time(start));
                    entry.period_baseline_gpu_seconds = if known { entry.gpu_seconds } else { 0.0 };
                }
                entry.period_gpu_seconds =
                    round_ms((entry.gpu_seconds - entry.period_baseline_gpu_seconds).max(0.0));
            }
        }
    }
    by_namespace.into_values().collect()
}

/// The pool's status with `job`'s figures moved into its namespace's archived figures, or
/// `None` when they were moved already.
pub fn archive(
    recorded: &RenderPoolStatus,
    job: &JobUsage,
    pricing: Pricing,
) -> Option<RenderPoolStatus> {
    if recorded.archived_jobs.contains(&job.uid) {
        return None;
    }
    let mut next = recorded.clone();
    let position = next.usage.iter().position(|u| u.namespace == job.namespace);
    let entry = match position {
        Some(i) => &mut next.usage[i],
        None => {
            next.usage.push(NamespaceUsage {
                namespace: job.namespace.clone(),
                ..Default::default()
            });
            next.usage.sort_by(|a, b| a.namespace.cmp(&b.namespace));
            let i = next
                .usage
                .iter()
                .position(|u| u.namespace == job.namespace)?;
            &mut next.usage[i]
        }
    };
    let shares = f64::from(pricing.shares_per_gpu.max(1));
    entry.archived_gpu_seconds = round_ms(entry.archived_gpu_seconds + job.gpu_seconds / shares);
    entry.archived_shards += job.shards;
    next.archived_jobs.push(job.uid.clone());
    let excess = next.archived_jobs.len().saturating_sub(MAX_ARCHIVED_JOBS);
    next.archived_jobs.drain(..excess);
    Some(next)
}

/// The start of the budget period `now` falls in, in UTC.
pub fn period_start(period: BudgetPeriod, now: Timestamp) -> Timestamp {
    let date = now.to_zoned(TimeZone::UTC).date();
    let first: Date = match period {
        BudgetPeriod::Day => date,
        BudgetPeriod::Week => {
            let back = i64::from(date.weekday().since(Weekday::Monday));
            date.checked_sub(jiff::Span::new().days(back))
                .unwrap_or(date)
        }
        BudgetPeriod::Month => date.first_of_month(),
    };
    first
        .to_zoned(TimeZone::UTC)
        .map(|z| z.timestamp())
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(namespace: &str, uid: &str, gpu_seconds: f64, shards: u64) -> JobUsage {
        JobUsage {
            namespace: namespace.into(),
            uid: uid.into(),
            gpu_seconds,
            shards,
        }
    }

    const PRICED: Pricing = Pricing {
        shares_per_gpu: 1,
        price_per_gpu_hour: Some(2.0),
    };

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn namespaces_sum_their_jobs_and_are_priced() {
        let live = [
            job("a", "1", 3600.0, 4),
            job("a", "2", 1800.0, 2),
            job("b", "3", 36.0, 1),
        ];
        let usage = usage(
            &RenderPoolStatus::default(),
            &live,
            PRICED,
            &|_| None,
            at("2026-11-30T12:00:00Z"),
        );
        assert_eq!(usage.len(), 2);
        assert_eq!(
            (usage[0].gpu_seconds, usage[0].shards, usage[0].cost),
            (5400.0, 6, Some(3.0))
        );
        assert_eq!(
            (usage[1].namespace.as_str(), usage[1].cost),
            ("b", Some(0.02))
        );
    }

    #[test]
    fn a_deleted_job_s_figures_stay_and_are_moved_once() {
        let live = [job("a", "1", 100.0, 2), job("a", "2", 50.0, 1)];
        let now = at("2026-11-30T12:00:00Z");
        let before = RenderPoolStatus {
            usage: usage(&RenderPoolStatus::default(), &live, PRICED, &|_| None, now),
            ..Default::default()
        };
        // Job 1 is deleted: its figures move; the totals do not change.
        let archived = archive(&before, &live[0], PRICED).unwrap();
        assert_eq!(archive(&archived, &live[0], PRICED), None, "moved twice");
        let after = usage(&archived, &live[1..], PRICED, &|_| None, now);
        assert_eq!((after[0].gpu_seconds, after[0].shards), (150.0, 3));
        assert_eq!(after[0].archived_gpu_seconds, 100.0);
        // While the deleted job is still in the cache, it is not counted twice.
        let still = usage(&archived, &live, PRICED, &|_| None, now);
        assert_eq!(still[0].gpu_seconds, 150.0);
    }

    #[test]
    fn time_sliced_shares_count_as_their_fraction() {
        let sliced = Pricing {
            shares_per_gpu: 4,
            price_per_gpu_hour: None,
        };
        let usage = usage(
            &RenderPoolStatus::default(),
            &[job("a", "1", 400.0, 1)],
            sliced,
            &|_| None,
            at("2026-11-30T12:00:00Z"),
        );
        assert_eq!((usage[0].gpu_seconds, usage[0].cost), (100.0, None));
    }

    #[test]
    fn budget_periods_start_on_calendar_boundaries_and_roll_over() {
        let now = at("2026-11-26T15:30:00Z"); // a Thursday
        assert_eq!(
            period_start(BudgetPeriod::Day, now),
            at("2026-11-26T00:00:00Z")
        );
        assert_eq!(
            period_start(BudgetPeriod::Week, now),
            at("2026-11-23T00:00:00Z")
        );
        assert_eq!(
            period_start(BudgetPeriod::Month, now),
            at("2026-11-01T00:00:00Z")
        );
        let daily = |_: &str| Some(BudgetPeriod::Day);
        let first = RenderPoolStatus {
            usage: usage(
                &RenderPoolStatus::default(),
                &[job("a", "1", 100.0, 1)],
                PRICED,
                &daily,
                now,
            ),
            ..Default::default()
        };
        // A namespace new to the ledger: everything it used counts.
        assert_eq!(first.usage[0].period_gpu_seconds, 100.0);
        let later = usage(&first, &[job("a", "1", 160.0, 2)], PRICED, &daily, now);
        assert_eq!(later[0].period_gpu_seconds, 160.0);
        // A budget given to a namespace the ledger knew counts from then.
        let unbudgeted = RenderPoolStatus {
            usage: usage(
                &RenderPoolStatus::default(),
                &[job("a", "1", 100.0, 1)],
                PRICED,
                &|_| None,
                now,
            ),
            ..Default::default()
        };
        let budgeted = usage(&unbudgeted, &[job("a", "1", 130.0, 1)], PRICED, &daily, now);
        assert_eq!(budgeted[0].period_gpu_seconds, 0.0);
        let budgeted = RenderPoolStatus {
            usage: budgeted,
            ..Default::default()
        };
        let then = usage(&budgeted, &[job("a", "1", 150.0, 1)], PRICED, &daily, now);
        assert_eq!(then[0].period_gpu_seconds, 20.0);
        // The next day: a new period, counted from the total at its start.
        let next_day = usage(
            &RenderPoolStatus {
                usage: later.clone(),
                ..Default::default()
            },
            &[job("a", "1", 170.0, 2)],
            PRICED,
            &daily,
            at("2026-11-27T00:00:01Z"),
        );
        assert_eq!(next_day[0].period_gpu_seconds, 0.0);
        assert_eq!(
            next_day[0].period_start,
            Some(Time(at("2026-11-27T00:00:00Z")))
        );
    }
}
