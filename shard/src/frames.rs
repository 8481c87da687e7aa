//! Frame lists in render-farm syntax.
//!
//! A frame list is a comma-separated list of items, each one of:
//! - a single frame: `7`, `-3`
//! - an inclusive range: `1-100`, `-10--1`, `-5-5`
//! - a stepped range: `1-100x2` (every second frame from 1: 1, 3, 5, …, 99)
//!
//! This is the syntax Deadline, OpenCue and Flamenco users already type. Items keep their order
//! (the render order), whitespace around items is ignored, and a frame listed twice is an error:
//! it is almost always a typo, and rendering it twice would only waste GPU time.
//!
//! The list is stored as its ranges, never expanded, so `1-1000000000` costs nothing until asked.

use std::fmt;

/// The most frames one list may hold; a job this long is certainly a typo.
pub const MAX_FRAMES: u64 = 1_000_000;

/// One item of a frame list: `start..=end` every `step` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRange {
    pub start: i64,
    pub end: i64,
    pub step: u32,
}

impl FrameRange {
    /// How many frames the range holds.
    pub fn len(&self) -> u64 {
        ((self.end - self.start) as u64) / u64::from(self.step) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The last frame actually rendered (`1-10x4` ends at 9, not 10).
    pub fn last(&self) -> i64 {
        self.start + (self.len() as i64 - 1) * i64::from(self.step)
    }

    fn contains(&self, frame: i64) -> bool {
        frame >= self.start && frame <= self.end && (frame - self.start) % i64::from(self.step) == 0
    }
}

/// A parsed, validated frame list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameList {
    ranges: Vec<FrameRange>,
    len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameListError {
    #[error("the frame list is empty; write frames like `1-100`, `1,5,10-20` or `1-100x2`")]
    Empty,
    #[error(
        "item {position} of the frame list is empty (two commas in a row, or a trailing comma)"
    )]
    EmptyItem { position: usize },
    #[error("`{item}` is not a frame, a range `A-B` or a stepped range `A-BxN`")]
    Malformed { item: String },
    #[error("`{item}`: frame numbers must lie between -1000000000 and 1000000000")]
    OutOfRange { item: String },
    #[error("`{item}` runs backwards; write the smaller frame first (`{end}-{start}`)")]
    Backwards { item: String, start: i64, end: i64 },
    #[error("`{item}`: the step after `x` must be at least 1")]
    ZeroStep { item: String },
    #[error("frame {frame} is listed twice (in `{first}` and `{second}`)")]
    Duplicate {
        frame: i64,
        first: String,
        second: String,
    },
    #[error("the frame list holds {count} frames; at most {MAX_FRAMES} are allowed")]
    TooManyFrames { count: u64 },
}

const FRAME_LIMIT: i64 = 1_000_000_000;

impl FrameList {
    /// Parses render-farm syntax; see the module docs.
    pub fn parse(text: &str) -> Result<Self, FrameListError> {
        if text.trim().is_empty() {
            return Err(FrameListError::Empty);
        }
        let mut ranges: Vec<(FrameRange, &str)> = Vec::new();
        let mut len: u64 = 0;
        for (index, raw) in text.split(',').enumerate() {
            let item = raw.trim();
            if item.is_empty() {
                return Err(FrameListError::EmptyItem {
                    position: index + 1,
                });
            }
            let range = parse_item(item)?;
            for (earlier, earlier_text) in &ranges {
                if let Some(frame) = first_common_frame(earlier, &range) {
                    return Err(FrameListError::Duplicate {
                        frame,
                        first: earlier_text.to_string(),
                        second: item.to_string(),
                    });
                }
            }
            len += range.len();
            if len > MAX_FRAMES {
                return Err(FrameListError::TooManyFrames { count: len });
            }
            ranges.push((range, item));
        }
        Ok(FrameList {
            ranges: ranges.into_iter().map(|(range, _)| range).collect(),
            len,
        })
    }

    /// The number of frames in the list.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn ranges(&self) -> &[FrameRange] {
        &self.ranges
    }

    /// The frame at `position` in render order, without expanding the list.
    pub fn nth(&self, mut position: u64) -> Option<i64> {
        for range in &self.ranges {
            if position < range.len() {
                return Some(range.start + position as i64 * i64::from(range.step));
            }
            position -= range.len();
        }
        None
    }

    /// Every frame in render order.
    pub fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        self.ranges.iter().flat_map(|range| {
            (0..range.len()).map(move |k| range.start + k as i64 * i64::from(range.step))
        })
    }

    pub fn contains(&self, frame: i64) -> bool {
        self.ranges.iter().any(|range| range.contains(frame))
    }
}

/// Frames written compactly in the frame-list syntax (`1-3,7,9-10`), ascending; what status
/// fields such as `missingFrames` hold. Duplicates are written once.
pub fn compact(frames: impl IntoIterator<Item = i64>) -> String {
    let mut frames: Vec<i64> = frames.into_iter().collect();
    frames.sort_unstable();
    frames.dedup();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < frames.len() {
        let start = frames[i];
        let mut end = start;
        while i + 1 < frames.len() && frames[i + 1] == end + 1 {
            i += 1;
            end = frames[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

impl fmt::Display for FrameList {
    /// The canonical form: ranges as parsed, single frames without a range, steps only when > 1.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, range) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if range.len() == 1 {
                write!(f, "{}", range.start)?;
            } else if range.step == 1 {
                write!(f, "{}-{}", range.start, range.last())?;
            } else {
                write!(f, "{}-{}x{}", range.start, range.last(), range.step)?;
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for FrameList {
    type Err = FrameListError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn parse_item(item: &str) -> Result<FrameRange, FrameListError> {
    let malformed = || FrameListError::Malformed {
        item: item.to_string(),
    };
    let (range_text, step) = match item.split_once(['x', 'X']) {
        Some((range, step)) => {
            let step: u32 = step.trim().parse().map_err(|_| malformed())?;
            if step == 0 {
                return Err(FrameListError::ZeroStep {
                    item: item.to_string(),
                });
            }
            (range.trim(), Some(step))
        }
        None => (item, None),
    };
    let (start_text, end_text) = split_range(range_text).ok_or_else(malformed)?;
    let start = parse_frame(start_text, item)?;
    let end = match end_text {
        Some(text) => parse_frame(text, item)?,
        None if step.is_some() => return Err(malformed()),
        None => start,
    };
    if end < start {
        return Err(FrameListError::Backwards {
            item: item.to_string(),
            start,
            end,
        });
    }
    Ok(FrameRange {
        start,
        end,
        step: step.unwrap_or(1),
    })
}

/// Splits `A-B` where either side may carry its own minus sign: `-10--1`, `-5-5`, `3`.
fn split_range(text: &str) -> Option<(&str, Option<&str>)> {
    let sign_len = usize::from(text.starts_with('-'));
    match text[sign_len..].find('-') {
        None => Some((text, None)),
        Some(offset) => {
            let dash = sign_len + offset;
            let (start, end) = (&text[..dash], &text[dash + 1..]);
            (!start.trim().is_empty() && !end.trim().is_empty())
                .then_some((start.trim(), Some(end.trim())))
        }
    }
}

fn parse_frame(text: &str, item: &str) -> Result<i64, FrameListError> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FrameListError::Malformed {
            item: item.to_string(),
        });
    }
    let value: i64 = text.parse().map_err(|_| FrameListError::OutOfRange {
        item: item.to_string(),
    })?;
    if !(-FRAME_LIMIT..=FRAME_LIMIT).contains(&value) {
        return Err(FrameListError::OutOfRange {
            item: item.to_string(),
        });
    }
    Ok(value)
}

/// The smallest frame two ranges share, if any (without expanding either).
fn first_common_frame(a: &FrameRange, b: &FrameRange) -> Option<i64> {
    let low = a.start.max(b.start);
    let high = a.last().min(b.last());
    if low > high {
        return None;
    }
    // Walk the range with the larger step; steps are small in practice and the walk is bounded
    // by the other step (residues repeat after that many steps).
    let (wide, narrow) = if a.step >= b.step { (a, b) } else { (b, a) };
    let wide_step = i64::from(wide.step);
    let first = wide.start + ((low - wide.start + wide_step - 1) / wide_step) * wide_step;
    (0..i64::from(narrow.step))
        .map(|k| first + k * wide_step)
        .take_while(|frame| *frame <= high)
        .find(|frame| narrow.contains(*frame))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(text: &str) -> Vec<i64> {
        FrameList::parse(text).unwrap().iter().collect()
    }

    #[test]
    fn parses_valid_lists() {
        let cases: &[(&str, &[i64])] = &[
            ("1", &[1]),
            ("1-5", &[1, 2, 3, 4, 5]),
            ("1-10x3", &[1, 4, 7, 10]),
            ("1-10x4", &[1, 5, 9]),
            ("1,5,10-12", &[1, 5, 10, 11, 12]),
            ("-3", &[-3]),
            ("-3-1", &[-3, -2, -1, 0, 1]),
            ("-10--8", &[-10, -9, -8]),
            ("-6--1x2", &[-6, -4, -2]),
            (" 3 , 1 - 2 ", &[3, 1, 2]),
            ("20,10", &[20, 10]),
            ("5-5", &[5]),
            ("1-9X4", &[1, 5, 9]),
        ];
        for (text, expected) in cases {
            assert_eq!(frames(text), *expected, "parsing `{text}`");
        }
    }

    #[test]
    fn refuses_invalid_lists_with_a_reason() {
        let cases: &[(&str, &str)] = &[
            ("", "the frame list is empty"),
            ("1,,2", "item 2 of the frame list is empty"),
            ("1,", "item 2 of the frame list is empty"),
            ("a-b", "`a-b` is not a frame"),
            ("1-", "`1-` is not a frame"),
            ("1x2", "`1x2` is not a frame"),
            ("1-10x", "`1-10x` is not a frame"),
            ("1-10x0", "the step after `x` must be at least 1"),
            (
                "10-1",
                "`10-1` runs backwards; write the smaller frame first (`1-10`)",
            ),
            ("1-5,3", "frame 3 is listed twice (in `1-5` and `3`)"),
            (
                "1-9x2,2-10x2,5",
                "frame 5 is listed twice (in `1-9x2` and `5`)",
            ),
            ("99999999999", "must lie between"),
            ("1-2000000", "at most 1000000 are allowed"),
            ("1.5", "`1.5` is not a frame"),
        ];
        for (text, message) in cases {
            let error = FrameList::parse(text).unwrap_err().to_string();
            assert!(error.contains(message), "`{text}` gave `{error}`");
        }
    }

    #[test]
    fn stepped_ranges_that_interleave_are_not_duplicates() {
        assert_eq!(frames("1-9x2,2-10x2").len(), 10);
        assert_eq!(frames("0-100x10,5-95x10").len(), 21);
    }

    #[test]
    fn nth_and_len_agree_with_iteration() {
        let list = FrameList::parse("1-10x3,-5--4,100").unwrap();
        let all: Vec<i64> = list.iter().collect();
        assert_eq!(list.len(), all.len() as u64);
        for (k, frame) in all.iter().enumerate() {
            assert_eq!(list.nth(k as u64), Some(*frame));
            assert!(list.contains(*frame));
        }
        assert_eq!(list.nth(all.len() as u64), None);
        assert!(!list.contains(2));
    }

    #[test]
    fn display_is_canonical_and_round_trips() {
        for (text, canonical) in [
            ("1-10x4", "1-9x4"),
            ("5-5", "5"),
            (" 1 - 3 ,7", "1-3,7"),
            ("-10--1x3", "-10--1x3"),
        ] {
            let list = FrameList::parse(text).unwrap();
            assert_eq!(list.to_string(), canonical);
            assert_eq!(
                FrameList::parse(canonical)
                    .unwrap()
                    .iter()
                    .collect::<Vec<_>>(),
                list.iter().collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn huge_ranges_are_not_expanded() {
        let list = FrameList::parse("1-1000000").unwrap();
        assert_eq!(list.len(), 1_000_000);
        assert_eq!(list.nth(999_999), Some(1_000_000));
    }

    #[test]
    fn frames_are_written_compactly_and_parse_back() {
        assert_eq!(compact([7, 1, 2, 3, 9, 10, 3]), "1-3,7,9-10");
        assert_eq!(compact([-2, -1, 0]), "-2-0");
        assert_eq!(compact(std::iter::empty()), "");
        let list = FrameList::parse(&compact([4, 5, 6, 20])).unwrap();
        assert_eq!(list.iter().collect::<Vec<_>>(), vec![4, 5, 6, 20]);
    }
}
