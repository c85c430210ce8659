//! The error type of `wsbcn-experiments`.

use std::path::PathBuf;

/// Errors of the comparison, figure and report code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The training engine (configs, run logs, checkpoints) failed.
    #[error(transparent)]
    Train(#[from] wsbcn_train::Error),

    /// A segmentation or video run, or an embedded data set, failed.
    #[error(transparent)]
    Task(#[from] wsbcn_train::TaskError),

    /// Drawing or writing a figure failed.
    #[error(transparent)]
    Plot(#[from] wsbcn_plot::Error),

    /// Reading or writing a file failed.
    #[error("{path}: {msg}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        msg: String,
    },

    /// A comparison's runs cannot be summarised as asked.
    #[error("{0}")]
    Runs(String),
}

impl Error {
    /// An error about `path`.
    pub fn file(path: &std::path::Path, msg: impl std::fmt::Display) -> Self {
        Self::File {
            path: path.to_path_buf(),
            msg: msg.to_string(),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
