//! A pool's limits per namespace (`spec.namespacePolicies`): which policy governs a namespace,
//! and what it says of one job now — its effective priority, whether it may start shards (the
//! GPU-hour budget), and the namespace's cap on concurrent shards. Pure.

use std::collections::BTreeMap;

use kube::core::SelectorExt;

use crate::api::{NamespacePolicy, NamespaceUsage, PriorityAboveMax, RenderPool};

/// The first policy of the pool whose selector matches the namespace's labels.
pub fn policy_for<'a>(
    pool: &'a RenderPool,
    labels: &BTreeMap<String, String>,
) -> Option<&'a NamespacePolicy> {
    pool.spec.namespace_policies.iter().find(|policy| {
        match &policy.namespace_selector {
            None => true,
            // A selector the API server let through but kube cannot read matches nothing.
            Some(selector) => {
                kube::core::Selector::try_from(selector.clone()).is_ok_and(|s| s.matches(labels))
            }
        }
    })
}

/// What a namespace policy says of one job now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    /// The priority admission uses.
    pub priority: i32,
    /// The job's priority was lowered to the policy's maximum: why.
    pub clamped: Option<String>,
    /// The job asks for a priority the policy refuses: why.
    pub refused: Option<String>,
    /// The namespace's GPU-hour budget is spent: the figures.
    pub budget_spent: Option<String>,
    /// Shard pods the namespace may run on the pool at once.
    pub max_concurrent_shards: Option<u32>,
    /// The namespace runs as many shards as it may while this job waits: the figures (set by
    /// admission, which knows what the namespace holds).
    pub cap_reached: Option<String>,
    /// Shard pods Kueue admits the job to run at once (jobs that name a LocalQueue).
    pub queue_cap: Option<u32>,
    /// Kueue's word on the job: the `QueueAdmitted` condition.
    pub queue: Option<crate::kueue::QueueNote>,
}

/// The verdict for a job of `namespace` asking for `priority`, given the namespace's usage
/// entry in the pool's status.
pub fn verdict(
    policy: Option<&NamespacePolicy>,
    namespace: &str,
    priority: i32,
    usage: Option<&NamespaceUsage>,
) -> Verdict {
    let mut verdict = Verdict {
        priority,
        ..Default::default()
    };
    let Some(policy) = policy else {
        return verdict;
    };
    verdict.max_concurrent_shards = policy.max_concurrent_shards;
    if let Some(max) = policy.max_priority.filter(|max| priority > *max) {
        match policy.priority_above_max {
            PriorityAboveMax::Clamp => {
                verdict.priority = max;
                verdict.clamped = Some(format!(
                    "spec.priority {priority} is above namespace {namespace}'s maximum on this pool ({max}): the job runs at {max}"
                ));
            }
            PriorityAboveMax::Refuse => {
                verdict.refused = Some(format!(
                    "spec.priority {priority} is above namespace {namespace}'s maximum on this pool ({max})"
                ));
            }
        }
    }
    if let Some(budget) = &policy.gpu_hour_budget {
        let used = usage.map_or(0.0, |u| u.period_gpu_seconds) / 3600.0;
        if used >= budget.hours {
            let since = usage
                .and_then(|u| u.period_start.as_ref())
                .map_or_else(|| "the period's start".to_string(), |t| t.0.to_string());
            verdict.budget_spent = Some(format!(
                "namespace {namespace} used {used:.3} of its {} GPU-hours this {:?} (since {since}); \
                 new shards start when the budget is raised or the period rolls over",
                budget.hours, budget.period
            ));
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BudgetPeriod, GpuHourBudget};
    use serde_json::json;

    fn pool(policies: serde_json::Value) -> RenderPool {
        let mut pool = crate::decide::tests::pool_from_yaml();
        pool.spec.namespace_policies = serde_json::from_value(policies).unwrap();
        pool
    }

    #[test]
    fn the_first_matching_policy_governs_a_namespace() {
        let pool = pool(json!([
            {"namespaceSelector": {"matchLabels": {"team": "fx"}}, "maxConcurrentShards": 2},
            {"maxConcurrentShards": 8},
        ]));
        let fx = BTreeMap::from([("team".to_string(), "fx".to_string())]);
        assert_eq!(
            policy_for(&pool, &fx).unwrap().max_concurrent_shards,
            Some(2)
        );
        assert_eq!(
            policy_for(&pool, &BTreeMap::new())
                .unwrap()
                .max_concurrent_shards,
            Some(8)
        );
        assert!(policy_for(&crate::decide::tests::pool_from_yaml(), &fx).is_none());
    }

    #[test]
    fn priorities_above_the_maximum_are_clamped_or_refused() {
        let mut policy: NamespacePolicy =
            serde_json::from_value(json!({"maxPriority": 10})).unwrap();
        let clamped = verdict(Some(&policy), "fx", 50, None);
        assert_eq!(clamped.priority, 10);
        assert!(
            clamped
                .clamped
                .unwrap()
                .contains("above namespace fx's maximum")
        );
        assert_eq!(verdict(Some(&policy), "fx", 5, None).clamped, None);
        policy.priority_above_max = PriorityAboveMax::Refuse;
        let refused = verdict(Some(&policy), "fx", 50, None);
        assert!(refused.refused.is_some() && refused.clamped.is_none());
    }

    #[test]
    fn a_spent_budget_stops_new_shards_with_the_figures() {
        let policy = NamespacePolicy {
            gpu_hour_budget: Some(GpuHourBudget {
                hours: 2.0,
                period: BudgetPeriod::Month,
            }),
            ..serde_json::from_value(json!({})).unwrap()
        };
        let usage = |seconds: f64| NamespaceUsage {
            namespace: "fx".into(),
            period_gpu_seconds: seconds,
            ..Default::default()
        };
        assert_eq!(
            verdict(Some(&policy), "fx", 0, Some(&usage(7000.0))).budget_spent,
            None
        );
        let spent = verdict(Some(&policy), "fx", 0, Some(&usage(7200.0)))
            .budget_spent
            .unwrap();
        assert!(
            spent.contains("used 2.000 of its 2 GPU-hours this Month"),
            "{spent}"
        );
    }
}
