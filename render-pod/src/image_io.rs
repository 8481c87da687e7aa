//! Image encoding: linear float EXR (shard tiles and final frames) and 8-bit sRGB PNG.
//!
//! Encoders are single-threaded and deterministic, so the same pixels always give the same
//! bytes (merge idempotence relies on it). EXR: RGB f32, ZIP (16 lines) compression.
//! PNG: the tone map is a clamp to [0, 1] followed by the sRGB transfer function.

use std::io::Cursor;

use exr::prelude::*;

use crate::error::{Error, Result};

/// A linear RGB float image, rows top to bottom.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<[f32; 3]>,
}

impl RgbImage {
    pub fn new(width: u32, height: u32) -> Self {
        RgbImage {
            width,
            height,
            pixels: vec![[0.0; 3]; width as usize * height as usize],
        }
    }

    /// Per-channel mean, accumulated in f64.
    pub fn mean(&self) -> [f64; 3] {
        let mut sum = [0.0f64; 3];
        for p in &self.pixels {
            for c in 0..3 {
                sum[c] += f64::from(p[c]);
            }
        }
        let n = self.pixels.len().max(1) as f64;
        sum.map(|s| s / n)
    }
}

/// Root-mean-square difference of two images' pixels over every channel (how far a render is
/// from a reference; `render-pod/benches/sampler_error.rs`).
pub fn rmse(image: &[[f32; 3]], reference: &[[f32; 3]]) -> f64 {
    let sum: f64 = image
        .iter()
        .zip(reference)
        .flat_map(|(a, b)| (0..3).map(move |c| f64::from(a[c] - b[c]).powi(2)))
        .sum();
    (sum / (image.len().max(1) * 3) as f64).sqrt()
}

pub fn encode_exr(image: &RgbImage) -> Result<Vec<u8>> {
    let width = image.width as usize;
    let channels = SpecificChannels::rgb(|Vec2(x, y): Vec2<usize>| {
        let p = image.pixels[y * width + x];
        (p[0], p[1], p[2])
    });
    let layer = Layer::new(
        (width, image.height as usize),
        LayerAttributes::default(),
        Encoding::SMALL_LOSSLESS,
        channels,
    );
    let mut out = Cursor::new(Vec::new());
    Image::from_layer(layer)
        .write()
        .non_parallel()
        .to_buffered(&mut out)
        .map_err(|e| Error::Image(format!("EXR encode: {e}")))?;
    Ok(out.into_inner())
}

/// The size of an EXR's first layer from its header alone (nothing is decoded or allocated).
pub fn exr_size(bytes: &[u8]) -> std::result::Result<(u32, u32), String> {
    let meta = exr::meta::MetaData::read_from_buffered(Cursor::new(bytes), false)
        .map_err(|e| format!("not a readable EXR: {e}"))?;
    let header = meta.headers.first().ok_or("an EXR without layers")?;
    let (w, h) = (header.layer_size.width(), header.layer_size.height());
    Ok((
        u32::try_from(w).map_err(|_| format!("EXR width {w}"))?,
        u32::try_from(h).map_err(|_| format!("EXR height {h}"))?,
    ))
}

/// An EXR channel beside R, G, B (a compositing pass): its name and one value per pixel, rows
/// top to bottom.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub name: String,
    pub values: Vec<f32>,
}

/// [`encode_exr`] with `extra` channels (f32, same compression); with none, the same bytes.
pub fn encode_exr_with(image: &RgbImage, extra: &[Channel]) -> Result<Vec<u8>> {
    if extra.is_empty() {
        return encode_exr(image);
    }
    let pixels = image.pixels.len();
    if let Some(bad) = extra.iter().find(|c| c.values.len() != pixels) {
        return Err(Error::Image(format!(
            "EXR encode: channel {} has {} values for {pixels} pixels",
            bad.name,
            bad.values.len()
        )));
    }
    let beauty = ["R", "G", "B"].into_iter().enumerate().map(|(k, name)| {
        AnyChannel::new(
            name,
            FlatSamples::F32(image.pixels.iter().map(|p| p[k]).collect()),
        )
    });
    let passes = extra
        .iter()
        .map(|c| AnyChannel::new(c.name.as_str(), FlatSamples::F32(c.values.clone())));
    let channels = AnyChannels::sort(beauty.chain(passes).collect());
    let layer = Layer::new(
        (image.width as usize, image.height as usize),
        LayerAttributes::default(),
        Encoding::SMALL_LOSSLESS,
        channels,
    );
    let mut out = Cursor::new(Vec::new());
    Image::from_layer(layer)
        .write()
        .non_parallel()
        .to_buffered(&mut out)
        .map_err(|e| Error::Image(format!("EXR encode: {e}")))?;
    Ok(out.into_inner())
}

/// The channels of an EXR other than R, G, B, as f32 (its first layer, largest level).
/// Callers that hold untrusted bytes check [`exr_size`] first.
pub fn decode_exr_extra(bytes: &[u8]) -> Result<Vec<Channel>> {
    let image = read()
        .no_deep_data()
        .largest_resolution_level()
        .all_channels()
        .first_valid_layer()
        .all_attributes()
        .non_parallel()
        .from_buffered(Cursor::new(bytes))
        .map_err(|e| Error::Image(format!("EXR decode: {e}")))?;
    Ok(image
        .layer_data
        .channel_data
        .list
        .iter()
        .filter(|c| !matches!(c.name.to_string().as_str(), "R" | "G" | "B"))
        .map(|c| Channel {
            name: c.name.to_string(),
            values: c.sample_data.values_as_f32().collect(),
        })
        .collect())
}

/// Decodes an EXR. Callers that hold untrusted bytes check [`exr_size`] first.
pub fn decode_exr(bytes: &[u8]) -> Result<RgbImage> {
    let image = read()
        .no_deep_data()
        .largest_resolution_level()
        .rgb_channels(
            |size, _| RgbImage::new(size.width() as u32, size.height() as u32),
            |img: &mut RgbImage, pos, (r, g, b): (f32, f32, f32)| {
                let i = pos.y() * img.width as usize + pos.x();
                img.pixels[i] = [r, g, b];
            },
        )
        .first_valid_layer()
        .all_attributes()
        .non_parallel()
        .from_buffered(Cursor::new(bytes))
        .map_err(|e| Error::Image(format!("EXR decode: {e}")))?;
    Ok(image.layer_data.channel_data.pixels)
}

/// sRGB transfer function of a linear value clamped to [0, 1], as 8 bits.
pub fn linear_to_srgb8(v: f32) -> u8 {
    let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
    let s = if v <= 0.003_130_8 {
        v * 12.92
    } else {
        1.055 * v.powf(1.0 / 2.4) - 0.055
    };
    (s * 255.0 + 0.5) as u8
}

pub fn encode_png(image: &RgbImage) -> Result<Vec<u8>> {
    use image::ImageEncoder;
    let bytes: Vec<u8> = image
        .pixels
        .iter()
        .flat_map(|p| p.map(linear_to_srgb8))
        .collect();
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(
            &bytes,
            image.width,
            image.height,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| Error::Image(format!("PNG encode: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmse_is_the_root_mean_square_channel_difference() {
        let a = [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]];
        let b = [[1.0, 2.0, 1.0], [0.0, 2.0, 0.0]];
        assert_eq!(rmse(&a, &a), 0.0);
        assert!((rmse(&a, &b) - (8.0f64 / 6.0).sqrt()).abs() < 1e-12);
    }

    fn gradient() -> RgbImage {
        let mut img = RgbImage::new(7, 5);
        for (i, p) in img.pixels.iter_mut().enumerate() {
            *p = [i as f32 * 0.1, -(i as f32), 1e-8 * i as f32];
        }
        img
    }

    #[test]
    fn exr_round_trips_bit_exactly_and_deterministically() {
        let img = gradient();
        let bytes = encode_exr(&img).unwrap();
        assert_eq!(bytes, encode_exr(&img).unwrap());
        assert_eq!(decode_exr(&bytes).unwrap(), img);
        assert!(decode_exr(b"not an exr").is_err());
    }

    #[test]
    fn extra_channels_round_trip_beside_the_beauty_pass() {
        let image = gradient();
        let n = image.pixels.len();
        let depth = Channel {
            name: "Depth.Z".into(),
            values: (0..n).map(|i| i as f32 * 0.5).collect(),
        };
        let id = Channel {
            name: "IndexOB.X".into(),
            values: vec![3.0; n],
        };
        let bytes = encode_exr_with(&image, &[depth.clone(), id.clone()]).unwrap();
        assert_eq!(decode_exr(&bytes).unwrap(), image);
        let mut extra = decode_exr_extra(&bytes).unwrap();
        extra.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(extra, vec![depth, id]);
        assert_eq!(
            encode_exr_with(&image, &[]).unwrap(),
            encode_exr(&image).unwrap()
        );
        assert!(
            decode_exr_extra(&encode_exr(&image).unwrap())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn png_is_clamped_srgb() {
        assert_eq!(linear_to_srgb8(0.0), 0);
        assert_eq!(linear_to_srgb8(1.0), 255);
        assert_eq!(linear_to_srgb8(7.0), 255);
        assert_eq!(linear_to_srgb8(-1.0), 0);
        assert_eq!(linear_to_srgb8(0.215_86), 128);
        let png = encode_png(&gradient()).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}
