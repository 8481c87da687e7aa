//! Compositing passes (AOVs, [`Aov`]) as EXR channels: what a shard writes from its tile, and
//! how the merge combines shards — averaged passes weighted by sample count like the beauty
//! pass, first-sample passes taken from the shard that rendered sample 0.

use tessera_shard::contract::Aov;

use crate::gpu::tile::AovPixel;
use crate::image_io::Channel;

/// The values of `aov`'s channels at one pixel.
fn values(aov: Aov, p: &AovPixel) -> Vec<f32> {
    match aov {
        Aov::Depth => vec![p.depth],
        Aov::Normal => p.normal.to_vec(),
        Aov::Albedo => p.albedo.to_vec(),
        Aov::ObjectId => vec![p.object],
        Aov::MaterialId => vec![p.material],
    }
}

/// The channels of `aovs` over a tile's pixels, in the order `aovs` lists them.
pub fn channels(aovs: &[Aov], pixels: &[AovPixel]) -> Vec<Channel> {
    let mut out = Vec::new();
    for &aov in aovs {
        for (k, name) in aov.channels().iter().enumerate() {
            out.push(Channel {
                name: (*name).to_string(),
                values: pixels.iter().map(|p| values(aov, p)[k]).collect(),
            });
        }
    }
    out
}

/// One frame's passes being merged from shards' tiles.
pub struct PassSum {
    /// Per channel of the passes asked for: whether it is averaged, and its values (Σ count ·
    /// mean for averaged channels, else the value of sample 0).
    channels: Vec<(&'static str, bool, Vec<f64>)>,
    width: usize,
}

impl PassSum {
    pub fn new(aovs: &[Aov], width: usize, height: usize) -> Self {
        let channels = aovs
            .iter()
            .flat_map(|&aov| {
                aov.channels()
                    .iter()
                    .map(move |name| (*name, aov.averaged(), vec![0.0; width * height]))
            })
            .collect();
        PassSum { channels, width }
    }

    /// Adds a shard's tile (`rect` of the frame, its `samples`) from its EXR's extra channels;
    /// `Err` names a channel the tile lacks or one of the wrong size.
    pub fn add(
        &mut self,
        rect: tessera_shard::plan::TileRect,
        samples: tessera_shard::plan::SampleRange,
        tile: &[Channel],
    ) -> Result<(), String> {
        let n = f64::from(samples.count);
        for (name, averaged, sum) in &mut self.channels {
            let channel = tile
                .iter()
                .find(|c| c.name == *name)
                .ok_or_else(|| format!("has no {name} channel"))?;
            if channel.values.len() as u64 != rect.pixel_count() {
                return Err(format!("has {} values in {name}", channel.values.len()));
            }
            if !*averaged && samples.start != 0 {
                continue;
            }
            for ty in 0..rect.height as usize {
                for tx in 0..rect.width as usize {
                    let value = f64::from(channel.values[ty * rect.width as usize + tx]);
                    let i = (rect.y as usize + ty) * self.width + rect.x as usize + tx;
                    sum[i] += if *averaged { value * n } else { value };
                }
            }
        }
        Ok(())
    }

    /// The merged channels of a frame of `samples` samples per pixel.
    pub fn channels(&self, samples: u64) -> Vec<Channel> {
        self.channels
            .iter()
            .map(|(name, averaged, sum)| Channel {
                name: (*name).to_string(),
                values: sum
                    .iter()
                    .map(|v| {
                        if *averaged {
                            (v / samples as f64) as f32
                        } else {
                            *v as f32
                        }
                    })
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_shard::plan::{SampleRange, TileRect};

    fn pixel(depth: f32, normal_x: f32) -> AovPixel {
        AovPixel {
            normal: [normal_x, 0.0, 0.0],
            depth,
            albedo: [0.5; 3],
            object: 2.0,
            material: 3.0,
        }
    }

    #[test]
    fn averaged_passes_weigh_splits_by_samples_and_the_rest_come_from_sample_0() {
        let aovs = [Aov::Depth, Aov::Normal, Aov::ObjectId];
        let rect = TileRect {
            x: 0,
            y: 0,
            width: 1,
            height: 1,
        };
        let mut sum = PassSum::new(&aovs, 1, 1);
        // Samples 0..1 saw depth 4 and normal x 1; samples 1..4 (no sample 0) normal x 0.
        let first = channels(&aovs, &[pixel(4.0, 1.0)]);
        let rest = channels(&aovs, &[pixel(0.0, 0.0)]);
        sum.add(rect, SampleRange { start: 1, count: 3 }, &rest)
            .unwrap();
        sum.add(rect, SampleRange { start: 0, count: 1 }, &first)
            .unwrap();
        let merged = sum.channels(4);
        let value = |name: &str| merged.iter().find(|c| c.name == name).unwrap().values[0];
        assert_eq!(value("Depth.Z"), 4.0);
        assert_eq!(value("Normal.X"), 0.25);
        assert_eq!(value("IndexOB.X"), 2.0);
        let names: Vec<&str> = merged.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["Depth.Z", "Normal.X", "Normal.Y", "Normal.Z", "IndexOB.X"]
        );
        let error = sum
            .add(rect, SampleRange { start: 0, count: 1 }, &first[..1])
            .unwrap_err();
        assert_eq!(error, "has no Normal.X channel");
    }
}
