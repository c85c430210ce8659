//! The error type of `wsbcn-train`.

use std::path::PathBuf;

/// Errors raised by the training engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed inside candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// A layer of the model rejected its configuration or input.
    #[error(transparent)]
    Nn(#[from] wsbcn_nn::Error),

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },

    /// A config file or override is invalid.
    #[error("{file}: key `{key}`: {msg}")]
    Config {
        /// The config file (or `--set` for a command-line override).
        file: String,
        /// The dotted key, e.g. `optim.lr`.
        key: String,
        /// What is wrong with it.
        msg: String,
    },

    /// A checkpoint could not be written or read.
    #[error("checkpoint {path}: {msg}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What went wrong.
        msg: String,
    },

    /// Pretrained weights could not be read or do not fit the model.
    #[error("pretrained weights {path}: {msg}")]
    Pretrained {
        /// The weights file.
        path: PathBuf,
        /// What went wrong.
        msg: String,
    },

    /// An HDF5 run log could not be written or read.
    #[error("run log {path}: {msg}")]
    RunLog {
        /// The run log file.
        path: PathBuf,
        /// What went wrong.
        msg: String,
    },

    /// Training produced a non-finite loss or gradient.
    #[error("training diverged at step {step}: {what}; the last good checkpoint is {}", checkpoint.as_ref().map_or("none".to_string(), |p| p.display().to_string()))]
    Diverged {
        /// The step (0-based) whose loss or gradient was not finite.
        step: u64,
        /// Which quantity, with its value.
        what: String,
        /// The last checkpoint written before it, kept on disk.
        checkpoint: Option<PathBuf>,
    },

    /// A data source failed to produce a sample.
    #[error("data: {0}")]
    Data(String),

    /// A device was misnamed, is not built in, or cannot be opened.
    #[error("device {0}")]
    Device(String),

    /// A value handed to the engine is out of its range.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// The result type of `wsbcn-train`.
pub type Result<T> = std::result::Result<T, Error>;

impl From<Error> for candle_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Candle(e) => e,
            other => candle_core::Error::wrap(other),
        }
    }
}
