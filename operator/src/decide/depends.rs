//! Job dependencies (`spec.dependsOn`, "render B after A"): whether a job may start, from the
//! states of the jobs it names in its namespace, and — for frame-by-frame dependencies
//! ("frame N of B after frame N of A") — which of its shards may run yet. Pure: the
//! controller reads the jobs from its cache and hands their states here.

use tessera_shard::{FrameList, ShardPlan};

use super::assess::ReadyShard;
use crate::api::RenderJob;
use crate::conditions::{self, COMPLETE, FAILED};

/// Where one dependency stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependencyState {
    /// No such job (yet): it is waited for.
    Missing,
    /// Exists, not finished: its phase, for the message.
    Pending(String),
    Complete,
    /// Failed, with its reason.
    Failed(String),
    /// A frame-by-frame dependency, not finished: the frames it has merged so far.
    Frames(Option<FrameList>),
}

impl DependencyState {
    pub fn of(job: Option<&RenderJob>, frame_by_frame: bool) -> Self {
        let Some(job) = job else {
            return DependencyState::Missing;
        };
        let status = job.status.clone().unwrap_or_default();
        if conditions::is_true(&status.conditions, COMPLETE) {
            return DependencyState::Complete;
        }
        if let Some(failed) = status
            .conditions
            .iter()
            .find(|c| c.type_ == FAILED && c.status == "True")
        {
            return DependencyState::Failed(failed.reason.clone());
        }
        if frame_by_frame {
            let done = status
                .frames_done
                .as_deref()
                .and_then(|f| FrameList::parse(f).ok());
            return DependencyState::Frames(done);
        }
        let phase = status
            .phase
            .map(|p| format!("{p:?}"))
            .unwrap_or_else(|| "new".into());
        DependencyState::Pending(phase)
    }
}

/// Whether the job may start.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Gate {
    /// No dependencies, or all Complete (or the job already started: they gate only the start).
    #[default]
    Open,
    /// Waiting, with what for.
    Waiting(String),
    /// A dependency failed, or the dependencies form a cycle: the job can never start.
    Broken {
        reason: &'static str,
        message: String,
    },
}

/// The gate for a job from its dependencies' states (in `spec.dependsOn` order) and the cycle
/// through it, if any.
pub fn gate(dependencies: &[(String, DependencyState)], cycle: Option<&[String]>) -> Gate {
    if let Some(cycle) = cycle {
        return Gate::Broken {
            reason: "DependencyCycle",
            message: format!("spec.dependsOn forms a cycle: {}", cycle.join(" -> ")),
        };
    }
    if let Some((name, reason)) = dependencies.iter().find_map(|(name, state)| match state {
        DependencyState::Failed(reason) => Some((name, reason)),
        _ => None,
    }) {
        return Gate::Broken {
            reason: "DependencyFailed",
            message: format!("job {name}, which this job depends on, failed ({reason})"),
        };
    }
    let waiting: Vec<String> = dependencies
        .iter()
        .filter_map(|(name, state)| match state {
            // Frame-by-frame: the start is not gated, its shards are (see `FrameGate`).
            DependencyState::Complete | DependencyState::Failed(_) | DependencyState::Frames(_) => {
                None
            }
            DependencyState::Missing => Some(format!("{name} (does not exist yet)")),
            DependencyState::Pending(phase) => Some(format!("{name} ({phase})")),
        })
        .collect();
    if waiting.is_empty() {
        Gate::Open
    } else {
        Gate::Waiting(format!("waiting for job {}", waiting.join(", ")))
    }
}

/// Shards held back by frame-by-frame dependencies in this pass, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramesHeld {
    pub shards: u32,
    pub message: String,
}

/// Frame-by-frame dependencies that have not completed: a shard may run only once every frame
/// it renders is merged in each of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameGate {
    /// Each such dependency and the frames it has merged so far.
    pub waiting_on: Vec<(String, Option<FrameList>)>,
}

impl FrameGate {
    pub fn of(dependencies: &[(String, DependencyState)]) -> Self {
        Self {
            waiting_on: dependencies
                .iter()
                .filter_map(|(name, state)| match state {
                    DependencyState::Frames(done) => Some((name.clone(), done.clone())),
                    _ => None,
                })
                .collect(),
        }
    }

    pub fn allows(&self, frames: &[i64]) -> bool {
        self.waiting_on.iter().all(|(_, done)| {
            done.as_ref()
                .is_some_and(|done| frames.iter().all(|&f| done.contains(f)))
        })
    }

    /// Keeps the ready shards whose frames are merged in every dependency; returns how many
    /// it held back.
    pub fn hold_back(&self, ready: &mut Vec<ReadyShard>, plan: &ShardPlan) -> u32 {
        if self.waiting_on.is_empty() {
            return 0;
        }
        let before = ready.len();
        ready.retain(|r| plan.shard(r.shard).is_some_and(|s| self.allows(&s.frames)));
        (before - ready.len()) as u32
    }

    /// Why shards wait, for the `DependenciesReady` condition.
    pub fn message(&self, held: u32) -> String {
        let names: Vec<String> = self
            .waiting_on
            .iter()
            .map(|(name, done)| {
                let done = done.as_ref().map_or("none".to_string(), |d| d.to_string());
                format!("{name} (frames merged: {done})")
            })
            .collect();
        format!(
            "{held} shards wait for the same frames of job {}",
            names.join(", ")
        )
    }
}

/// The first cycle through `start` in the graph `depends_on` describes (names of one
/// namespace), as the path `start -> … -> start`. Walks at most `limit` jobs.
pub fn find_cycle(
    start: &str,
    depends_on: &dyn Fn(&str) -> Vec<String>,
    limit: usize,
) -> Option<Vec<String>> {
    let mut path = vec![start.to_string()];
    let mut stack = vec![depends_on(start).into_iter()];
    let mut visited = std::collections::BTreeSet::new();
    while let Some(next) = stack.last_mut().map(|it| it.next()) {
        match next {
            None => {
                stack.pop();
                path.pop();
            }
            Some(name) if name == start => {
                path.push(name);
                return Some(path);
            }
            Some(name) => {
                if visited.len() >= limit || !visited.insert(name.clone()) {
                    continue;
                }
                stack.push(depends_on(&name).into_iter());
                path.push(name);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps(list: &[(&str, DependencyState)]) -> Vec<(String, DependencyState)> {
        list.iter()
            .map(|(n, s)| (n.to_string(), s.clone()))
            .collect()
    }

    #[test]
    fn all_complete_opens_and_anything_else_waits_naming_it() {
        assert_eq!(gate(&[], None), Gate::Open);
        assert_eq!(
            gate(&deps(&[("a", DependencyState::Complete)]), None),
            Gate::Open
        );
        assert_eq!(
            gate(
                &deps(&[
                    ("a", DependencyState::Complete),
                    ("b", DependencyState::Pending("Rendering".into())),
                    ("c", DependencyState::Missing),
                ]),
                None
            ),
            Gate::Waiting("waiting for job b (Rendering), c (does not exist yet)".into())
        );
    }

    #[test]
    fn frame_by_frame_dependencies_hold_back_shards_of_frames_not_merged_there() {
        let frames = |text: &str| Some(FrameList::parse(text).unwrap());
        let states = deps(&[
            ("layout", DependencyState::Frames(frames("1-2"))),
            ("fx", DependencyState::Frames(frames("1-3"))),
        ]);
        assert_eq!(gate(&states, None), Gate::Open, "the start is not gated");
        let gate = FrameGate::of(&states);
        assert!(gate.allows(&[1, 2]));
        assert!(!gate.allows(&[2, 3]), "frame 3 is not merged in layout");
        assert!(!FrameGate::of(&deps(&[("a", DependencyState::Frames(None))])).allows(&[1]));
        assert!(FrameGate::default().allows(&[7]));
        // 4 frames, one shard each: frames 3-4 wait.
        let plan = ShardPlan::new(tessera_shard::PlanInput {
            frames: FrameList::parse("1-4").unwrap(),
            width: 4,
            height: 4,
            samples_per_pixel: 1,
            frames_per_shard: 1,
            tiles_x: 1,
            tiles_y: 1,
            sample_splits: 1,
        })
        .unwrap();
        let mut ready: Vec<ReadyShard> = (0..4)
            .map(|shard| ReadyShard {
                shard,
                attempt: 0,
                avoid: Default::default(),
            })
            .collect();
        assert_eq!(gate.hold_back(&mut ready, &plan), 2);
        assert_eq!(ready.iter().map(|r| r.shard).collect::<Vec<_>>(), [0, 1]);
        assert!(gate.message(2).contains("layout (frames merged: 1-2)"));
    }

    #[test]
    fn a_failed_dependency_or_a_cycle_breaks_the_job() {
        let failed = gate(
            &deps(&[("a", DependencyState::Failed("ShardFailed".into()))]),
            None,
        );
        assert!(
            matches!(failed, Gate::Broken { reason: "DependencyFailed", ref message }
            if message.contains("job a") && message.contains("ShardFailed"))
        );
        let graph = |name: &str| -> Vec<String> {
            match name {
                "b" => vec!["a".into()],
                "a" => vec!["x".into(), "c".into()],
                "c" => vec!["b".into()],
                _ => vec![],
            }
        };
        let cycle = find_cycle("b", &graph, 64).unwrap();
        assert_eq!(cycle, ["b", "a", "c", "b"]);
        assert!(
            matches!(gate(&[], Some(&cycle)), Gate::Broken { reason: "DependencyCycle", ref message }
            if message.contains("b -> a -> c -> b"))
        );
        assert_eq!(find_cycle("x", &graph, 64), None);
        // A cycle not through the job (a <-> c) is theirs to report, and the walk ends.
        let other = |name: &str| -> Vec<String> {
            match name {
                "b" => vec!["a".into()],
                "a" => vec!["c".into()],
                "c" => vec!["a".into()],
                _ => vec![],
            }
        };
        assert_eq!(find_cycle("b", &other, 64), None);
    }
}
