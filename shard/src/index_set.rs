//! Compact sets of shard indexes, written like the Job controller's `completedIndexes`:
//! `0-41,43-99`.
//!
//! A set is an ordered list of disjoint, non-adjacent inclusive intervals, so a 10,000-shard
//! job whose shards all succeeded costs 6 bytes of status (`0-9999`). The parser is lenient
//! (unordered, overlapping or adjacent items are merged) because status written by an older
//! operator, or by hand, must still load; the formatter is canonical.

use std::fmt;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexSet {
    /// Sorted, disjoint, non-adjacent inclusive intervals.
    intervals: Vec<(u32, u32)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{item}` in index set `{text}` is not an index or a range `A-B`")]
pub struct IndexSetError {
    pub text: String,
    pub item: String,
}

impl IndexSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// The set `0..len`.
    pub fn full(len: u32) -> Self {
        match len {
            0 => Self::new(),
            _ => Self {
                intervals: vec![(0, len - 1)],
            },
        }
    }

    pub fn parse(text: &str) -> Result<Self, IndexSetError> {
        let mut set = Self::new();
        for raw in text.split(',') {
            let item = raw.trim();
            if item.is_empty() {
                continue;
            }
            let error = || IndexSetError {
                text: text.to_string(),
                item: item.to_string(),
            };
            let (low, high) = match item.split_once('-') {
                Some((low, high)) => (low.trim(), high.trim()),
                None => (item, item),
            };
            let low: u32 = low.parse().map_err(|_| error())?;
            let high: u32 = high.parse().map_err(|_| error())?;
            if high < low {
                return Err(error());
            }
            set.insert_range(low, high);
        }
        Ok(set)
    }

    pub fn contains(&self, index: u32) -> bool {
        let position = self.intervals.partition_point(|&(_, high)| high < index);
        self.intervals
            .get(position)
            .is_some_and(|&(low, _)| low <= index)
    }

    /// Whether every index of `low..=high` is in the set.
    pub fn contains_range(&self, low: u32, high: u32) -> bool {
        let position = self.intervals.partition_point(|&(_, h)| h < low);
        self.intervals
            .get(position)
            .is_some_and(|&(l, h)| l <= low && high <= h)
    }

    /// The indexes of `self` that are not in `other`.
    pub fn difference(&self, other: &IndexSet) -> IndexSet {
        let mut result = IndexSet::new();
        for &(low, high) in &self.intervals {
            let mut next = low;
            let first = other.intervals.partition_point(|&(_, h)| h < low);
            for &(l, h) in other.intervals[first..]
                .iter()
                .take_while(|&&(l, _)| l <= high)
            {
                if l > next {
                    result.intervals.push((next, l - 1));
                }
                match h.checked_add(1) {
                    Some(after) => next = next.max(after),
                    None => return result,
                }
            }
            if next <= high {
                result.intervals.push((next, high));
            }
        }
        result
    }

    pub fn insert(&mut self, index: u32) {
        self.insert_range(index, index);
    }

    /// Inserts `low..=high`, merging with overlapping or adjacent intervals.
    pub fn insert_range(&mut self, mut low: u32, mut high: u32) {
        // First interval that could touch [low, high]: its high + 1 >= low.
        let first = self
            .intervals
            .partition_point(|&(_, h)| u64::from(h) + 1 < u64::from(low));
        let mut last = first;
        while last < self.intervals.len()
            && u64::from(self.intervals[last].0) <= u64::from(high) + 1
        {
            low = low.min(self.intervals[last].0);
            high = high.max(self.intervals[last].1);
            last += 1;
        }
        self.intervals.splice(first..last, [(low, high)]);
    }

    pub fn union(&self, other: &IndexSet) -> IndexSet {
        let mut result = self.clone();
        for &(low, high) in &other.intervals {
            result.insert_range(low, high);
        }
        result
    }

    /// How many indexes the set holds.
    pub fn len(&self) -> u64 {
        self.intervals
            .iter()
            .map(|&(low, high)| u64::from(high - low) + 1)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.intervals.iter().flat_map(|&(low, high)| low..=high)
    }

    pub fn intervals(&self) -> &[(u32, u32)] {
        &self.intervals
    }
}

impl FromIterator<u32> for IndexSet {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
        let mut set = IndexSet::new();
        for index in iter {
            set.insert(index);
        }
        set
    }
}

impl fmt::Display for IndexSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(low, high)) in self.intervals.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if low == high {
                write!(f, "{low}")?;
            } else {
                write!(f, "{low}-{high}")?;
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for IndexSet {
    type Err = IndexSetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

serde_as_string!(IndexSet);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_then_format() {
        // (input, canonical form, length) — in the spirit of the Job controller's
        // TestCalculateSucceededIndexes table.
        let cases = [
            ("", "", 0),
            ("0", "0", 1),
            ("0-41,43-99", "0-41,43-99", 99),
            ("3,1,2", "1-3", 3),
            ("5-7,1-3", "1-3,5-7", 6),
            ("1-3,4-6", "1-6", 6),
            ("1-5,2-3", "1-5", 5),
            ("1-5,3-9", "1-9", 9),
            (" 1 , 3 - 4 ,", "1,3-4", 3),
            ("0,2,4", "0,2,4", 3),
            ("4294967295", "4294967295", 1),
            ("0-4294967295", "0-4294967295", 4294967296),
        ];
        for (input, canonical, len) in cases {
            let set = IndexSet::parse(input).unwrap();
            assert_eq!(set.to_string(), canonical, "input `{input}`");
            assert_eq!(set.len(), len, "input `{input}`");
        }
    }

    #[test]
    fn parse_refuses_garbage() {
        for input in ["a", "1-", "-1", "3-1", "1-2-3", "1;2", "99999999999"] {
            let error = IndexSet::parse(input).unwrap_err();
            assert!(
                error.to_string().contains("is not an index"),
                "`{input}`: {error}"
            );
        }
    }

    #[test]
    fn insert_merges_neighbours() {
        let cases: &[(&str, u32, &str)] = &[
            ("", 5, "5"),
            ("1-3", 4, "1-4"),
            ("2-3", 1, "1-3"),
            ("1-3,5-7", 4, "1-7"),
            ("1-3,5-7", 3, "1-3,5-7"),
            ("1,9", 5, "1,5,9"),
            ("0-4294967294", 4294967295, "0-4294967295"),
        ];
        for (start, index, expected) in cases {
            let mut set = IndexSet::parse(start).unwrap();
            set.insert(*index);
            assert_eq!(set.to_string(), *expected, "{start} + {index}");
        }
    }

    #[test]
    fn contains_and_union() {
        let set = IndexSet::parse("0-41,43-99,200").unwrap();
        for (index, expected) in [
            (0, true),
            (41, true),
            (42, false),
            (43, true),
            (100, false),
            (200, true),
            (201, false),
        ] {
            assert_eq!(set.contains(index), expected, "{index}");
        }
        let other = IndexSet::parse("42,100-199").unwrap();
        assert_eq!(set.union(&other).to_string(), "0-200");
        assert_eq!(set.union(&other).len(), 201);
    }

    #[test]
    fn collects_and_round_trips_through_serde() {
        let set: IndexSet = [9, 1, 2, 3, 7].into_iter().collect();
        assert_eq!(set.to_string(), "1-3,7,9");
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, "\"1-3,7,9\"");
        assert_eq!(serde_json::from_str::<IndexSet>(&json).unwrap(), set);
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![1, 2, 3, 7, 9]);
    }
}
