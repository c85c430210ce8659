//! Sample preparation as in the official DeepLabv3 recipe.
//!
//! Training: random scale `s`, log-uniform in `[scale_min, scale_max]`
//! (image bilinear, label nearest), pad to the crop size (image with the
//! mean, i.e. 0 after normalization; label with 255), random crop, random
//! horizontal flip, then `(v / 255 - mean) / std` per channel. Evaluation:
//! the whole image, normalized. Samples are `(3, H, W)` f32 and `(H, W)` u8.
//!
//! The bilinear resize is `fast_image_resize`'s convolution (SIMD; its
//! filter support widens when shrinking, as Pillow's `BILINEAR`): the
//! `image` crate's `resize` took two thirds of a VOC-size sample's time
//! (`cargo bench -p wsbcn-seg --bench pipeline`). Only the crop window is
//! normalized.

use crate::palette::LabelMap;
use crate::voc::IGNORE;
use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// The augmentation section of a config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Side of the square training crop.
    pub crop: usize,
    /// Smallest random scale.
    pub scale_min: f64,
    /// Largest random scale.
    pub scale_max: f64,
    /// Random horizontal flips.
    pub flip: bool,
    /// Per-channel mean (of `v / 255`), ImageNet's by default.
    pub mean: [f32; 3],
    /// Per-channel std, ImageNet's by default.
    pub std: [f32; 3],
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            crop: 513,
            scale_min: 0.5,
            scale_max: 2.0,
            flip: true,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }
}

/// A prepared sample: normalized `(3, h, w)` pixels and `(h, w)` labels.
#[derive(Clone, Debug, PartialEq)]
pub struct SegSample {
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Normalized pixels, channel-major.
    pub image: Vec<f32>,
    /// Class indices (255: ignore).
    pub label: Vec<u8>,
}

/// Nearest-neighbour resize of a label map (PyTorch's `nearest`:
/// `src = floor(dst * in / out)`).
pub fn resize_label(label: &LabelMap, width: usize, height: usize) -> LabelMap {
    let mut data = Vec::with_capacity(width * height);
    for y in 0..height {
        let sy = (y * label.height / height).min(label.height - 1);
        for x in 0..width {
            let sx = (x * label.width / width).min(label.width - 1);
            data.push(label.data[sy * label.width + sx]);
        }
    }
    LabelMap {
        width,
        height,
        data,
    }
}

/// `(v / 255 - mean[c]) / std[c]`.
fn normalized(v: u8, c: usize, cfg: &AugmentConfig) -> f32 {
    (v as f32 / 255.0 - cfg.mean[c]) / cfg.std[c]
}

fn normalize(image: &RgbImage, cfg: &AugmentConfig) -> Vec<f32> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let mut out = vec![0f32; 3 * w * h];
    for (i, p) in image.pixels().enumerate() {
        for c in 0..3 {
            out[c * w * h + i] = normalized(p[c], c, cfg);
        }
    }
    out
}

/// `image` resized to `width x height` with a bilinear filter (see the
/// module docs); RGB bytes, row-major.
pub fn resize_rgb(image: &RgbImage, width: u32, height: u32) -> Vec<u8> {
    if image.width() == 0 || image.height() == 0 {
        return vec![0; 3 * width as usize * height as usize];
    }
    let mut dst = Image::new(width, height, PixelType::U8x3);
    let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    // A non-empty RGB image is a U8x3 source, the pixel type of `dst`: the
    // resize's only errors (mismatched or unsupported pixel types) cannot
    // occur.
    Resizer::new()
        .resize(image, &mut dst, &opts)
        .expect("a U8x3 resize of an RGB image");
    dst.into_vec()
}

/// The whole image, normalized (evaluation).
pub fn eval_sample(image: &RgbImage, label: &LabelMap, cfg: &AugmentConfig) -> SegSample {
    SegSample {
        h: label.height,
        w: label.width,
        image: normalize(image, cfg),
        label: label.data.clone(),
    }
}

/// A training sample: scale, pad, crop, flip, normalize (see the module docs).
pub fn train_sample(
    image: &RgbImage,
    label: &LabelMap,
    cfg: &AugmentConfig,
    rng: &mut StdRng,
) -> SegSample {
    let s = if cfg.scale_max > cfg.scale_min {
        rng.random_range(cfg.scale_min.ln()..cfg.scale_max.ln())
            .exp()
    } else {
        cfg.scale_min
    };
    let nw = ((image.width() as f64 * s).round() as u32).max(1);
    let nh = ((image.height() as f64 * s).round() as u32).max(1);
    let pixels = resize_rgb(image, nw, nh);
    let label = resize_label(label, nw as usize, nh as usize);
    let crop = cfg.crop;
    let (w, h) = (nw as usize, nh as usize);
    let x0 = if w > crop {
        rng.random_range(0..=w - crop)
    } else {
        0
    };
    let y0 = if h > crop {
        rng.random_range(0..=h - crop)
    } else {
        0
    };
    let flip = cfg.flip && rng.random_bool(0.5);
    let mut out = SegSample {
        h: crop,
        w: crop,
        image: vec![0f32; 3 * crop * crop],
        label: vec![IGNORE; crop * crop],
    };
    for y in 0..crop.min(h - y0) {
        for x in 0..crop.min(w - x0) {
            let dx = if flip { crop - 1 - x } else { x };
            let (src, dst) = ((y + y0) * w + x + x0, y * crop + dx);
            out.label[dst] = label.data[src];
            for c in 0..3 {
                out.image[c * crop * crop + dst] = normalized(pixels[3 * src + c], c, cfg);
            }
        }
    }
    out
}
