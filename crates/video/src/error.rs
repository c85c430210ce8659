//! The error type of `wsbcn-video`.

use std::path::PathBuf;

/// Errors raised by the video crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed inside candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// A layer rejected its configuration or input.
    #[error(transparent)]
    Nn(#[from] wsbcn_nn::Error),

    /// The training engine failed.
    #[error(transparent)]
    Train(#[from] wsbcn_train::Error),

    /// A data file (annotation, list or video) is missing, unreadable or
    /// inconsistent.
    #[error("{path}: {msg}")]
    Data {
        /// The file (or folder) at fault.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },

    /// Drawing or writing a figure failed.
    #[error(transparent)]
    Plot(#[from] wsbcn_plot::Error),

    /// A model or data setting is inconsistent.
    #[error("{0}")]
    Config(String),
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

impl From<Error> for wsbcn_train::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Train(e) => e,
            Error::Candle(e) => wsbcn_train::Error::Candle(e),
            Error::Nn(e) => wsbcn_train::Error::Nn(e),
            other => wsbcn_train::Error::Data(other.to_string()),
        }
    }
}
