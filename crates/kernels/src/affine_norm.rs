//! The normalizations with a per-channel affine that run as one CPU op
//! each way (GroupNorm, and BatchNorm / estimated BN with given or batch
//! statistics): what they share. A kernel ([`AffineNorm`]) supplies the
//! forward and backward passes over `x: (N, C, L)` with `w, b: (C,)`;
//! [`AffineNormOp`] makes it a differentiable candle op whose backward is
//! the same op in its gradient pass, returning `[dx | dw | db]` packed in
//! one vector.

use crate::profile::{Direction, Kind, Span};
use crate::slice::float_op;
use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor, WithDType};

/// The passes of one normalization (see the module docs).
pub(crate) trait AffineNorm: Clone + Send + Sync + 'static {
    /// The op's name in candle (`group-norm`).
    const OP: &'static str;
    /// The backward op's name in candle (`group-norm-grad`).
    const GRAD_OP: &'static str;
    /// The name errors give the forward pass (`fused group norm`).
    const NAME: &'static str;
    /// The name errors give the backward pass.
    const GRAD_NAME: &'static str;

    /// `y`, shaped like `x: (N, C, L)`.
    fn forward<T: WithDType>(&self, x: &[T], w: &[T], b: &[T], c: usize, l: usize) -> Vec<T>;

    /// `[dx | dw | db]`: `x.len() + 2C` values.
    fn backward<T: WithDType>(&self, x: &[T], w: &[T], dy: &[T], c: usize, l: usize) -> Vec<T>;
}

/// The op of kernel `K`: the differentiable forward `(x, w, b) -> y`, or
/// (`grad`) its backward `(x, w, dy) -> [dx | dw | db]`, an op without
/// gradient.
pub(crate) struct AffineNormOp<K> {
    kernel: K,
    grad: bool,
}

impl<K: AffineNorm> AffineNormOp<K> {
    /// The forward op of `kernel`.
    pub(crate) fn new(kernel: K) -> Self {
        Self {
            kernel,
            grad: false,
        }
    }

    fn names(&self) -> (&'static str, &'static str) {
        match self.grad {
            false => (K::OP, K::NAME),
            true => (K::GRAD_OP, K::GRAD_NAME),
        }
    }
}

impl<K: AffineNorm> CustomOp3 for AffineNormOp<K> {
    fn name(&self) -> &'static str {
        self.names().0
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let _span = (!self.grad).then(|| Span::new(Direction::Forward, Kind::Norm));
        let name = self.names().1;
        let (c, l) = norm_dims(name, l1)?;
        let k = &self.kernel;
        let out = float_op!(name, (s1, l1), (s2, l2), (s3, l3), |x, w, third| {
            match self.grad {
                false => k.forward(x, w, third, c, l),
                true => k.backward(x, w, third, c, l),
            }
        });
        let shape = match self.grad {
            false => l1.shape().clone(),
            true => Shape::from(l1.shape().elem_count() + 2 * c),
        };
        Ok((out, shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        if self.grad {
            candle_core::bail!("{}: no second-order gradients", K::GRAD_OP);
        }
        let _span = Span::new(Direction::Backward, Kind::Norm);
        let backward = AffineNormOp {
            kernel: self.kernel.clone(),
            grad: true,
        };
        let packed = x.apply_op3_no_bwd(w, &grad.contiguous()?, &backward)?;
        split_affine_grads(&packed, x, w.elem_count())
    }
}

/// `(C, L)` of the `(N, C, L)` layout a fused norm op takes, or an error
/// naming `op`.
fn norm_dims(op: &str, l: &Layout) -> candle_core::Result<(usize, usize)> {
    match l.dims() {
        [_, c, len] => Ok((*c, *len)),
        d => candle_core::bail!("{op} expects (N, C, L), got {d:?}"),
    }
}

/// Splits the packed `[dx | dw | db]` a fused norm's backward op returns
/// into `dx` (shaped like `x`) and the `(C,)` gradients of its affine.
fn split_affine_grads(
    packed: &Tensor,
    x: &Tensor,
    c: usize,
) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
    let n_x = x.elem_count();
    let dx = packed.narrow(0, 0, n_x)?.reshape(x.shape())?;
    let dw = packed.narrow(0, n_x, c)?;
    let db = packed.narrow(0, n_x + c, c)?;
    Ok((Some(dx), Some(dw), Some(db)))
}

/// Writes the per-channel `dw`, `db` sums into the `2C` tail of a packed
/// `[dx | dw | db]` vector.
pub(crate) fn write_affine_grads<T: WithDType>(tail: &mut [T], dw: &[f64], db: &[f64]) {
    for (o, v) in tail.iter_mut().zip(dw.iter().chain(db)) {
        *o = T::from_f64(*v);
    }
}
