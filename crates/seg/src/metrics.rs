//! Segmentation metrics from a confusion matrix accumulated over a whole
//! data set, as mmsegmentation computes them:
//!
//! ```text
//! IoU_c            = TP_c / (TP_c + FP_c + FN_c)    (undefined when the class is in neither
//!                                                   prediction nor ground truth: excluded)
//! mIoU             = mean of the defined IoU_c
//! pixel accuracy   = sum_c TP_c / (labelled pixels)
//! class accuracy_c = TP_c / (TP_c + FN_c)           (undefined when the class is absent)
//! ```
//!
//! Pixels labelled 255 are ignored.

use crate::voc::IGNORE;
use crate::{Error, Result};

/// A `K x K` confusion matrix: rows ground truth, columns prediction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfusionMatrix {
    k: usize,
    counts: Vec<u64>,
}

/// The summary metrics of a confusion matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct SegMetrics {
    /// Mean IoU over the classes where it is defined.
    pub miou: f64,
    /// Share of labelled pixels predicted right.
    pub pixel_accuracy: f64,
    /// Mean per-class accuracy over the classes present.
    pub mean_class_accuracy: f64,
    /// Per-class IoU (`None`: class in neither prediction nor ground truth).
    pub iou: Vec<Option<f64>>,
}

fn mean(values: impl Iterator<Item = Option<f64>>) -> f64 {
    let (sum, n) = values
        .flatten()
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

impl ConfusionMatrix {
    /// An empty matrix over `k` classes.
    pub fn new(k: usize) -> Self {
        Self {
            k,
            counts: vec![0; k * k],
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.k
    }

    /// Sums the matrices of all ranks of `world` into this one, on every
    /// rank: the matrix of the whole split when each rank counted a shard.
    pub fn all_reduce(&mut self, world: &wsbcn_dist::World) {
        world.all_reduce_sum(&mut self.counts);
    }

    /// The count of pixels of class `gt` predicted as `pred`.
    pub fn count(&self, gt: usize, pred: usize) -> u64 {
        self.counts[gt * self.k + pred]
    }

    /// Adds one image: ground truth and prediction of the same length.
    pub fn add(&mut self, gt: &[u8], pred: &[u8]) -> Result<()> {
        if gt.len() != pred.len() {
            return Err(Error::Config(format!(
                "confusion matrix: {} labels but {} predictions",
                gt.len(),
                pred.len()
            )));
        }
        for (&g, &p) in gt.iter().zip(pred) {
            if g == IGNORE {
                continue;
            }
            let (g, p) = (g as usize, p as usize);
            if g >= self.k || p >= self.k {
                return Err(Error::Config(format!(
                    "confusion matrix: class {} outside 0..{}",
                    g.max(p),
                    self.k
                )));
            }
            self.counts[g * self.k + p] += 1;
        }
        Ok(())
    }

    /// The metrics of the matrix.
    pub fn metrics(&self) -> SegMetrics {
        let k = self.k;
        let tp = |c: usize| self.count(c, c) as f64;
        let gt = |c: usize| (0..k).map(|p| self.count(c, p)).sum::<u64>() as f64;
        let pred = |c: usize| (0..k).map(|g| self.count(g, c)).sum::<u64>() as f64;
        let iou: Vec<Option<f64>> = (0..k)
            .map(|c| {
                let union = gt(c) + pred(c) - tp(c);
                (union > 0.0).then(|| tp(c) / union)
            })
            .collect();
        let total: f64 = (0..k).map(gt).sum();
        let correct: f64 = (0..k).map(tp).sum();
        SegMetrics {
            miou: mean(iou.iter().copied()),
            pixel_accuracy: if total > 0.0 { correct / total } else { 0.0 },
            mean_class_accuracy: mean((0..k).map(|c| (gt(c) > 0.0).then(|| tp(c) / gt(c)))),
            iou,
        }
    }
}

impl SegMetrics {
    /// A markdown table of per-class IoU, `-` where undefined.
    pub fn table(&self, names: &[String]) -> String {
        let mut s = String::from("| class | IoU % |\n|---|---:|\n");
        for (i, iou) in self.iou.iter().enumerate() {
            let name = names.get(i).map_or_else(|| i.to_string(), Clone::clone);
            match iou {
                Some(v) => s += &format!("| {name} | {:.1} |\n", v * 100.0),
                None => s += &format!("| {name} | - |\n"),
            }
        }
        s
    }
}
