//! Pooling over `(N, C, H, W)` and `(N, C, T, H, W)`, with backward passes.
//!
//! * [`max_pool`]: max over a window with per-axis kernel, stride and
//!   padding (padding counts as `-inf`, as in PyTorch), e.g. the ResNet stem's
//!   3x3 stride-2 pad-1 pool. On the CPU one op reads each window in place
//!   and sends the gradient to the first maximum of each window, as PyTorch
//!   does (`wsbcn-kernels`' `MaxPool`); on other devices the window taps are
//!   gathered with strided `index_select`s and reduced with `max`, so the
//!   gradient goes to every maximum on exact ties.
//! * [`adaptive_avg_pool`]: PyTorch's adaptive average pooling, output cell
//!   `o` of an axis of extent `in` averaging inputs
//!   `floor(o in / out) .. ceil((o + 1) in / out)`; one separable map per axis.
//! * [`global_avg_pool`]: the mean over every spatial axis, keeping them as 1.

use crate::axis_map::{map_axis, sparse_matrix};
use crate::conv_fn::strided_indices;
use crate::{Error, Result};
use candle_core::{DType, Tensor};
use wsbcn_kernels::MaxPool;

fn spatial_rank(op: &str, x: &Tensor, d: usize) -> Result<()> {
    if x.rank() != d + 2 {
        return Err(Error::Shape {
            layer: op.to_string(),
            expected: format!("of rank {}", d + 2),
            got: x.dims().to_vec(),
        });
    }
    Ok(())
}

/// Max pooling of `x: (N, C, spatial[D])` with per-axis `kernel`, `stride`,
/// `padding` (each padding at most half its kernel, as PyTorch requires).
pub fn max_pool<const D: usize>(
    x: &Tensor,
    kernel: [usize; D],
    stride: [usize; D],
    padding: [usize; D],
) -> Result<Tensor> {
    spatial_rank("max_pool", x, D)?;
    for a in 0..D {
        let (k, s, p) = (kernel[a], stride[a], padding[a]);
        if k == 0 || s == 0 || 2 * p > k || x.dim(a + 2)? + 2 * p < k {
            return Err(Error::config(
                "max_pool",
                format!(
                    "kernel {kernel:?}, stride {stride:?}, padding {padding:?} do not fit input {:?}",
                    x.dims()
                ),
            ));
        }
    }
    if D <= 3 && x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) {
        // The CPU op pools the last three axes: 2D pooling gets T = 1.
        let lift = |v: [usize; D], fill: usize| -> [usize; 3] {
            std::array::from_fn(|a| if a + D < 3 { fill } else { v[a + D - 3] })
        };
        let op = MaxPool {
            kernel: lift(kernel, 1),
            stride: lift(stride, 1),
            padding: lift(padding, 0),
        };
        let (n, c) = (x.dim(0)?, x.dim(1)?);
        let spatial = lift(std::array::from_fn(|a| x.dims()[a + 2]), 1);
        let y = x
            .contiguous()?
            .reshape((n, c, spatial[0], spatial[1], spatial[2]))?
            .apply_op1(op)?;
        let mut shape = vec![n, c];
        shape.extend_from_slice(&y.dims()[5 - D..]);
        return Ok(y.reshape(shape)?);
    }
    let mut taps = vec![x.clone()];
    for a in 0..D {
        let (k, s, p) = (kernel[a], stride[a], padding[a]);
        let out = (x.dim(a + 2)? + 2 * p - k) / s + 1;
        let mut next = Vec::with_capacity(taps.len() * k);
        for t in &taps {
            let padded = if p > 0 {
                let mut pad_shape = t.dims().to_vec();
                pad_shape[a + 2] = p;
                let neg =
                    Tensor::full(f32::NEG_INFINITY, pad_shape, t.device())?.to_dtype(t.dtype())?;
                Tensor::cat(&[&neg, t, &neg], a + 2)?
            } else {
                t.clone()
            };
            for i in 0..k {
                let idx = strided_indices(out, s, i, x.device())?;
                next.push(padded.index_select(&idx, a + 2)?);
            }
        }
        taps = next;
    }
    let stacked = Tensor::stack(&taps, x.rank())?;
    Ok(stacked.max(x.rank())?)
}

/// The `(out, in)` averaging matrix of adaptive pooling on one axis.
fn adaptive_matrix(input: usize, output: usize, x: &Tensor) -> Result<Tensor> {
    let entries = (0..output).flat_map(|o| {
        let start = o * input / output;
        let end = ((o + 1) * input).div_ceil(output);
        let w = 1.0 / (end - start) as f64;
        (start..end).map(move |i| (o, i, w))
    });
    sparse_matrix(output, input, entries, x.dtype(), x.device())
}

/// Adaptive average pooling of `x: (N, C, spatial[D])` to `output[D]`.
pub fn adaptive_avg_pool<const D: usize>(x: &Tensor, output: [usize; D]) -> Result<Tensor> {
    spatial_rank("adaptive_avg_pool", x, D)?;
    let mut y = x.clone();
    for (a, &out) in output.iter().enumerate() {
        let input = x.dim(a + 2)?;
        if out == 0 || input == 0 {
            return Err(Error::config(
                "adaptive_avg_pool",
                format!("cannot pool {:?} to {output:?}", x.dims()),
            ));
        }
        if input != out {
            y = map_axis(&y, &adaptive_matrix(input, out, x)?, a + 2)?;
        }
    }
    Ok(y)
}

/// Mean over every spatial axis of `x: (N, C, ...)`, kept as extent 1:
/// `(N, C, 1, 1)` or `(N, C, 1, 1, 1)`.
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    if x.rank() < 3 {
        return Err(Error::Shape {
            layer: "global_avg_pool".into(),
            expected: "(N, C, spatial...)".into(),
            got: x.dims().to_vec(),
        });
    }
    let (n, c) = (x.dim(0)?, x.dim(1)?);
    let mut shape = vec![n, c];
    shape.extend(std::iter::repeat_n(1, x.rank() - 2));
    Ok(x.reshape((n, c, ()))?.mean_keepdim(2)?.reshape(shape)?)
}
