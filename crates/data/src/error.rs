//! The error type of `wsbcn-data`.

use std::path::PathBuf;

/// Errors raised while reading Fashion-MNIST or writing a data set.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file is missing, unreadable, malformed, or cannot be written.
    #[error("{path}: {msg}")]
    Data {
        /// The file (or folder) at fault.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },

    /// A generator setting is out of range.
    #[error("{0}")]
    Config(String),

    /// Writing a segmentation label failed (the VOC palette PNG writer).
    #[error(transparent)]
    Seg(#[from] wsbcn_seg::Error),
}

impl Error {
    /// An [`Error::Data`] for `path`.
    pub fn data(path: impl Into<PathBuf>, msg: impl std::fmt::Display) -> Self {
        Self::Data {
            path: path.into(),
            msg: msg.to_string(),
        }
    }
}

/// The result type of `wsbcn-data`.
pub type Result<T> = std::result::Result<T, Error>;
