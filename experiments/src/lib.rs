//! The experiments of the wsbcn suite: comparison grids of normalization
//! variants (tasks x variants x batch sizes x seeds) run through the
//! segmentation and video trainers, and the figures and report rebuilt from
//! their HDF5 run logs. The binaries are `wsbcn-compare`, `wsbcn-figures`
//! and `wsbcn-conv-speed`; the data sets come from `wsbcn-data`.
#![warn(missing_docs)]

pub mod cell_run;
pub mod compare;
pub mod comparison;
pub mod data;
pub mod error;
pub mod figures;
pub mod host;
pub mod records;
pub mod report;
pub mod stats;

pub use comparison::{Cell, Comparison, TaskKind, Variant};
pub use error::{Error, Result};

/// Writes `bytes` to `path` through a temporary file renamed into place,
/// so a reader never sees half a file.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| Error::file(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::file(path, e))
}
