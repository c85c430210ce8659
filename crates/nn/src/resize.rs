//! Bilinear resizing of `(N, C, H, W)` tensors to any size, with backward.
//!
//! candle's `upsample_bilinear2d` has no backward pass, so the resize is
//! written as two separable maps (see [`crate::axis_map`]):
//! `y = A_h x A_w^T` with `A: (out, in)` holding the two interpolation
//! weights of each output position. PyTorch's `F.interpolate(...,
//! mode="bilinear")` semantics, given an output size:
//!
//! ```text
//! align_corners = true:  src = dst * (in - 1) / (out - 1)          (0 when out = 1)
//! align_corners = false: src = max((dst + 0.5) * in / out - 0.5, 0)
//! i0 = floor(src), i1 = min(i0 + 1, in - 1), w1 = src - i0, w0 = 1 - w1
//! ```

use crate::axis_map::{map_axis, sparse_matrix};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};

/// The `(out, in)` linear-interpolation matrix of one axis.
pub fn interpolation_matrix(
    input: usize,
    output: usize,
    align_corners: bool,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let entries = (0..output).flat_map(|o| {
        let src = if align_corners {
            if output > 1 {
                o as f64 * (input - 1) as f64 / (output - 1) as f64
            } else {
                0.0
            }
        } else {
            ((o as f64 + 0.5) * input as f64 / output as f64 - 0.5).max(0.0)
        };
        let i0 = (src.floor() as usize).min(input - 1);
        let i1 = (i0 + 1).min(input - 1);
        let w1 = src - i0 as f64;
        [(o, i0, 1.0 - w1), (o, i1, w1)]
    });
    sparse_matrix(output, input, entries, dtype, device)
}

/// Resizes `x: (N, C, H, W)` bilinearly to `(N, C, size.0, size.1)`.
pub fn resize_bilinear(x: &Tensor, size: (usize, usize), align_corners: bool) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4().map_err(|_| Error::Shape {
        layer: "resize_bilinear".into(),
        expected: "(N, C, H, W)".into(),
        got: x.dims().to_vec(),
    })?;
    if size.0 == 0 || size.1 == 0 || h == 0 || w == 0 {
        return Err(Error::config(
            "resize_bilinear",
            format!("cannot resize {h}x{w} to {}x{}", size.0, size.1),
        ));
    }
    if (h, w) == size {
        return Ok(x.clone());
    }
    let (dt, dev) = (x.dtype(), x.device());
    let a_h = interpolation_matrix(h, size.0, align_corners, dt, dev)?;
    let a_w = interpolation_matrix(w, size.1, align_corners, dt, dev)?;
    map_axis(&map_axis(x, &a_w, 3)?, &a_h, 2)
}
