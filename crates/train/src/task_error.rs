//! The error type the task crates share (`wsbcn-seg`, `wsbcn-video`, each
//! as its `Error`): what a task's own code reports, the data file or the
//! setting at fault, next to the errors of candle, the layers and the
//! engine it passes on. Converts into the engine's [`Error`](crate::Error)
//! where a task plugs into it.

use std::path::PathBuf;

/// Errors raised by a task crate.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// A tensor operation failed inside candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// A layer rejected its configuration or input.
    #[error(transparent)]
    Nn(#[from] wsbcn_nn::Error),

    /// The training engine failed.
    #[error(transparent)]
    Train(#[from] crate::Error),

    /// A data file (image, label, annotation, list or video) is missing,
    /// unreadable or inconsistent.
    #[error("{path}: {msg}")]
    Data {
        /// The file (or folder) at fault.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },

    /// A model, data or evaluation setting is inconsistent.
    #[error("{0}")]
    Config(String),

    /// An output (a figure) could not be made, as its writer says.
    #[error("{0}")]
    Output(String),
}

impl TaskError {
    /// A [`TaskError::Data`] for `path`.
    pub fn data(path: impl Into<PathBuf>, msg: impl std::fmt::Display) -> Self {
        Self::Data {
            path: path.into(),
            msg: msg.to_string(),
        }
    }
}

impl From<TaskError> for crate::Error {
    fn from(e: TaskError) -> Self {
        match e {
            TaskError::Train(e) => e,
            TaskError::Candle(e) => crate::Error::Candle(e),
            TaskError::Nn(e) => crate::Error::Nn(e),
            other => crate::Error::Data(other.to_string()),
        }
    }
}
