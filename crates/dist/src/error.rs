//! The error type of `wsbcn-dist`.

/// What can go wrong when joining a job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Started by a launcher as one of several ranks, in a build without
    /// MPI.
    #[error(
        "started by {launcher} as one of {size} ranks, but this binary was built without the \
         `mpi` feature: rebuild with `--features mpi`"
    )]
    NoMpi {
        /// The launcher found in the environment.
        launcher: &'static str,
        /// The job's size it announced.
        size: usize,
    },
    /// MPI could not be initialized.
    #[error("MPI initialization failed: {0}")]
    Init(String),
    /// [`init`](crate::init) was called twice.
    #[error("the process group is already initialized")]
    AlreadyInitialized,
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
