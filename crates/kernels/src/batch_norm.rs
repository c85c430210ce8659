//! Per-channel normalization (BatchNorm and estimated BN) as one CPU op,
//! forward and backward each a pass over the activation, and the channel
//! statistics in one more.
//!
//! Written by hand for the reason of [`crate::group_norm`]: candle
//! builds BN from about ten element-wise ops forward and twenty backward,
//! each a pass with its own allocation, and with the running-statistics
//! updates as many small ops again. On the comparisons' CPU-scale models
//! they cost more than the convolutions: 3,000 steps of the small
//! Fashion-VOC DeepLabV3 with BN at batch 1 on one thread took 7.7 s with the
//! composite and 5.0 s fused (one run each, 2026-11-30). For `x: (N, C, L)`, per channel `c`
//! over its `M = N * L` values, `w, b: (C,)`, `r = 1 / sqrt(var + eps)`:
//!
//! ```text
//! x_hat = (x - mean[c]) r[c],   y = w[c] x_hat + b[c]
//! batch statistics (mean, var of x itself, gradient through them):
//!   dx = r w (dy - A/M - x_hat B/M),  A = sum dy,  B = sum dy x_hat   (per channel)
//! batch statistics over several processes (SyncBN; M, A and B summed
//! over the processes, dw and db each process's own):
//!   dx = r w (dy - A/M - x_hat B/M)
//! given statistics (running or estimated, constants):
//!   dx = r w dy
//! dw[c] = sum_(n, l) dy x_hat,   db[c] = sum_(n, l) dy
//! ```
//!
//! Sums run per `(n, c)` row in eight f64 lanes (`lane_sum`, `lane_sum_sq`), then over
//! the rows of a channel in order, so the result does not depend on the
//! thread count.

use crate::affine_norm::{write_affine_grads, AffineNorm, AffineNormOp};
use crate::profile::{Direction, Kind, Span};
use crate::slice::{contiguous, lane_sum, lane_sum2, lane_sum_sq, with_avx2};
use candle_core::{CpuStorage, Tensor, WithDType};
use rayon::prelude::*;
use std::sync::Arc;

/// Per-channel mean of `x: (N, C, L)` and the mean squared deviation about
/// `center` (the mean itself when `None`: the biased variance), in f64 and
/// in one pass over `x` (shifted sums, see `moments`).
pub fn channel_moments(
    x: &Tensor,
    center: Option<&[f64]>,
) -> candle_core::Result<(Vec<f64>, Vec<f64>)> {
    let _span = Span::new(Direction::Forward, Kind::Norm);
    let x = x.contiguous()?;
    let (n, c, l) = x.dims3()?;
    if n * l == 0 {
        candle_core::bail!("channel moments: no values per channel in {:?}", x.shape());
    }
    if let Some(k) = center.filter(|k| k.len() != c) {
        candle_core::bail!("channel moments: {} centers for {c} channels", k.len());
    }
    let (storage, layout) = x.storage_and_layout();
    let candle_core::Storage::Cpu(s) = &*storage else {
        candle_core::bail!("channel moments: a CPU tensor is needed");
    };
    Ok(match s {
        CpuStorage::F32(_) => moments(
            contiguous::<f32>("channel moments", s, layout)?,
            n,
            c,
            l,
            center,
        ),
        CpuStorage::F64(_) => moments(
            contiguous::<f64>("channel moments", s, layout)?,
            n,
            c,
            l,
            center,
        ),
        _ => candle_core::bail!("channel moments support f32 and f64"),
    })
}

/// The moments of [`channel_moments`] in one pass over `x`, by shifted
/// sums: per channel, with a shift `k` (the given center, or else the
/// channel's first value), `S1 = sum (x - k)` and `S2 = sum (x - k)^2` over
/// its `M` values, in f64, and then
///
/// ```text
/// mean = k + S1/M,   about the center: S2/M,   var = S2/M - (S1/M)^2
/// ```
///
/// The textbook one-pass form, `var = E[x^2] - E[x]^2`, loses all of its
/// digits when the mean is large against the spread (`1e8 + N(0, 1)` in
/// f64). Shifted by a value of the channel, the cancellation is only
/// `(mean - k)^2 / var`: at most `M - 1` (when `k` is the one outlier),
/// usually a few units.
/// Rows are summed in parallel and added per channel in order, so the
/// result does not depend on the thread count.
fn moments<T: WithDType>(
    x: &[T],
    n: usize,
    c: usize,
    l: usize,
    center: Option<&[f64]>,
) -> (Vec<f64>, Vec<f64>) {
    let m = (n * l) as f64;
    let shift: Vec<f64> = match center {
        Some(k) => k.to_vec(),
        None => (0..c).map(|ch| x[ch * l].to_f64()).collect(),
    };
    let rows: Vec<(f64, f64)> = x
        .par_chunks(l)
        .enumerate()
        .map(|(i, r)| {
            let k = shift[i % c];
            with_avx2(|| lane_sum_sq(r, |v| v.to_f64() - k))
        })
        .collect();
    (0..c)
        .map(|ch| {
            let (s1, s2) = (0..n)
                .map(|s| rows[s * c + ch])
                .fold((0.0, 0.0), |(a, b), (r1, r2)| (a + r1, b + r2));
            let (d, sq) = (s1 / m, s2 / m);
            let second = if center.is_some() {
                sq
            } else {
                (sq - d * d).max(0.0)
            };
            (shift[ch] + d, second)
        })
        .unzip()
}

/// Sums per-channel values over processes in place (a data-parallel job's
/// all-reduce); the kernels know no process group, the caller brings it.
pub type SumAcross = Arc<dyn Fn(&mut [f64]) + Send + Sync>;

/// Where the statistics of [`channel_affine`] come from, for its gradient.
#[derive(Clone)]
pub enum StatsGrad {
    /// Constants: running or estimated statistics (`dx = r w dy`).
    Constant,
    /// `x`'s own batch statistics, the gradient flowing through them.
    Batch,
    /// Batch statistics over the inputs of several processes, `count`
    /// values per channel in all (SyncBN): the backward pass sums its
    /// per-channel `A`, `B` through `sum` before the input gradient uses
    /// them, with `M = count`; `dw`, `db` stay this process's own.
    Shared {
        /// Values per channel over all processes.
        count: f64,
        /// The sum across processes.
        sum: SumAcross,
    },
}

/// `y = w (x - mean) / sqrt(var + eps) + b` for `x: (N, C, L)`, `w, b:
/// (C,)`, with `mean` and the biased `var` per channel; `grad` says where
/// the statistics come from (see the module docs).
pub fn channel_affine(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    mean: &[f64],
    var: &[f64],
    eps: f64,
    grad: StatsGrad,
) -> candle_core::Result<Tensor> {
    let stats = mean
        .iter()
        .zip(var)
        .map(|(&m, &v)| (m, 1.0 / (v + eps).sqrt()))
        .collect();
    x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        AffineNormOp::new(ChannelAffineOp {
            stats: Arc::new(stats),
            grad,
        }),
    )
}

/// The op of [`channel_affine`]: `(mean, r)` per channel.
#[derive(Clone)]
struct ChannelAffineOp {
    stats: Arc<Vec<(f64, f64)>>,
    grad: StatsGrad,
}

impl AffineNorm for ChannelAffineOp {
    const OP: &'static str = "channel-affine-norm";
    const GRAD_OP: &'static str = "channel-affine-norm-grad";
    const NAME: &'static str = "fused batch norm";
    const GRAD_NAME: &'static str = "fused batch norm backward";

    fn forward<T: WithDType>(&self, x: &[T], w: &[T], b: &[T], c: usize, l: usize) -> Vec<T> {
        let mut y = vec![T::zero(); x.len()];
        y.par_chunks_mut(l)
            .zip(x.par_chunks(l))
            .enumerate()
            .for_each(|(i, (yr, xr))| {
                let ch = i % c;
                let (mean, r) = self.stats[ch];
                let scale = w[ch].to_f64() * r;
                let shift = b[ch].to_f64() - mean * scale;
                for (o, v) in yr.iter_mut().zip(xr) {
                    *o = T::from_f64(v.to_f64() * scale + shift);
                }
            });
        y
    }

    /// `[dx (N C L) | dw (C) | db (C)]` as one vector.
    fn backward<T: WithDType>(&self, x: &[T], w: &[T], dy: &[T], c: usize, l: usize) -> Vec<T> {
        let n = x.len() / (c * l);
        let m = (n * l) as f64;
        let stats = &self.stats;
        // `x_hat` with its channel's constants copied in, so that a loop
        // holds them in registers rather than reading them on every element.
        let x_hat = |ch: usize| {
            let (mean, r) = stats[ch];
            move |v: T| (v.to_f64() - mean) * r
        };
        // Per row, (sum dy, sum dy x_hat); per channel in row order.
        let rows: Vec<(f64, f64)> = x
            .par_chunks(l)
            .zip(dy.par_chunks(l))
            .enumerate()
            .map(|(i, (xr, gr))| {
                let x_hat = x_hat(i % c);
                (
                    lane_sum(gr, |g| g.to_f64()),
                    lane_sum2(xr, gr, |v, g| g.to_f64() * x_hat(v)),
                )
            })
            .collect();
        let mut db = vec![0.0; c];
        let mut dw = vec![0.0; c];
        for (i, (s_dy, s_dyx)) in rows.iter().enumerate() {
            db[i % c] += s_dy;
            dw[i % c] += s_dyx;
        }
        // Per channel, (A / M, B / M) of the module docs.
        let through_stats: Vec<(f64, f64)> = match &self.grad {
            StatsGrad::Constant => vec![(0.0, 0.0); c],
            StatsGrad::Batch => (0..c).map(|ch| (db[ch] / m, dw[ch] / m)).collect(),
            StatsGrad::Shared { count, sum } => {
                let mut sums: Vec<f64> = db.iter().chain(&dw).copied().collect();
                sum(&mut sums);
                (0..c)
                    .map(|ch| (sums[ch] / count, sums[c + ch] / count))
                    .collect()
            }
        };
        let mut out = vec![T::zero(); x.len() + 2 * c];
        let (dx, tail) = out.split_at_mut(x.len());
        dx.par_chunks_mut(l)
            .zip(x.par_chunks(l).zip(dy.par_chunks(l)))
            .enumerate()
            .for_each(|(i, (dxr, (xr, gr)))| {
                let ch = i % c;
                let wr = w[ch].to_f64() * stats[ch].1;
                let (a, b) = through_stats[ch];
                let x_hat = x_hat(ch);
                for (d, (v, g)) in dxr.iter_mut().zip(xr.iter().zip(gr)) {
                    *d = T::from_f64(wr * (g.to_f64() - a - x_hat(*v) * b));
                }
            });
        write_affine_grads(tail, &dw, &db);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::channel_moments;
    use candle_core::{Device, Tensor};

    /// Mean and biased variance per channel of `offset + y`, in two passes
    /// over `y` alone (the second about the mean): the reference.
    fn two_pass(offset: f64, y: &[f64], n: usize, c: usize, l: usize) -> (Vec<f64>, Vec<f64>) {
        let m = (n * l) as f64;
        (0..c)
            .map(|ch| {
                let values =
                    || (0..n).flat_map(move |s| (0..l).map(move |j| y[(s * c + ch) * l + j]));
                let mean = values().sum::<f64>() / m;
                let var = values().map(|v| (v - mean).powi(2)).sum::<f64>() / m;
                (offset + mean, var)
            })
            .unzip()
    }

    /// A mean of 1e8 over a spread of about 1 (and 1e-3 in the second
    /// channel): `E[x^2] - E[x]^2` in f64 keeps no digit of the variance,
    /// the shifted one pass all but a few.
    #[test]
    fn one_pass_moments_survive_a_mean_far_larger_than_the_spread() -> candle_core::Result<()> {
        let (n, c, l) = (3, 2, 37);
        // Small parts exactly representable next to 1e8 (multiples of 2^-15).
        let y: Vec<f64> = (0..n * c * l)
            .map(|i| {
                let ch = (i / l) % c;
                let u = ((i * 7919) % 101) as f64 - 50.0;
                3.0 * ch as f64
                    + u * if ch == 0 {
                        2f64.powi(-5)
                    } else {
                        2f64.powi(-15)
                    }
            })
            .collect();
        let x: Vec<f64> = y.iter().map(|v| 1e8 + v).collect();
        let t = Tensor::from_vec(x.clone(), (n, c, l), &Device::Cpu)?;
        let (mean, var) = channel_moments(&t, None)?;
        let (want_mean, want_var) = two_pass(1e8, &y, n, c, l);
        for ch in 0..c {
            assert!(
                (mean[ch] - want_mean[ch]).abs() <= 1e-15 * want_mean[ch],
                "{mean:?} {want_mean:?}"
            );
            let rel = (var[ch] - want_var[ch]).abs() / want_var[ch];
            assert!(
                rel < 1e-9,
                "channel {ch}: {} against {} ({rel:e})",
                var[ch],
                want_var[ch]
            );
        }
        // About a given center: the mean squared deviation from it.
        let center = [0.25, 2.5];
        let shifted = [1e8 + center[0], 1e8 + center[1]];
        let (mean_c, about) = channel_moments(&t, Some(&shifted))?;
        let m = (n * l) as f64;
        for ch in 0..c {
            let want: f64 = (0..n)
                .flat_map(|s| (0..l).map(move |j| (s * c + ch) * l + j))
                .map(|i| (y[i] - center[ch]).powi(2))
                .sum::<f64>()
                / m;
            assert!(
                (about[ch] - want).abs() / want < 1e-9,
                "{} against {want}",
                about[ch]
            );
            assert!((mean_c[ch] - want_mean[ch]).abs() <= 1e-15 * want_mean[ch]);
        }
        // No values per channel, or a center per channel missing: errors.
        let empty = Tensor::zeros((2, 3, 0), candle_core::DType::F64, &Device::Cpu)?;
        let err = channel_moments(&empty, None).unwrap_err().to_string();
        assert!(err.contains("no values per channel"), "{err}");
        let err = channel_moments(&t, Some(&[0.0])).unwrap_err().to_string();
        assert!(err.contains("1 centers for 2 channels"), "{err}");
        Ok(())
    }
}
