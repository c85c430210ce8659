//! ReLU with a one-pass backward on the CPU.
//!
//! `y = max(x, 0)`, `dx = dy [y > 0]`. candle's own ReLU backward builds
//! the mask from four ops (zeros, compare, cast, multiply), each a pass over
//! the activation with its own allocation; here it is one pass over `y` and
//! `dy`. Other devices and dtypes use candle's `relu`.

use crate::profile::{Direction, Kind, Span};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;

/// Elements per parallel chunk: small activations stay on one thread.
const CHUNK: usize = 1 << 15;

/// `max(x, 0)`, any shape.
pub fn relu(x: &Tensor) -> candle_core::Result<Tensor> {
    let fused = x.device().is_cpu()
        && matches!(x.dtype(), candle_core::DType::F32 | candle_core::DType::F64);
    if fused {
        x.contiguous()?.apply_op1(Relu)
    } else {
        x.relu()
    }
}

struct Relu;

fn map<T: WithDType>(src: &[T], f: impl Fn(T) -> T + Sync) -> Vec<T> {
    let mut out = vec![T::zero(); src.len()];
    out.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(o, s)| o.iter_mut().zip(s).for_each(|(o, v)| *o = f(*v)));
    out
}

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let _span = Span::new(Direction::Forward, Kind::ActivationPool);
        let out = crate::slice::float_op!("relu", (s, l), |x| map(x, |v| v.max(0.0)));
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let _span = Span::new(Direction::Backward, Kind::ActivationPool);
        Ok(Some(y.apply_op2_no_bwd(&grad.contiguous()?, &ReluGrad)?))
    }
}

/// `(y, dy) -> dy [y > 0]`.
struct ReluGrad;

fn mask<T: WithDType>(y: &[T], g: &[T]) -> Vec<T> {
    let mut out = vec![T::zero(); y.len()];
    out.par_chunks_mut(CHUNK)
        .zip(y.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
        .for_each(|(o, (y, g))| {
            // A select, not a branch, so that the loop vectorizes.
            for ((o, &y), &g) in o.iter_mut().zip(y).zip(g) {
                *o = if y > T::zero() { g } else { T::zero() };
            }
        });
    out
}

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = crate::slice::float_op!("relu", (s1, l1), (s2, l2), |y, g| mask(y, g));
        Ok((out, l1.shape().clone()))
    }
}
