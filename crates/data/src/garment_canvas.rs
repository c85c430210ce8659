//! Fashion-MNIST garments drawn on textured backgrounds: the scene code
//! shared by the suite's embedded data sets (Fashion-VOC for segmentation,
//! Fashion-SSv2 for video).
//!
//! A [`Canvas`] is a square RGB image in `[0, 1]`, started from a dark
//! [`background`]. A [`Garment`] is a 28x28 Fashion-MNIST image turned into
//! an intensity map and an opacity: its intensity saturated (`min(1, 4 v)`),
//! and 1 inside its silhouette, so that dark details within a garment
//! (prints, folds) are neither see-through nor background. The inside is
//! what a flood fill from the border over the near-black Fashion-MNIST
//! background (`v <= 0.15`) does not reach. Painting maps every canvas pixel
//! back into the garment (scale, rotation about its centre) and samples both
//! maps bilinearly.

use crate::fashion_mnist::FashionMnist;
use rand::rngs::StdRng;
use rand::Rng;

/// A random colour with every channel in `lo..hi`.
pub fn random_color(rng: &mut StdRng, lo: f32, hi: f32) -> [f32; 3] {
    [(); 3].map(|_| rng.random_range(lo..hi))
}

/// A square RGB image, channels in `[0, 1]`, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Canvas {
    /// Width and height in pixels.
    pub size: usize,
    /// `size * size` pixels.
    pub px: Vec<[f32; 3]>,
}

impl Canvas {
    /// The pixels as RGB bytes (rounded, clamped to `[0, 1]` first).
    pub fn to_rgb8(&self) -> Vec<u8> {
        self.px
            .iter()
            .flat_map(|p| p.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8))
            .collect()
    }
}

/// A textured background: two dark colours (channels below 0.5) up to 0.2
/// apart, in stripes, checks, a gradient or noise.
pub fn background(size: usize, rng: &mut StdRng) -> Canvas {
    let a = random_color(rng, 0.0, 0.3);
    let contrast = rng.random_range(0.05..0.2f32);
    let b = a.map(|v| v + contrast);
    let kind = rng.random_range(0..4);
    let period = rng.random_range(6.0..24.0f32);
    let angle = rng.random_range(0.0..std::f32::consts::PI);
    let (ca, sa) = (angle.cos(), angle.sin());
    let n = size;
    let px = (0..n * n)
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
        .collect();
    Canvas { size, px }
}

/// Where and how a garment is painted: its 28x28 box scaled by `scale`,
/// top-left corner at `(x0, y0)` in canvas pixels before rotation, rotated
/// by `angle` radians (clockwise on screen) about the box centre.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placement {
    /// Left edge of the unrotated box.
    pub x0: f32,
    /// Top edge of the unrotated box.
    pub y0: f32,
    /// Canvas pixels per garment pixel.
    pub scale: f32,
    /// Rotation in radians.
    pub angle: f32,
}

/// A garment ready to paint: intensity and opacity maps and a tint.
#[derive(Clone, Debug)]
pub struct Garment {
    intensity: Vec<f32>,
    alpha: Vec<f32>,
    tint: [f32; 3],
}

impl Garment {
    /// A garment from a 28x28 Fashion-MNIST image, shaded in `tint`.
    pub fn new(image: &[u8], tint: [f32; 3]) -> Self {
        Self {
            intensity: image.iter().map(|&v| v as f32 / 255.0).collect(),
            alpha: opacity(image),
            tint,
        }
    }

    /// Paints the garment onto `canvas`; `mark(i, alpha)` is called for
    /// every canvas pixel `i` it covers with opacity `alpha > 0`.
    pub fn paint(&self, canvas: &mut Canvas, at: Placement, mut mark: impl FnMut(usize, f32)) {
        let n = canvas.size;
        let half = FashionMnist::SIDE as f32 * at.scale / 2.0;
        let (cx, cy) = (at.x0 + half, at.y0 + half);
        let (ca, sa) = (at.angle.cos(), at.angle.sin());
        let rotated = at.angle != 0.0;
        for y in 0..n {
            for x in 0..n {
                let (u, v) = if rotated {
                    // Inverse rotation of the offset from the box centre.
                    let (dx, dy) = (x as f32 - cx, y as f32 - cy);
                    let (rx, ry) = (ca * dx + sa * dy, -sa * dx + ca * dy);
                    ((rx + half) / at.scale, (ry + half) / at.scale)
                } else {
                    ((x as f32 - at.x0) / at.scale, (y as f32 - at.y0) / at.scale)
                };
                let alpha = sample(&self.alpha, u, v);
                if alpha <= 0.0 {
                    continue;
                }
                let i = y * n + x;
                let intensity = sample(&self.intensity, u, v);
                for c in 0..3 {
                    let shade = self.tint[c] * (0.35 + 0.65 * intensity);
                    canvas.px[i][c] = canvas.px[i][c] * (1.0 - alpha) + shade * alpha;
                }
                mark(i, alpha);
            }
        }
    }
}

/// A garment's opacity, 28x28 in `[0, 1]` (see the module docs).
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
