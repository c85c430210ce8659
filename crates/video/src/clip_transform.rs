//! Clip augmentation and normalization, as mmaction2's pipelines.
//!
//! Training (`MultiScaleCrop` + `Resize` + `Flip` + `Normalize`): a crop
//! of `short * s_w` by `short * s_h` pixels, `s_w, s_h` drawn from `scales`
//! at most one step apart (`max_wh_scale_gap = 1`), at a random position,
//! resized to `crop x crop` (bilinear), flipped horizontally with
//! probability 1/2 (the label then maps through `flip_label_map`, for
//! classes such as "left to right" that a flip turns into another), then
//! `(v / 255 - mean) / std`. The same crop and flip hold for every frame.
//! Testing: the frames scaled so the short side is `crop / 0.875` (256 for
//! 224, as mmaction2), then a centre crop (`crops = 1`) or three crops
//! along the long side (`crops = 3`, `ThreeCrop`).
//!
//! A clip is `(3, T, crop, crop)` f32, channel-major.

use crate::decode::Frames;
use crate::{Error, Result};
use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// The augmentation section of a video config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClipAugment {
    /// Side of the square crop the model sees.
    pub crop: usize,
    /// Crop sides as fractions of the short side (training).
    pub scales: Vec<f64>,
    /// Random horizontal flips (training).
    pub flip: bool,
    /// Label pairs a horizontal flip swaps (`[[a, b], ...]`).
    pub flip_label_map: Vec<[usize; 2]>,
    /// Per-channel mean of `v / 255`, ImageNet's by default.
    pub mean: [f32; 3],
    /// Per-channel std, ImageNet's by default.
    pub std: [f32; 3],
}

impl Default for ClipAugment {
    fn default() -> Self {
        Self {
            crop: 112,
            scales: vec![1.0, 0.875, 0.75, 0.66],
            flip: true,
            flip_label_map: vec![],
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }
}

impl ClipAugment {
    /// Checks the crop, the scales and the flip map against `classes`.
    pub fn validate(&self, classes: usize) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("data.augment: {m}")));
        if self.crop == 0 {
            return bad("crop must be positive".into());
        }
        if self.scales.is_empty() || self.scales.iter().any(|s| !(*s > 0.0 && *s <= 1.0)) {
            return bad(format!("scales {:?}: need values in (0, 1]", self.scales));
        }
        if let Some(p) = self
            .flip_label_map
            .iter()
            .find(|p| p.iter().any(|&c| c >= classes))
        {
            return bad(format!(
                "flip_label_map pair {p:?} outside the {classes} classes"
            ));
        }
        Ok(())
    }

    fn flipped_label(&self, label: usize) -> usize {
        for [a, b] in &self.flip_label_map {
            if label == *a {
                return *b;
            }
            if label == *b {
                return *a;
            }
        }
        label
    }
}

/// A prepared clip.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipSample {
    /// Frames.
    pub t: usize,
    /// Side of the square frames.
    pub side: usize,
    /// `(3, t, side, side)` normalized pixels.
    pub data: Vec<f32>,
    /// Class index (after a flip's label swap).
    pub label: usize,
}

/// A source rectangle `(x0, y0, w, h)` in frame pixels.
type Region = (f64, f64, f64, f64);

/// The bilinear taps `(i0, i1, weight of i1)` of output pixels `o` along
/// one axis: `extent` source pixels from `start` onto `side` outputs
/// (half-pixel centres, as `align_corners = False`), clamped to `len`.
fn axis(o: usize, start: f64, extent: f64, side: usize, len: usize) -> (usize, usize, f32) {
    let s = (start + (o as f64 + 0.5) * extent / side as f64 - 0.5).clamp(0.0, (len - 1) as f64);
    let i0 = s.floor() as usize;
    (i0, (i0 + 1).min(len - 1), (s - i0 as f64) as f32)
}

/// Samples `region` of every frame bilinearly onto `side x side`, mirrored
/// when `flip`, and normalizes. `frames` holds the columns `left..left +
/// frames.width` of frames `source_width` wide, which must include every
/// column the region's taps read ([`TrainView::columns`]).
fn render(
    frames: &Frames,
    left: usize,
    source_width: usize,
    region: Region,
    side: usize,
    flip: bool,
    aug: &ClipAugment,
) -> Vec<f32> {
    let (x0, y0, rw, rh) = region;
    let (fw, fh) = (frames.width, frames.height);
    let t = frames.count;
    let xs: Vec<_> = (0..side)
        .map(|o| {
            let (i0, i1, w) = axis(
                if flip { side - 1 - o } else { o },
                x0,
                rw,
                side,
                source_width,
            );
            (i0 - left, i1 - left, w)
        })
        .collect();
    let ys: Vec<_> = (0..side).map(|o| axis(o, y0, rh, side, fh)).collect();
    let mut out = vec![0f32; 3 * t * side * side];
    for f in 0..t {
        let px = frames.frame(f);
        let at = |x: usize, y: usize, c: usize| px[(y * fw + x) * 3 + c] as f32;
        for (oy, &(y0, y1, wy)) in ys.iter().enumerate() {
            for (ox, &(x0, x1, wx)) in xs.iter().enumerate() {
                for c in 0..3 {
                    let top = at(x0, y0, c) * (1.0 - wx) + at(x1, y0, c) * wx;
                    let bottom = at(x0, y1, c) * (1.0 - wx) + at(x1, y1, c) * wx;
                    let v = (top * (1.0 - wy) + bottom * wy) / 255.0;
                    out[((c * t + f) * side + oy) * side + ox] = (v - aug.mean[c]) / aug.std[c];
                }
            }
        }
    }
    out
}

/// The crop and flip of a training clip, drawn from the frames' size
/// alone, so that a JPEG cache can decode only the columns the clip reads
/// ([`TrainView::columns`]) before rendering it ([`TrainView::clip`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainView {
    region: Region,
    flip: bool,
    width: usize,
    height: usize,
    /// The clip's side (the augmentation's `crop`).
    side: usize,
}

impl ClipAugment {
    /// Draws a training clip's crop and flip for `width x height` frames
    /// (see the module docs).
    pub fn train_view(&self, width: usize, height: usize, rng: &mut StdRng) -> TrainView {
        let short = width.min(height) as f64;
        let n = self.scales.len();
        let i = rng.random_range(0..n);
        let j = rng.random_range(i.saturating_sub(1)..(i + 2).min(n));
        let (cw, ch) = (short * self.scales[i], short * self.scales[j]);
        let x0 = rng.random_range(0.0..=(width as f64 - cw).max(0.0));
        let y0 = rng.random_range(0.0..=(height as f64 - ch).max(0.0));
        let flip = self.flip && rng.random_bool(0.5);
        TrainView {
            region: (x0, y0, cw, ch),
            flip,
            width,
            height,
            side: self.crop,
        }
    }
}

impl TrainView {
    /// The frame columns the clip's bilinear taps read. The taps grow with
    /// the output column (`axis` is monotone; a flip only reorders them), so
    /// the first and last outputs bound them.
    pub fn columns(&self) -> Range<usize> {
        let (x0, _, rw, _) = self.region;
        let first = axis(0, x0, rw, self.side, self.width).0;
        let last = axis(self.side.saturating_sub(1), x0, rw, self.side, self.width).1;
        first..last + 1
    }

    /// The clip from `frames`, the columns `left..left + frames.width` of
    /// the frames this view was drawn for, normalized as `aug` says (whose
    /// `crop` the view was drawn with); an error unless they hold
    /// [`TrainView::columns`].
    pub fn clip(
        &self,
        frames: &Frames,
        left: usize,
        label: usize,
        aug: &ClipAugment,
    ) -> Result<ClipSample> {
        let need = self.columns();
        if frames.height != self.height
            || left > need.start
            || left + frames.width < need.end
            || left + frames.width > self.width
        {
            return Err(Error::Config(format!(
                "a training view reads columns {need:?} of {}x{} frames; given columns {}..{} \
                 of {} rows",
                self.width,
                self.height,
                left,
                left + frames.width,
                frames.height
            )));
        }
        Ok(self.sample(frames, left, label, aug))
    }

    /// [`TrainView::clip`] without the check of the columns.
    fn sample(&self, frames: &Frames, left: usize, label: usize, aug: &ClipAugment) -> ClipSample {
        ClipSample {
            t: frames.count,
            side: self.side,
            data: render(
                frames,
                left,
                self.width,
                self.region,
                self.side,
                self.flip,
                aug,
            ),
            label: if self.flip {
                aug.flipped_label(label)
            } else {
                label
            },
        }
    }
}

/// A training clip from whole decoded `frames` (see the module docs).
pub fn train_clip(
    frames: &Frames,
    label: usize,
    aug: &ClipAugment,
    rng: &mut StdRng,
) -> ClipSample {
    // Whole frames hold every column a view of them reads.
    aug.train_view(frames.width, frames.height, rng)
        .sample(frames, 0, label, aug)
}

/// Test clips: a centre crop (`crops = 1`) or three crops along the long
/// side (`crops = 3`) of the frames scaled to a short side of `crop / 0.875`.
pub fn test_clips(
    frames: &Frames,
    label: usize,
    aug: &ClipAugment,
    crops: usize,
) -> Result<Vec<ClipSample>> {
    if crops != 1 && crops != 3 {
        return Err(Error::Config(format!("{crops} spatial crops: use 1 or 3")));
    }
    let (w, h) = (frames.width as f64, frames.height as f64);
    // The crop covers 0.875 of the short side (224 of 256).
    let side = 0.875 * w.min(h);
    let (cx, cy) = ((w - side) / 2.0, (h - side) / 2.0);
    let starts: Vec<(f64, f64)> = match crops {
        1 => vec![(cx, cy)],
        _ if w >= h => vec![(0.0, cy), (cx, cy), (w - side, cy)],
        _ => vec![(cx, 0.0), (cx, cy), (cx, h - side)],
    };
    Ok(starts
        .into_iter()
        .map(|(x0, y0)| ClipSample {
            t: frames.count,
            side: aug.crop,
            data: render(
                frames,
                0,
                frames.width,
                (x0, y0, side, side),
                aug.crop,
                false,
                aug,
            ),
            label,
        })
        .collect())
}
