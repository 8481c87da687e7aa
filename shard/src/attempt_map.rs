//! A compact map from shard index to attempt number, for the shards whose attempt is not 0.
//!
//! Written as runs of equal attempts: `17:2,40-45:1`. Most shards succeed on their first
//! attempt (0) and are left out, so the map stays small even for 10,000-shard jobs, and a run
//! of retries after a node loss costs one item.

use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptMap {
    attempts: BTreeMap<u32, u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{item}` in attempt map `{text}` is not `SHARD:ATTEMPT` or `FIRST-LAST:ATTEMPT`")]
pub struct AttemptMapError {
    pub text: String,
    pub item: String,
}

/// The most shard entries one parse expands (four times the largest plan).
pub const MAX_EXPANDED: u64 = 400_000;

impl AttemptMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// The attempt recorded for `shard`; 0 when none is.
    pub fn get(&self, shard: u32) -> u32 {
        self.attempts.get(&shard).copied().unwrap_or(0)
    }

    pub fn set(&mut self, shard: u32, attempt: u32) {
        if attempt == 0 {
            self.attempts.remove(&shard);
        } else {
            self.attempts.insert(shard, attempt);
        }
    }

    /// Shards with a non-zero attempt, in index order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.attempts
            .iter()
            .map(|(&shard, &attempt)| (shard, attempt))
    }

    pub fn is_empty(&self) -> bool {
        self.attempts.is_empty()
    }

    /// Parses the compact form. Expansion is bounded: a map names at most
    /// [`MAX_EXPANDED`] shard entries in all (a plan has at most 100,000 shards), and items
    /// past that budget are ignored, so a hand-written map of huge or overlapping ranges costs
    /// a bounded amount of work instead of hanging its reader.
    pub fn parse(text: &str) -> Result<Self, AttemptMapError> {
        let mut map = Self::new();
        let mut budget = MAX_EXPANDED;
        for raw in text.split(',') {
            let item = raw.trim();
            if item.is_empty() {
                continue;
            }
            let error = || AttemptMapError {
                text: text.to_string(),
                item: item.to_string(),
            };
            let (shards, attempt) = item.split_once(':').ok_or_else(error)?;
            let attempt: u32 = attempt.trim().parse().map_err(|_| error())?;
            let (first, last) = match shards.split_once('-') {
                Some((first, last)) => (first.trim(), last.trim()),
                None => (shards.trim(), shards.trim()),
            };
            let first: u32 = first.parse().map_err(|_| error())?;
            let last: u32 = last.parse().map_err(|_| error())?;
            if last < first {
                return Err(error());
            }
            let wanted = u64::from(last - first) + 1;
            let take = wanted.min(budget);
            budget -= take;
            for shard in (first..=last).take(take as usize) {
                map.set(shard, attempt);
            }
        }
        Ok(map)
    }
}

impl fmt::Display for AttemptMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut runs: Vec<(u32, u32, u32)> = Vec::new();
        for (shard, attempt) in self.iter() {
            match runs.last_mut() {
                Some((_, last, run_attempt)) if *last + 1 == shard && *run_attempt == attempt => {
                    *last = shard
                }
                _ => runs.push((shard, shard, attempt)),
            }
        }
        for (i, (first, last, attempt)) in runs.into_iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if first == last {
                write!(f, "{first}:{attempt}")?;
            } else {
                write!(f, "{first}-{last}:{attempt}")?;
            }
        }
        Ok(())
    }
}

serde_as_string!(AttemptMap);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_runs_and_round_trips() {
        let mut map = AttemptMap::new();
        for shard in 40..=45 {
            map.set(shard, 1);
        }
        map.set(17, 2);
        map.set(46, 2);
        map.set(3, 0);
        assert_eq!(map.to_string(), "17:2,40-45:1,46:2");
        assert_eq!(AttemptMap::parse(&map.to_string()).unwrap(), map);
        assert_eq!(map.get(42), 1);
        assert_eq!(map.get(3), 0);
    }

    #[test]
    fn setting_zero_removes_the_entry() {
        let mut map = AttemptMap::parse("1-3:1").unwrap();
        map.set(2, 0);
        assert_eq!(map.to_string(), "1:1,3:1");
    }

    #[test]
    fn huge_ranges_cost_a_bounded_amount_of_work() {
        let map = AttemptMap::parse("0-4294967295:1,0-4294967295:2").unwrap();
        assert_eq!(map.iter().count() as u64, MAX_EXPANDED);
        assert_eq!(map.get(0), 1);
    }

    #[test]
    fn refuses_garbage() {
        for text in ["1", "a:1", "1:b", "3-1:1", "1-:2"] {
            assert!(AttemptMap::parse(text).is_err(), "`{text}`");
        }
    }
}
