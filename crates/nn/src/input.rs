//! Input checks and channel views shared by every normalization layer.
//!
//! Normalization layers accept 4D `(N, C, H, W)` or 5D `(N, C, T, H, W)`
//! tensors. Per-channel statistics are taken over `(N, spatial...)`, so the
//! layers work on the view `(N, C, L)` with `L = H*W` or `T*H*W`, exactly like
//! PyTorch's `BatchNorm3d` for video.

use crate::{Error, Result};
use candle_core::Tensor;

/// Checks that `x` is `(N, C, H, W)` or `(N, C, T, H, W)` with `C == channels`
/// and returns `(N, C, L)` where `L` is the product of the spatial dims.
pub fn channel_dims(layer: &str, x: &Tensor, channels: usize) -> Result<(usize, usize, usize)> {
    let dims = x.dims();
    if !(dims.len() == 4 || dims.len() == 5) || dims[1] != channels {
        return Err(Error::Shape {
            layer: layer.to_string(),
            expected: format!("(N, {channels}, H, W) or (N, {channels}, T, H, W)"),
            got: dims.to_vec(),
        });
    }
    Ok((dims[0], dims[1], dims[2..].iter().product()))
}

/// Views `x` as `(N, C, L)` after [`channel_dims`] accepted it.
pub fn channel_view(layer: &str, x: &Tensor, channels: usize) -> Result<Tensor> {
    let (n, c, l) = channel_dims(layer, x, channels)?;
    Ok(x.reshape((n, c, l))?)
}

/// Mean over the batch and spatial dims of an `(N, C, L)` tensor: `(1, C, 1)`.
pub fn channel_mean(x: &Tensor) -> Result<Tensor> {
    Ok(x.mean_keepdim(2)?.mean_keepdim(0)?)
}

/// Broadcasts a per-channel vector `(C,)` to `(1, C, 1)`.
pub fn per_channel(v: &Tensor) -> Result<Tensor> {
    Ok(v.reshape((1, v.dim(0)?, 1))?)
}
