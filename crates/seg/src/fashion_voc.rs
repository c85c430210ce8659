//! Fashion-VOC: the suite's embedded segmentation data set, written in the
//! VOCdevkit layout so that the real VOC loader reads it back.
//!
//! Each image composites a few real Fashion-MNIST garments, scaled and
//! tinted in light colours, on a dark textured background (stripes, checks,
//! gradients, noise, in two colours): light garments on dark ground, as in
//! Fashion-MNIST itself. (With any colour on any ground, a from-scratch
//! model must also learn contrast-polarity invariance; in PyTorch that
//! halved the mIoU reached in 2,000 steps, see the crate README.)
//! Classes: 0 background, `1 + c` for garment class `c` (10 garments). A
//! garment's alpha is its Fashion-MNIST intensity, saturated, and 1 inside
//! its silhouette; pixels with alpha above 0.6 take its class, pixels on
//! its anti-aliased rim (alpha in 0.15-0.6) are labelled 255, like VOC's
//! object boundaries. Train images
//! use garments of the train split, val images those of the t10k split.
//! Everything is a function of the seed.

use crate::palette::{write_label, LabelMap};
use crate::voc::IGNORE;
use crate::{Error, Result};
use image::{Rgb, RgbImage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use wsbcn_train::fashion_mnist::{FashionMnist, Split, CLASSES};

/// Class names of Fashion-VOC, background first.
pub fn class_names() -> Vec<String> {
    std::iter::once("background".to_string())
        .chain(CLASSES.iter().map(|c| c.to_string()))
        .collect()
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct FashionVocConfig {
    /// Side of the square images.
    pub size: u32,
    /// Training images.
    pub train: usize,
    /// Validation images.
    pub val: usize,
    /// Garments per image, inclusive range.
    pub garments: (usize, usize),
    /// Garment scale (28 px times this), range.
    pub scale: (f32, f32),
    /// Largest fraction of a garment's box that an earlier garment's box
    /// may cover; a garment that finds no such place in 50 tries is left out.
    pub max_overlap: f32,
    /// Seed of everything.
    pub seed: u64,
}

impl FashionVocConfig {
    /// Checks that every garment fits: ranges ordered, scales positive, a
    /// garment's box under 5/3 of the image side (it is placed with up to
    /// 20% of it outside on each side, so 60% of it must fit).
    pub fn validate(&self) -> Result<()> {
        let (s0, s1) = self.scale;
        let problem = if self.size == 0 {
            Some("size must be positive".to_string())
        } else if self.garments.0 > self.garments.1 {
            Some(format!("garments {:?}: MIN above MAX", self.garments))
        } else if !(s0 > 0.0 && s0 <= s1) {
            Some(format!("scale ({s0}, {s1}): need 0 < MIN <= MAX"))
        } else if 28.0 * s1 * 0.6 >= self.size as f32 {
            Some(format!(
                "scale {s1}: a {:.0} px garment does not fit a {} px image",
                28.0 * s1,
                self.size
            ))
        } else if !(0.0..=1.0).contains(&self.max_overlap) {
            Some(format!("max_overlap {} outside [0, 1]", self.max_overlap))
        } else {
            None
        };
        problem.map_or(Ok(()), |p| Err(Error::Config(format!("fashion-voc: {p}"))))
    }
}

impl Default for FashionVocConfig {
    fn default() -> Self {
        Self {
            size: 64,
            train: 3000,
            val: 200,
            garments: (1, 3),
            scale: (1.0, 1.6),
            max_overlap: 0.2,
            seed: 0,
        }
    }
}

/// A random colour with every channel in `lo..hi`.
fn random_color(rng: &mut StdRng, lo: f32, hi: f32) -> [f32; 3] {
    [(); 3].map(|_| rng.random_range(lo..hi))
}

/// A textured background: two dark colours (channels below 0.5) up to 0.2
/// apart, in stripes, checks, a gradient or noise.
fn background(size: u32, rng: &mut StdRng) -> Vec<[f32; 3]> {
    let a = random_color(rng, 0.0, 0.3);
    let contrast = rng.random_range(0.05..0.2f32);
    let b = a.map(|v| v + contrast);
    let kind = rng.random_range(0..4);
    let period = rng.random_range(6.0..24.0f32);
    let angle = rng.random_range(0.0..std::f32::consts::PI);
    let (ca, sa) = (angle.cos(), angle.sin());
    let n = size as usize;
    (0..n * n)
        .map(|i| {
            let (x, y) = ((i % n) as f32, (i / n) as f32);
            let t = match kind {
                0 => (((x * ca + y * sa) / period).floor() as i64).rem_euclid(2) as f32,
                1 => ((((x / period).floor() + (y / period).floor()) as i64).rem_euclid(2)) as f32,
                2 => ((x * ca + y * sa) / (n as f32 * 1.5) + 0.3).clamp(0.0, 1.0),
                _ => rng.random_range(0.0..1.0),
            };
            let mut px = [0.0; 3];
            for c in 0..3 {
                px[c] = a[c] * (1.0 - t) + b[c] * t;
            }
            px
        })
        .collect()
}

/// A garment's opacity, 28x28 in `[0, 1]`: its intensity, saturated
/// (`min(1, 4 v)`), and 1 inside its silhouette, so that dark details
/// within a garment (prints, folds) are neither see-through nor labelled
/// background. The inside is what a flood fill from the border over the
/// near-black Fashion-MNIST background (`v <= 0.15`) does not reach.
fn opacity(garment: &[u8]) -> Vec<f32> {
    let side = FashionMnist::SIDE;
    let dark = |i: usize| (garment[i] as f32 / 255.0) <= 0.15;
    let mut outside = vec![false; side * side];
    let mut stack: Vec<usize> = (0..side * side)
        .filter(|&i| {
            let (x, y) = (i % side, i / side);
            (x == 0 || y == 0 || x == side - 1 || y == side - 1) && dark(i)
        })
        .collect();
    while let Some(i) = stack.pop() {
        if outside[i] {
            continue;
        }
        outside[i] = true;
        let (x, y) = (i % side, i / side);
        let neighbours = [
            (x > 0).then(|| i - 1),
            (x + 1 < side).then(|| i + 1),
            (y > 0).then(|| i - side),
            (y + 1 < side).then(|| i + side),
        ];
        stack.extend(
            neighbours
                .into_iter()
                .flatten()
                .filter(|&j| !outside[j] && dark(j)),
        );
    }
    (0..side * side)
        .map(|i| {
            if outside[i] {
                (garment[i] as f32 / 255.0 * 4.0).min(1.0)
            } else {
                1.0
            }
        })
        .collect()
}

/// Bilinear sample of a 28x28 map at fractional `(u, v)`; 0 outside.
fn sample(map: &[f32], u: f32, v: f32) -> f32 {
    let side = FashionMnist::SIDE;
    let last = (side - 1) as f32;
    if u < 0.0 || v < 0.0 || u > last || v > last {
        return 0.0;
    }
    let (x0, y0) = (u.floor() as usize, v.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(side - 1), (y0 + 1).min(side - 1));
    let (fx, fy) = (u - x0 as f32, v - y0 as f32);
    let g = |x: usize, y: usize| map[y * side + x];
    (g(x0, y0) * (1.0 - fx) + g(x1, y0) * fx) * (1.0 - fy)
        + (g(x0, y1) * (1.0 - fx) + g(x1, y1) * fx) * fy
}

/// One image and its labels.
fn compose(data: &FashionMnist, cfg: &FashionVocConfig, rng: &mut StdRng) -> (RgbImage, LabelMap) {
    let n = cfg.size as usize;
    let mut px = background(cfg.size, rng);
    let mut label = vec![0u8; n * n];
    let count = rng.random_range(cfg.garments.0..=cfg.garments.1);
    let mut placed = Vec::with_capacity(count);
    for _ in 0..count {
        let idx = rng.random_range(0..data.len());
        let garment = data.image(idx);
        let intensity_map: Vec<f32> = garment.iter().map(|&v| v as f32 / 255.0).collect();
        let alpha_map = opacity(garment);
        let class = data.labels[idx] + 1;
        let scale = rng.random_range(cfg.scale.0..=cfg.scale.1);
        let extent = 28.0 * scale;
        let place = (0..50).find_map(|_| {
            let x0 = rng.random_range(-extent * 0.2..(n as f32 - extent * 0.8));
            let y0 = rng.random_range(-extent * 0.2..(n as f32 - extent * 0.8));
            let covered = placed
                .iter()
                .map(|&(px, py, pe): &(f32, f32, f32)| {
                    let w = ((x0 + extent).min(px + pe) - x0.max(px)).max(0.0);
                    let h = ((y0 + extent).min(py + pe) - y0.max(py)).max(0.0);
                    w * h / (extent * extent)
                })
                .fold(0.0, f32::max);
            (covered <= cfg.max_overlap).then_some((x0, y0))
        });
        let Some((x0, y0)) = place else { continue };
        placed.push((x0, y0, extent));
        let tint = random_color(rng, 0.55, 1.0);
        for y in 0..n {
            for x in 0..n {
                let (u, v) = ((x as f32 - x0) / scale, (y as f32 - y0) / scale);
                let alpha = sample(&alpha_map, u, v);
                if alpha <= 0.0 {
                    continue;
                }
                let i = y * n + x;
                let intensity = sample(&intensity_map, u, v);
                for c in 0..3 {
                    let shade = tint[c] * (0.35 + 0.65 * intensity);
                    px[i][c] = px[i][c] * (1.0 - alpha) + shade * alpha;
                }
                if alpha > 0.6 {
                    label[i] = class;
                } else if alpha > 0.15 {
                    label[i] = IGNORE;
                }
            }
        }
    }
    let image = RgbImage::from_fn(cfg.size, cfg.size, |x, y| {
        let p = px[y as usize * n + x as usize];
        Rgb(p.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8))
    });
    (
        image,
        LabelMap {
            width: n,
            height: n,
            data: label,
        },
    )
}

/// Writes Fashion-VOC under `out/VOCdevkit/VOC2012` from the IDX files in
/// `mnist_dir`. Returns the `VOCdevkit` folder.
pub fn generate(mnist_dir: &Path, out: &Path, cfg: &FashionVocConfig) -> Result<PathBuf> {
    cfg.validate()?;
    let root = out.join("VOCdevkit/VOC2012");
    for d in ["JPEGImages", "SegmentationClass", "ImageSets/Segmentation"] {
        std::fs::create_dir_all(root.join(d)).map_err(|e| Error::data(root.join(d), e))?;
    }
    let mut lists = vec![];
    for (split, mnist_split, count, salt) in [
        ("train", Split::Train, cfg.train, 1u64),
        ("val", Split::Test, cfg.val, 2u64),
    ] {
        let data = FashionMnist::load(mnist_dir, mnist_split)?;
        let mut rng = StdRng::seed_from_u64(cfg.seed.wrapping_mul(0x9E37_79B9).wrapping_add(salt));
        let mut ids = Vec::with_capacity(count);
        for i in 0..count {
            let id = format!("{split}_{i:05}");
            let (image, label) = compose(&data, cfg, &mut rng);
            let ip = root.join("JPEGImages").join(format!("{id}.jpg"));
            let mut file = std::io::BufWriter::new(
                std::fs::File::create(&ip).map_err(|e| Error::data(&ip, e))?,
            );
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut file, 95)
                .encode_image(&image)
                .map_err(|e| Error::data(&ip, e))?;
            write_label(
                &root.join("SegmentationClass").join(format!("{id}.png")),
                &label,
            )?;
            ids.push(id);
        }
        lists.push((split, ids));
    }
    let mut all = vec![];
    for (split, ids) in &lists {
        write_list(&root, split, ids)?;
        all.extend(ids.iter().cloned());
    }
    write_list(&root, "trainval", &all)?;
    Ok(out.join("VOCdevkit"))
}

fn write_list(root: &Path, split: &str, ids: &[String]) -> Result<()> {
    let p = root
        .join("ImageSets/Segmentation")
        .join(format!("{split}.txt"));
    std::fs::write(&p, ids.join("\n") + "\n").map_err(|e| Error::data(&p, e))
}
