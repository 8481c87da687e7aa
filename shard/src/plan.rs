//! Shard planning: a pure, deterministic function from a job's sharding settings to shards.
//!
//! A shard is `(frame chunk, tile, sample range)`. Shard `i` always means the same frames,
//! pixels and samples, so a restarted operator re-derives it exactly and the render pod's local
//! mode splits work the same way the operator does. Indexes are laid out with the sample split
//! varying fastest, then the tile column, the tile row and the frame chunk:
//!
//! `i = ((chunk * tiles_y + tile_y) * tiles_x + tile_x) * sample_splits + split`
//!
//! The plan is never expanded into a list: `shard(i)` computes one shard in O(frame ranges).

use serde::{Deserialize, Serialize};

use crate::frames::FrameList;

/// The hard cap on shards per job, the same as the Job controller's cap on indexed completions.
pub const MAX_SHARDS: u64 = 100_000;

/// What planning needs from a job spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanInput {
    pub frames: FrameList,
    pub width: u32,
    pub height: u32,
    pub samples_per_pixel: u32,
    pub frames_per_shard: u32,
    pub tiles_x: u32,
    pub tiles_y: u32,
    pub sample_splits: u32,
}

/// A rectangle of pixels: columns `x..x + width`, rows `y..y + height`, row 0 at the top.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TileRect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl TileRect {
    pub fn pixel_count(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// Samples `start..start + count` of every pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SampleRange {
    pub start: u32,
    pub count: u32,
}

/// One unit of work: one pod renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub frames: Vec<i64>,
    pub tile: TileRect,
    pub samples: SampleRange,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("{field} must be at least 1")]
    Zero { field: &'static str },
    #[error(
        "tiles.x ({tiles}) must not exceed the image width ({pixels}): a tile needs at least one pixel"
    )]
    TooManyTilesX { tiles: u32, pixels: u32 },
    #[error(
        "tiles.y ({tiles}) must not exceed the image height ({pixels}): a tile needs at least one pixel"
    )]
    TooManyTilesY { tiles: u32, pixels: u32 },
    #[error(
        "sampleSplits ({splits}) must not exceed samples per pixel ({samples}): a split needs at least one sample"
    )]
    TooManySplits { splits: u32, samples: u32 },
    #[error(
        "the job would have {shards} shards ({chunks} frame chunks x {tiles} tiles x {splits} sample splits); \
         at most {MAX_SHARDS} are allowed: raise framesPerShard or lower tiles/sampleSplits"
    )]
    TooManyShards {
        shards: u64,
        chunks: u64,
        tiles: u64,
        splits: u64,
    },
}

/// A validated plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPlan {
    input: PlanInput,
    chunks: u32,
    shard_count: u32,
}

impl ShardPlan {
    pub fn new(input: PlanInput) -> Result<Self, PlanError> {
        for (field, value) in [
            ("width", input.width),
            ("height", input.height),
            ("samplesPerPixel", input.samples_per_pixel),
            ("framesPerShard", input.frames_per_shard),
            ("tiles.x", input.tiles_x),
            ("tiles.y", input.tiles_y),
            ("sampleSplits", input.sample_splits),
        ] {
            if value == 0 {
                return Err(PlanError::Zero { field });
            }
        }
        if input.tiles_x > input.width {
            return Err(PlanError::TooManyTilesX {
                tiles: input.tiles_x,
                pixels: input.width,
            });
        }
        if input.tiles_y > input.height {
            return Err(PlanError::TooManyTilesY {
                tiles: input.tiles_y,
                pixels: input.height,
            });
        }
        if input.sample_splits > input.samples_per_pixel {
            return Err(PlanError::TooManySplits {
                splits: input.sample_splits,
                samples: input.samples_per_pixel,
            });
        }
        let chunks = input
            .frames
            .len()
            .div_ceil(u64::from(input.frames_per_shard));
        let tiles = u64::from(input.tiles_x) * u64::from(input.tiles_y);
        let splits = u64::from(input.sample_splits);
        let shards = chunks * tiles * splits;
        if shards > MAX_SHARDS {
            return Err(PlanError::TooManyShards {
                shards,
                chunks,
                tiles,
                splits,
            });
        }
        Ok(ShardPlan {
            input,
            chunks: chunks as u32,
            shard_count: shards as u32,
        })
    }

    pub fn input(&self) -> &PlanInput {
        &self.input
    }

    pub fn len(&self) -> u32 {
        self.shard_count
    }

    pub fn is_empty(&self) -> bool {
        self.shard_count == 0
    }

    pub fn frame_chunks(&self) -> u32 {
        self.chunks
    }

    pub fn shards_per_frame_chunk(&self) -> u32 {
        self.input.tiles_x * self.input.tiles_y * self.input.sample_splits
    }

    /// Shard `index`, or `None` past the end.
    pub fn shard(&self, index: u32) -> Option<Shard> {
        if index >= self.shard_count {
            return None;
        }
        let input = &self.input;
        let split = index % input.sample_splits;
        let rest = index / input.sample_splits;
        let tile_x = rest % input.tiles_x;
        let rest = rest / input.tiles_x;
        let tile_y = rest % input.tiles_y;
        let chunk = rest / input.tiles_y;

        let first = u64::from(chunk) * u64::from(input.frames_per_shard);
        let last = (first + u64::from(input.frames_per_shard)).min(input.frames.len());
        let frames = (first..last).filter_map(|k| input.frames.nth(k)).collect();

        let (x, width) = split_evenly(input.width, input.tiles_x, tile_x);
        let (y, height) = split_evenly(input.height, input.tiles_y, tile_y);
        let (start, count) = split_evenly(input.samples_per_pixel, input.sample_splits, split);
        Some(Shard {
            index,
            frames,
            tile: TileRect {
                x,
                y,
                width,
                height,
            },
            samples: SampleRange { start, count },
        })
    }

    pub fn shards(&self) -> impl Iterator<Item = Shard> + '_ {
        (0..self.shard_count).filter_map(|index| self.shard(index))
    }

    /// The shards that render any part of frame chunk `chunk` (all its tiles and splits).
    pub fn shards_of_chunk(&self, chunk: u32) -> std::ops::Range<u32> {
        let per_chunk = self.shards_per_frame_chunk();
        chunk * per_chunk..(chunk + 1) * per_chunk
    }
}

/// Part `part` of `total` split into `parts` nearly equal pieces: `(offset, length)`.
/// The first `total % parts` pieces are one longer, so lengths differ by at most one.
pub fn split_evenly(total: u32, parts: u32, part: u32) -> (u32, u32) {
    let base = total / parts;
    let longer = total % parts;
    let offset = part * base + part.min(longer);
    let length = base + u32::from(part < longer);
    (offset, length)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(frames: &str, fps: u32, tiles: (u32, u32), splits: u32) -> PlanInput {
        PlanInput {
            frames: FrameList::parse(frames).unwrap(),
            width: 37,
            height: 23,
            samples_per_pixel: 10,
            frames_per_shard: fps,
            tiles_x: tiles.0,
            tiles_y: tiles.1,
            sample_splits: splits,
        }
    }

    #[test]
    fn split_evenly_covers_the_whole_without_overlap() {
        for total in 1..40 {
            for parts in 1..=total {
                let mut next = 0;
                for part in 0..parts {
                    let (offset, length) = split_evenly(total, parts, part);
                    assert_eq!(offset, next);
                    assert!(length >= 1);
                    next += length;
                }
                assert_eq!(next, total);
            }
        }
    }

    #[test]
    fn every_pixel_of_every_frame_at_every_sample_exactly_once() {
        let plan = ShardPlan::new(input("1-7,20,-3", 3, (4, 3), 3)).unwrap();
        assert_eq!(plan.len(), 3 * 12 * 3);
        let input = plan.input();
        let mut hits = std::collections::HashMap::<(i64, u32, u32, u32), u32>::new();
        for shard in plan.shards() {
            for &frame in &shard.frames {
                for y in shard.tile.y..shard.tile.y + shard.tile.height {
                    for x in shard.tile.x..shard.tile.x + shard.tile.width {
                        for s in shard.samples.start..shard.samples.start + shard.samples.count {
                            *hits.entry((frame, x, y, s)).or_default() += 1;
                        }
                    }
                }
            }
        }
        let expected = input.frames.len() as usize
            * (input.width * input.height * input.samples_per_pixel) as usize;
        assert_eq!(hits.len(), expected);
        assert!(hits.values().all(|&count| count == 1));
        for frame in input.frames.iter() {
            assert!(hits.contains_key(&(frame, 36, 22, 9)));
        }
    }

    #[test]
    fn the_plan_is_deterministic_and_indexes_are_stable() {
        let a = ShardPlan::new(input("1-10", 2, (2, 2), 2)).unwrap();
        let b = ShardPlan::new(input("1-10", 2, (2, 2), 2)).unwrap();
        assert_eq!(
            a.shards().collect::<Vec<_>>(),
            b.shards().collect::<Vec<_>>()
        );
        // Index layout: split fastest, then tile x, tile y, frame chunk.
        let shard = a.shard(13).unwrap(); // 13 = ((1*2 + 1)*2 + 0)*2 + 1
        assert_eq!(shard.frames, vec![3, 4]);
        assert_eq!(
            shard.tile,
            TileRect {
                x: 0,
                y: 12,
                width: 19,
                height: 11
            }
        );
        assert_eq!(shard.samples, SampleRange { start: 5, count: 5 });
        assert_eq!(a.shard(a.len()), None);
        assert_eq!(a.shards_of_chunk(1), 8..16);
    }

    #[test]
    fn the_last_chunk_may_be_short() {
        let plan = ShardPlan::new(input("1-5", 2, (1, 1), 1)).unwrap();
        let frames: Vec<Vec<i64>> = plan.shards().map(|s| s.frames).collect();
        assert_eq!(frames, vec![vec![1, 2], vec![3, 4], vec![5]]);
    }

    #[test]
    fn refuses_impossible_plans_with_a_reason() {
        let cases: Vec<(PlanInput, &str)> = vec![
            (
                input("1", 0, (1, 1), 1),
                "framesPerShard must be at least 1",
            ),
            (
                input("1", 1, (38, 1), 1),
                "tiles.x (38) must not exceed the image width (37)",
            ),
            (
                input("1", 1, (1, 24), 1),
                "tiles.y (24) must not exceed the image height (23)",
            ),
            (
                input("1", 1, (1, 1), 11),
                "sampleSplits (11) must not exceed samples per pixel (10)",
            ),
            (
                input("1-100000", 1, (2, 1), 1),
                "the job would have 200000 shards",
            ),
        ];
        for (input, message) in cases {
            let error = ShardPlan::new(input).unwrap_err().to_string();
            assert!(error.contains(message), "{error}");
        }
    }

    #[test]
    fn exactly_the_cap_is_allowed() {
        let plan = ShardPlan::new(input("1-10000", 1, (5, 2), 1)).unwrap();
        assert_eq!(u64::from(plan.len()), MAX_SHARDS);
    }
}
