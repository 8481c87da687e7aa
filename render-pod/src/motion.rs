//! Motion blur: each sample of a frame sees the animation at a time inside the shutter
//! interval, `shutter` frames long and centred on the frame (Cycles' default position).
//!
//! The scene is rebuilt on the CPU for each time (`gltf_scene`), so times are discrete: sample
//! `s` belongs to time step `s mod steps` of `steps = min(samples per pixel, MAX_STEPS)`, at
//! `frame + shutter · ((step + ½) / steps − ½)`. What a sample sees depends only on its index,
//! like everything else, so tiles stay bit-identical and sample splits average to the whole.
//! A shard renders each step's share of its sample range as a strided range and [`combine`]s
//! the step tiles, weighted by their sample counts.

use tessera_shard::plan::SampleRange;

use crate::gltf_scene::FRAMES_PER_SECOND;
use crate::gpu::tile::{AovPixel, Tile};

/// Most time steps a frame's samples are spread over.
pub const MAX_STEPS: u32 = 16;

/// Time steps of a frame: 1 (no blur) without a shutter or without animation.
pub fn steps(shutter: f32, samples_per_pixel: u32, animated: bool) -> u32 {
    if shutter > 0.0 && animated {
        samples_per_pixel.clamp(1, MAX_STEPS)
    } else {
        1
    }
}

/// The animation time (seconds) of time step `step` of `frame`.
pub fn step_time(frame: i64, shutter: f32, step: u32, steps: u32) -> f64 {
    if steps <= 1 {
        return frame as f64 / FRAMES_PER_SECOND;
    }
    let offset = f64::from(shutter) * ((f64::from(step) + 0.5) / f64::from(steps) - 0.5);
    (frame as f64 + offset) / FRAMES_PER_SECOND
}

/// The samples of `range` in time step `step` (those `s` with `s mod steps == step`): the first
/// and how many, taken every `steps`-th; `None` when there are none.
pub fn share(range: SampleRange, step: u32, steps: u32) -> Option<SampleRange> {
    let end = u64::from(range.start) + u64::from(range.count);
    let start = u64::from(range.start);
    let first =
        start + (u64::from(step) + u64::from(steps) - start % u64::from(steps)) % u64::from(steps);
    if first >= end {
        return None;
    }
    let count = (end - first).div_ceil(u64::from(steps));
    Some(SampleRange {
        start: first as u32,
        count: count as u32,
    })
}

/// One tile from the tiles of a shard's time steps (each with the sample range it rendered):
/// means weighted by sample count; depth and IDs from the step that rendered sample 0.
pub fn combine(parts: &[(SampleRange, Tile)]) -> Option<Tile> {
    let (_, first) = parts.first()?;
    let total: u32 = parts.iter().map(|(r, _)| r.count).sum();
    let pixels = first.pixels.len();
    let mut beauty = vec![[0.0f64; 3]; pixels];
    let mut aovs = first
        .aovs
        .as_ref()
        .map(|_| vec![AovPixel::default(); pixels]);
    let mut normal_albedo = vec![[0.0f64; 6]; pixels];
    for (range, tile) in parts {
        let n = f64::from(range.count);
        for (sum, p) in beauty.iter_mut().zip(&tile.pixels) {
            for c in 0..3 {
                sum[c] += f64::from(p[c]) * n;
            }
        }
        if let (Some(out), Some(tile_aovs)) = (aovs.as_mut(), &tile.aovs) {
            for ((o, sum), p) in out.iter_mut().zip(&mut normal_albedo).zip(tile_aovs) {
                for c in 0..3 {
                    sum[c] += f64::from(p.normal[c]) * n;
                    sum[3 + c] += f64::from(p.albedo[c]) * n;
                }
                if range.start == 0 {
                    o.depth = p.depth;
                    o.object = p.object;
                    o.material = p.material;
                }
            }
        }
    }
    let n = f64::from(total.max(1));
    if let Some(out) = aovs.as_mut() {
        for (o, sum) in out.iter_mut().zip(&normal_albedo) {
            o.normal = [0, 1, 2].map(|c| (sum[c] / n) as f32);
            o.albedo = [3, 4, 5].map(|c| (sum[c] / n) as f32);
        }
    }
    Some(Tile {
        rect: first.rect,
        samples: total,
        pixels: beauty.iter().map(|s| s.map(|v| (v / n) as f32)).collect(),
        aovs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_of_a_range_is_in_exactly_one_step_share() {
        for (start, count) in [(0, 1), (0, 64), (5, 3), (7, 40), (13, 1)] {
            let range = SampleRange { start, count };
            let steps = 8;
            let mut seen = Vec::new();
            for step in 0..steps {
                if let Some(share) = share(range, step, steps) {
                    for i in 0..share.count {
                        let s = share.start + i * steps;
                        assert_eq!(s % steps, step);
                        seen.push(s);
                    }
                }
            }
            seen.sort();
            assert_eq!(
                seen,
                (start..start + count).collect::<Vec<_>>(),
                "{range:?}"
            );
        }
    }

    #[test]
    fn times_spread_evenly_across_a_shutter_centred_on_the_frame() {
        assert_eq!(steps(0.0, 64, true), 1);
        assert_eq!(steps(0.5, 64, false), 1);
        assert_eq!(steps(0.5, 4, true), 4);
        assert_eq!(steps(0.5, 64, true), MAX_STEPS);
        assert_eq!(step_time(12, 0.5, 0, 1), 0.5);
        let times: Vec<f64> = (0..4).map(|k| step_time(24, 0.5, k, 4) * 24.0).collect();
        let expected = [23.8125, 23.9375, 24.0625, 24.1875];
        for (t, e) in times.iter().zip(expected) {
            assert!((t - e).abs() < 1e-9, "{times:?}");
        }
    }

    #[test]
    fn step_tiles_combine_weighted_by_their_samples() {
        let rect = tessera_shard::plan::TileRect {
            x: 0,
            y: 0,
            width: 1,
            height: 1,
        };
        let tile = |v: f32, depth: f32| Tile {
            rect,
            samples: 0,
            pixels: vec![[v; 3]],
            aovs: Some(vec![AovPixel {
                normal: [v, 0.0, 0.0],
                depth,
                ..AovPixel::default()
            }]),
        };
        let combined = combine(&[
            (SampleRange { start: 1, count: 3 }, tile(1.0, 9.0)),
            (SampleRange { start: 0, count: 1 }, tile(5.0, 2.0)),
        ])
        .unwrap();
        assert_eq!(combined.samples, 4);
        assert_eq!(combined.pixels, vec![[2.0; 3]]);
        let aov = combined.aovs.unwrap()[0];
        assert_eq!((aov.normal[0], aov.depth), (2.0, 2.0));
        assert!(combine(&[]).is_none());
    }
}
