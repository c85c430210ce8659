//! Weight Standardization of a conv kernel as one CPU op each way (the
//! method, its variants and its checks are `wsbcn-nn`'s
//! `weight_standardization`). For `W: (O, I)` (each output channel's
//! fan-in of `I` elements a row), with `c = W[i] - mean_j W[i, j]` and
//! `g = dL/dW_hat`:
//!
//! ```text
//! W_hat = c / s,   dL/dW = (g - mean(g) - k <g, W_hat> W_hat) / s
//! Biased:   s = sqrt(sum c^2 / I + eps),        k = 1/I
//! Unbiased: s = sqrt(sum c^2 / (I - 1) + eps),  k = 1/(I - 1)
//! StdEps:   s = sqrt(sum c^2 / (I - 1)) + eps,  k = s / (sigma (I - 1)), sigma = s - eps
//! ```
//!
//! Rows are read into f64 once and reduced in eight lanes; candle's
//! composite form costs about 1 ms of small backward ops per 3x3 64->64
//! kernel.

use crate::profile::{Direction, Kind, Span};
use crate::slice::{contiguous, lane_sum, lane_sum2, with_avx2};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;

/// How a row's divisor `s` and gradient constant `k` are formed (see the
/// module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowScale {
    /// The biased variance, eps inside the sqrt.
    Biased,
    /// The unbiased variance, eps inside the sqrt.
    Unbiased,
    /// The unbiased standard deviation plus eps.
    StdEps,
}

/// `W_hat` for `w: (O, ...)` on the CPU (f32 or f64), contiguous and shaped
/// like `w`, with its own backward pass.
pub fn standardize_rows(w: &Tensor, scale: RowScale, eps: f64) -> candle_core::Result<Tensor> {
    w.contiguous()?.apply_op1(Standardize { scale, eps })
}

/// Per-row constants of the fused op: `(mean, s, k)` (see the module docs).
#[inline(always)]
fn row_stats(row: &[f64], scale: RowScale, eps: f64) -> (f64, f64, f64) {
    let n = row.len() as f64;
    let mean = lane_sum(row, |v| v) / n;
    let ss = lane_sum(row, |v| (v - mean) * (v - mean));
    let nu = (n - 1.0).max(1.0);
    match scale {
        RowScale::Unbiased => (mean, (ss / nu + eps).sqrt(), 1.0 / nu),
        RowScale::StdEps => {
            let sigma = (ss / nu).sqrt();
            let s = sigma + eps;
            (mean, s, if sigma > 0.0 { s / (sigma * nu) } else { 0.0 })
        }
        RowScale::Biased => (mean, (ss / n + eps).sqrt(), 1.0 / n),
    }
}

/// The fused forward: `W_hat` row by row.
struct Standardize {
    scale: RowScale,
    eps: f64,
}

impl Standardize {
    fn run<T: WithDType>(&self, w: &[T], o: usize) -> Vec<T> {
        let fan_in = w.len() / o;
        let mut out = vec![T::zero(); w.len()];
        out.par_chunks_mut(fan_in)
            .zip(w.par_chunks(fan_in))
            .for_each_init(Vec::new, |row, (dst, src)| {
                with_avx2(|| {
                    row.clear();
                    row.extend(src.iter().map(|v| v.to_f64()));
                    let (mean, s, _) = row_stats(row, self.scale, self.eps);
                    let inv = 1.0 / s;
                    for (d, v) in dst.iter_mut().zip(row.iter()) {
                        *d = T::from_f64((v - mean) * inv);
                    }
                })
            });
        out
    }
}

impl CustomOp1 for Standardize {
    fn name(&self) -> &'static str {
        "weight-standardization"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let _span = Span::new(Direction::Forward, Kind::Ws);
        let o = l.dims()[0];
        let out = match s {
            CpuStorage::F32(_) => {
                CpuStorage::F32(self.run(contiguous::<f32>("weight standardization", s, l)?, o))
            }
            CpuStorage::F64(_) => {
                CpuStorage::F64(self.run(contiguous::<f64>("weight standardization", s, l)?, o))
            }
            _ => candle_core::bail!("fused weight standardization supports f32 and f64"),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, w: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let _span = Span::new(Direction::Backward, Kind::Ws);
        let grad = grad.contiguous()?;
        let op = StandardizeGrad {
            scale: self.scale,
            eps: self.eps,
        };
        Ok(Some(w.apply_op2_no_bwd(&grad, &op)?))
    }
}

/// The fused backward: `dL/dW` from `W` and `g = dL/dW_hat`.
struct StandardizeGrad {
    scale: RowScale,
    eps: f64,
}

impl StandardizeGrad {
    fn run<T: WithDType>(&self, w: &[T], g: &[T], o: usize) -> Vec<T> {
        let fan_in = w.len() / o;
        let mut out = vec![T::zero(); w.len()];
        out.par_chunks_mut(fan_in)
            .zip(w.par_chunks(fan_in).zip(g.par_chunks(fan_in)))
            .for_each_init(Vec::new, |row, (dst, (wc, gc))| {
                with_avx2(|| {
                    row.clear();
                    row.extend(wc.iter().map(|v| v.to_f64()));
                    let (mean, s, k) = row_stats(row, self.scale, self.eps);
                    let inv = 1.0 / s;
                    let mean_g = lane_sum(gc, |v| v.to_f64()) / fan_in as f64;
                    let dot = lane_sum2(row, gc, |v, g| (v - mean) * inv * g.to_f64());
                    for ((d, v), g) in dst.iter_mut().zip(row.iter()).zip(gc) {
                        let w_hat = (v - mean) * inv;
                        *d = T::from_f64((g.to_f64() - mean_g - k * dot * w_hat) * inv);
                    }
                })
            });
        out
    }
}

impl CustomOp2 for StandardizeGrad {
    fn name(&self) -> &'static str {
        "weight-standardization-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let o = l1.dims()[0];
        let out = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(self.run(
                contiguous::<f32>("weight standardization", s1, l1)?,
                contiguous::<f32>("weight standardization", s2, l2)?,
                o,
            )),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(self.run(
                contiguous::<f64>("weight standardization", s1, l1)?,
                contiguous::<f64>("weight standardization", s2, l2)?,
                o,
            )),
            _ => candle_core::bail!("fused weight standardization supports f32 and f64"),
        };
        Ok((out, l1.shape().clone()))
    }
}
