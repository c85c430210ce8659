//! Separable linear maps: apply a matrix `M: (out, in)` along one axis of a
//! tensor, `y[..., o, ...] = sum_i M[o, i] x[..., i, ...]`.
//!
//! Bilinear resizing and adaptive average pooling are both separable: one
//! such map per spatial axis. Written as matmuls they run on any device and
//! get their backward pass from candle's autograd (`dL/dx = M^T dL/dy`).

use crate::Result;
use candle_core::{DType, Device, Tensor};

/// Applies `m: (out, in)` along `axis` of `x` (whose extent there is `in`).
pub fn map_axis(x: &Tensor, m: &Tensor, axis: usize) -> Result<Tensor> {
    let last = x.rank() - 1;
    let moved = if axis == last {
        x.clone()
    } else {
        x.transpose(axis, last)?
    };
    let y = moved.contiguous()?.broadcast_matmul(&m.t()?)?;
    Ok(if axis == last {
        y
    } else {
        y.transpose(axis, last)?.contiguous()?
    })
}

/// A `(rows, cols)` matrix from its nonzero entries `(row, col, value)`.
pub fn sparse_matrix(
    rows: usize,
    cols: usize,
    entries: impl IntoIterator<Item = (usize, usize, f64)>,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let mut m = vec![0.0; rows * cols];
    for (r, c, v) in entries {
        m[r * cols + c] += v;
    }
    Ok(Tensor::from_vec(m, (rows, cols), device)?.to_dtype(dtype)?)
}
