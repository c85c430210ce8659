//! Access to CPU storages for this crate's custom ops.

use candle_core::{CpuStorage, Layout, WithDType};

/// The contiguous elements of `storage` under `layout`, or an error naming
/// `op` when the tensor is strided.
pub(crate) fn contiguous<'a, T: WithDType>(
    op: &str,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&storage.as_slice::<T>()?[a..b]),
        None => candle_core::bail!("{op}: inputs must be contiguous"),
    }
}
