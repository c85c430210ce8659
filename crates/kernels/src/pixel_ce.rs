//! Per-pixel cross-entropy as one CPU op with its own backward pass.
//!
//! For logits `z: (N, K, H, W)`, targets `t` and per-pixel weights
//! `a_p = w[t_p]` (0 on ignored pixels), with `s = 1 / sum_p a_p`:
//!
//! ```text
//! L       = s sum_p a_p (logsumexp_k z_kp - z_{t_p} p)
//! dL/dz_kp = s a_p (softmax_k(z_p) - [k = t_p])
//! ```
//!
//! Composed from candle ops the loss is about a dozen full-size tensors
//! forward and as many backward (log-softmax, gather, masks, products);
//! here it is one pass over the logits each way, with sums in f64.

use crate::profile::{Direction, Kind, Span};
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;
use std::sync::Arc;

/// The loss of logits of shape `(N, K, H, W)` against fixed targets.
#[derive(Clone, Debug)]
pub struct PixelCrossEntropy {
    /// `(N, K, HW)`.
    pub dims: (usize, usize, usize),
    /// Class index per pixel, `(N, HW)` row-major; ignored pixels any value.
    pub targets: Arc<Vec<u32>>,
    /// `s a_p` per pixel, `(N, HW)`: zero on ignored pixels.
    pub coef: Arc<Vec<f64>>,
}

/// Per image: `max_k z_kp` and `sum_k exp(z_kp - max)` for every pixel.
fn softmax_stats<T: WithDType>(z: &[T], k: usize, hw: usize) -> (Vec<f64>, Vec<f64>) {
    let mut max = vec![f64::NEG_INFINITY; hw];
    for c in 0..k {
        for (m, v) in max.iter_mut().zip(&z[c * hw..(c + 1) * hw]) {
            *m = m.max(v.to_f64());
        }
    }
    let mut sum = vec![0f64; hw];
    for c in 0..k {
        for ((s, v), m) in sum.iter_mut().zip(&z[c * hw..(c + 1) * hw]).zip(&max) {
            *s += (v.to_f64() - m).exp();
        }
    }
    (max, sum)
}

impl PixelCrossEntropy {
    fn loss<T: WithDType>(&self, z: &[T]) -> T {
        let (n, k, hw) = self.dims;
        let total: f64 = (0..n)
            .into_par_iter()
            .map(|i| {
                let z = &z[i * k * hw..(i + 1) * k * hw];
                let (max, sum) = softmax_stats(z, k, hw);
                let (t, a) = (&self.targets[i * hw..], &self.coef[i * hw..]);
                (0..hw)
                    .filter(|&p| a[p] != 0.0)
                    .map(|p| a[p] * (max[p] + sum[p].ln() - z[t[p] as usize * hw + p].to_f64()))
                    .sum::<f64>()
            })
            .sum();
        T::from_f64(total)
    }

    fn grad<T: WithDType>(&self, z: &[T], g: f64) -> Vec<T> {
        let (_, k, hw) = self.dims;
        let mut dz = vec![T::zero(); z.len()];
        dz.par_chunks_mut(k * hw)
            .zip(z.par_chunks(k * hw))
            .enumerate()
            .for_each(|(i, (dz, z))| {
                let (max, sum) = softmax_stats(z, k, hw);
                let (t, a) = (&self.targets[i * hw..], &self.coef[i * hw..]);
                for c in 0..k {
                    let (dz, z) = (&mut dz[c * hw..(c + 1) * hw], &z[c * hw..(c + 1) * hw]);
                    for p in 0..hw {
                        if a[p] != 0.0 {
                            let softmax = (z[p].to_f64() - max[p]).exp() / sum[p];
                            let onehot = if t[p] as usize == c { 1.0 } else { 0.0 };
                            dz[p] = T::from_f64(g * a[p] * (softmax - onehot));
                        }
                    }
                }
            });
        dz
    }
}

impl CustomOp1 for PixelCrossEntropy {
    fn name(&self) -> &'static str {
        "pixel-cross-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let _span = Span::new(Direction::Forward, Kind::Loss);
        let out = crate::slice::float_op!(self.name(), (s, l), |z| vec![self.loss(z)]);
        Ok((out, Shape::from(())))
    }

    fn bwd(&self, z: &Tensor, _: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let _span = Span::new(Direction::Backward, Kind::Loss);
        let g = grad.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        Ok(Some(z.apply_op1_no_bwd(&PixelCrossEntropyGrad {
            loss: self.clone(),
            g,
        })?))
    }
}

/// `dL/dz` times the incoming scalar gradient `g`.
struct PixelCrossEntropyGrad {
    loss: PixelCrossEntropy,
    g: f64,
}

impl CustomOp1 for PixelCrossEntropyGrad {
    fn name(&self) -> &'static str {
        "pixel-cross-entropy-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = crate::slice::float_op!(self.name(), (s, l), |z| self.loss.grad(z, self.g));
        Ok((out, l.shape().clone()))
    }
}
