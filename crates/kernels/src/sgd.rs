//! The SGD update and the squared gradient norm as single passes over CPU
//! memory.
//!
//! Built from candle ops, one parameter's update is seven tensor ops (each a
//! fresh allocation, several a dispatch to candle's thread pool) and its
//! squared norm four; with a hundred small parameters that was a quarter of
//! a CPU-scale DeepLabV3 step. Here the update runs in place, in one pass
//! per tensor (split over rayon's threads for large tensors), with the
//! same arithmetic in the same order as `wsbcn-train`'s SGD formula, so the
//! results are those of the composed ops. Candle has no fused optimizer
//! kernels, hence these.

use crate::slice::{contiguous, contiguous_mut, lane_sum};
use candle_core::{CpuStorage, DType, InplaceOp3, Layout, Tensor, WithDType};
use rayon::prelude::*;

/// Elements per parallel work unit: smaller tensors (most norm weights and
/// biases) take one thread.
const CHUNK: usize = 32 * 1024;

/// True when `tensors` can take the in-place CPU path: on the CPU,
/// contiguous, all f32 or all f64.
pub fn supported(tensors: &[&Tensor]) -> bool {
    let dtype = tensors[0].dtype();
    matches!(dtype, DType::F32 | DType::F64)
        && tensors
            .iter()
            .all(|t| t.device().is_cpu() && t.is_contiguous() && t.dtype() == dtype)
}

/// `sum(g^2)` in f64, read straight from the storage of a tensor that
/// [`supported`] accepts.
pub fn squared_norm(g: &Tensor) -> candle_core::Result<f64> {
    let (storage, layout) = g.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("squared_norm: the gradient is not on the CPU");
    };
    fn sum<T: WithDType>(cpu: &CpuStorage, layout: &Layout) -> candle_core::Result<f64> {
        Ok(contiguous::<T>("squared_norm", cpu, layout)?
            .par_chunks(CHUNK)
            .map(|c| lane_sum(c, |v| v.to_f64().powi(2)))
            .sum())
    }
    match g.dtype() {
        DType::F32 => sum::<f32>(cpu, layout),
        DType::F64 => sum::<f64>(cpu, layout),
        d => candle_core::bail!("squared_norm: unsupported dtype {d:?}"),
    }
}

/// Calls `run(op, dst, src1, src2)` on the contiguous f32 or f64 elements
/// of an in-place op's storages.
macro_rules! in_place {
    ($op:expr, $run:ident, ($d:ident, $dl:expr), ($a:ident, $al:expr), ($b:ident, $bl:expr)) => {
        match $d {
            CpuStorage::F32(v) => $run(
                $op,
                contiguous_mut($op.name(), v, $dl)?,
                contiguous($op.name(), $a, $al)?,
                contiguous($op.name(), $b, $bl)?,
            ),
            CpuStorage::F64(v) => $run(
                $op,
                contiguous_mut($op.name(), v, $dl)?,
                contiguous($op.name(), $a, $al)?,
                contiguous($op.name(), $b, $bl)?,
            ),
            _ => candle_core::bail!("{}: f32 or f64 only", $op.name()),
        }
    };
}

/// The momentum buffer update `b = m b + d` with `d = g + wd w`, in place on
/// `b` (a zero buffer on the first step gives `b = d`).
#[derive(Clone, Copy, Debug)]
pub struct MomentumUpdate {
    /// Momentum `m`.
    pub momentum: f64,
    /// Weight decay `wd`.
    pub weight_decay: f64,
}

/// The weight update `w = w - lr u` in place on `w`, with `d = g + wd w` and
/// `u = d + m b` (Nesterov), `u = b` (momentum) or `u = d` (no momentum; the
/// buffer operand is then not read).
#[derive(Clone, Copy, Debug)]
pub struct WeightUpdate {
    /// Learning rate `lr`.
    pub lr: f64,
    /// Weight decay `wd`.
    pub weight_decay: f64,
    /// Momentum `m` (0: none).
    pub momentum: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
}

impl InplaceOp3 for MomentumUpdate {
    fn name(&self) -> &'static str {
        "sgd-momentum-update"
    }

    /// `s1` = b, `s2` = g, `s3` = w.
    fn cpu_fwd(
        &self,
        b: &mut CpuStorage,
        bl: &Layout,
        g: &CpuStorage,
        gl: &Layout,
        w: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<()> {
        fn run<T: WithDType>(
            op: &MomentumUpdate,
            b: &mut [T],
            g: &[T],
            w: &[T],
        ) -> candle_core::Result<()> {
            let (m, wd) = (T::from_f64(op.momentum), T::from_f64(op.weight_decay));
            same_len(b.len(), g.len(), w.len())?;
            b.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK).zip(w.par_chunks(CHUNK)))
                .for_each(move |(b, (g, w))| {
                    for ((b, &g), &w) in b.iter_mut().zip(g).zip(w) {
                        let d = g + w * wd;
                        *b = *b * m + d;
                    }
                });
            Ok(())
        }
        in_place!(self, run, (b, bl), (g, gl), (w, wl))
    }
}

impl InplaceOp3 for WeightUpdate {
    fn name(&self) -> &'static str {
        "sgd-weight-update"
    }

    /// `s1` = w, `s2` = g, `s3` = b.
    fn cpu_fwd(
        &self,
        w: &mut CpuStorage,
        wl: &Layout,
        g: &CpuStorage,
        gl: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<()> {
        fn run<T: WithDType>(
            op: &WeightUpdate,
            w: &mut [T],
            g: &[T],
            b: &[T],
        ) -> candle_core::Result<()> {
            let (lr, wd) = (T::from_f64(op.lr), T::from_f64(op.weight_decay));
            let m = T::from_f64(op.momentum);
            same_len(w.len(), g.len(), b.len())?;
            let (momentum, nesterov) = (op.momentum > 0.0, op.nesterov);
            // `move`: the closure owns copies of its constants. Read through
            // a reference, `lr` was reloaded after every store to `w` (it
            // might alias), which kept the loop scalar (perf, 2026-11-30).
            w.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
                .for_each(move |(w, (g, b))| {
                    for ((w, &g), &b) in w.iter_mut().zip(g).zip(b) {
                        let d = g + *w * wd;
                        let u = match (momentum, nesterov) {
                            (true, true) => d + b * m,
                            (true, false) => b,
                            (false, _) => d,
                        };
                        *w -= u * lr;
                    }
                });
            Ok(())
        }
        in_place!(self, run, (w, wl), (g, gl), (b, bl))
    }
}

fn same_len(a: usize, b: usize, c: usize) -> candle_core::Result<()> {
    if a == b && b == c {
        Ok(())
    } else {
        candle_core::bail!("sgd update: operands of {a}, {b} and {c} elements")
    }
}
