//! Group normalization with a per-channel affine as one CPU op, forward and
//! backward each a pass over every `(sample, group)` block.
//!
//! Written by hand because candle builds GN from about ten elementwise ops
//! forward and twenty backward, each a full pass over the activation with
//! its own allocation; at CPU-training scale those small ops took more time
//! than the convolutions. For `x: (N, C, L)`, `G` groups of `C/G` channels,
//! block `(n, g)` of `M = C/G * L` elements, `w, b: (C,)`:
//!
//! ```text
//! x_hat = (x - mean) r,   r = 1 / sqrt(var + eps)          (biased var over the block)
//! y     = w[c] x_hat + b[c]
//! dx    = r (w[c] dy - A/M - x_hat B/M),   A = sum w dy,  B = sum w dy x_hat   (per block)
//! dw[c] = sum_(n, l) dy x_hat,   db[c] = sum_(n, l) dy
//! ```

use crate::affine_norm::{write_affine_grads, AffineNorm, AffineNormOp};
use crate::slice::{lane_sum, lane_sum2};
use candle_core::{Tensor, WithDType};
use rayon::prelude::*;

/// `y = GN(x) w + b` for contiguous `x: (N, C, L)`, `w, b: (C,)` on the CPU,
/// in f32 or f64.
pub fn group_norm_affine(
    x: &Tensor,
    groups: usize,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        AffineNormOp::new(GroupNormOp { groups, eps }),
    )
}

#[derive(Clone)]
struct GroupNormOp {
    groups: usize,
    eps: f64,
}

/// Mean and `1 / sqrt(var + eps)` of one block, accumulated in f64.
fn block_stats<T: WithDType>(block: &[T], eps: f64) -> (f64, f64) {
    let m = block.len() as f64;
    let mean = lane_sum(block, |v| v.to_f64()) / m;
    let var = lane_sum(block, |v| (v.to_f64() - mean).powi(2)) / m;
    (mean, 1.0 / (var + eps).sqrt())
}

impl GroupNormOp {
    /// Channels per group and the block length `M`.
    fn block(&self, c: usize, l: usize) -> (usize, usize) {
        let cg = c / self.groups;
        (cg, cg * l)
    }
}

impl AffineNorm for GroupNormOp {
    const OP: &'static str = "group-norm";
    const GRAD_OP: &'static str = "group-norm-grad";
    const NAME: &'static str = "fused group norm";
    const GRAD_NAME: &'static str = "fused group norm backward";

    fn forward<T: WithDType>(&self, x: &[T], w: &[T], b: &[T], c: usize, l: usize) -> Vec<T> {
        let (cg, m) = self.block(c, l);
        let mut y = vec![T::zero(); x.len()];
        y.par_chunks_mut(m)
            .zip(x.par_chunks(m))
            .enumerate()
            .for_each(|(blk, (yb, xb))| {
                let (mean, r) = block_stats(xb, self.eps);
                let c0 = (blk % self.groups) * cg;
                for (j, (yc, xc)) in yb.chunks_mut(l).zip(xb.chunks(l)).enumerate() {
                    let scale = w[c0 + j].to_f64() * r;
                    let shift = b[c0 + j].to_f64() - mean * scale;
                    for (o, v) in yc.iter_mut().zip(xc) {
                        *o = T::from_f64(v.to_f64() * scale + shift);
                    }
                }
            });
        y
    }

    /// `[dx (N C L) | dw (C) | db (C)]` as one vector.
    fn backward<T: WithDType>(&self, x: &[T], w: &[T], dy: &[T], c: usize, l: usize) -> Vec<T> {
        let (cg, m) = self.block(c, l);
        let mut out = vec![T::zero(); x.len() + 2 * c];
        let (dx, _) = out.split_at_mut(x.len());
        // Per block: the (dw, db) partial sums of its channels.
        let partial: Vec<Vec<(f64, f64)>> = dx
            .par_chunks_mut(m)
            .zip(x.par_chunks(m).zip(dy.par_chunks(m)))
            .enumerate()
            .map(|(blk, (dxb, (xb, dyb)))| {
                let (mean, r) = block_stats(xb, self.eps);
                let c0 = (blk % self.groups) * cg;
                let mut sums = Vec::with_capacity(cg);
                let (mut a, mut bsum) = (0.0, 0.0);
                for (j, (xc, dyc)) in xb.chunks(l).zip(dyb.chunks(l)).enumerate() {
                    let s_dy = lane_sum(dyc, |g| g.to_f64());
                    let s_dyx = lane_sum2(xc, dyc, |v, g| g.to_f64() * (v.to_f64() - mean) * r);
                    let wc = w[c0 + j].to_f64();
                    a += wc * s_dy;
                    bsum += wc * s_dyx;
                    sums.push((s_dyx, s_dy));
                }
                let (a, bsum) = (a / m as f64, bsum / m as f64);
                for (j, (dxc, (xc, dyc))) in dxb
                    .chunks_mut(l)
                    .zip(xb.chunks(l).zip(dyb.chunks(l)))
                    .enumerate()
                {
                    let wc = w[c0 + j].to_f64();
                    for (d, (v, g)) in dxc.iter_mut().zip(xc.iter().zip(dyc)) {
                        let x_hat = (v.to_f64() - mean) * r;
                        *d = T::from_f64(r * (wc * g.to_f64() - a - x_hat * bsum));
                    }
                }
                sums
            })
            .collect();
        let mut dw = vec![0.0; c];
        let mut db = vec![0.0; c];
        for (blk, sums) in partial.iter().enumerate() {
            let c0 = (blk % self.groups) * cg;
            for (j, (s_dyx, s_dy)) in sums.iter().enumerate() {
                dw[c0 + j] += s_dyx;
                db[c0 + j] += s_dy;
            }
        }
        write_affine_grads(&mut out[x.len()..], &dw, &db);
        out
    }
}
