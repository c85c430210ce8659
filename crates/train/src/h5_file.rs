//! Opening HDF5 files (run logs, clip caches) without HDF5's file locks.
//!
//! HDF5 takes an advisory `flock` on every file it opens, and opens the
//! descriptor without `O_CLOEXEC`. A child process started by another
//! thread while a file is open (the dataset generators run `ffmpeg`)
//! inherits the descriptor, and with it the lock, which then outlives our
//! close: a later open of the same file fails with "unable to lock file".
//! Every file wsbcn writes goes to a temporary name and is renamed into
//! place when complete, so readers never see a half-written file and the
//! lock protects nothing here; it is switched off.

use std::path::Path;

/// Creates (truncates) `path` for writing.
pub fn create(path: &Path) -> hdf5::Result<hdf5::File> {
    hdf5::File::with_options()
        .with_fapl(|p| p.file_locking(false))
        .create(path)
}

/// Opens `path` read-only.
pub fn open(path: &Path) -> hdf5::Result<hdf5::File> {
    hdf5::File::with_options()
        .with_fapl(|p| p.file_locking(false))
        .open(path)
}
