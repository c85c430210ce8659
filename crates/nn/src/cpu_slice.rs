//! Access to CPU storages for custom ops (this crate's and the training
//! engine's).

use candle_core::{CpuStorage, Layout, WithDType};

/// The contiguous elements of `storage` under `layout`, or an error naming
/// `op` when the tensor is strided.
pub fn contiguous<'a, T: WithDType>(
    op: &str,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&storage.as_slice::<T>()?[a..b]),
        None => candle_core::bail!("{op}: inputs must be contiguous"),
    }
}

/// The contiguous elements under `layout` of a storage's vector `v`, for
/// in-place ops, or an error naming `op` when the tensor is strided.
pub fn contiguous_mut<'a, T>(
    op: &str,
    v: &'a mut [T],
    layout: &Layout,
) -> candle_core::Result<&'a mut [T]> {
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&mut v[a..b]),
        None => candle_core::bail!("{op}: the output must be contiguous"),
    }
}
