//! The error type of `wsbcn-kernels`: choosing a backend and starting the
//! compute threads. The ops themselves run inside candle and fail with
//! candle's error, which names the op.

/// Errors raised outside the ops: backend selection, thread pools.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A backend was asked for by a name that does not exist, or cannot
    /// load here.
    #[error("{what}: {msg}")]
    Backend {
        /// What was being chosen (`WSBCN_CONV`, `conv backend onednn`).
        what: String,
        /// Why it cannot be used.
        msg: String,
    },

    /// The compute threads could not be started.
    #[error("{0}")]
    Threads(String),
}

impl Error {
    pub(crate) fn backend(what: &str, msg: impl Into<String>) -> Self {
        Self::Backend {
            what: what.to_string(),
            msg: msg.into(),
        }
    }
}

/// The result type of `wsbcn-kernels`.
pub type Result<T> = std::result::Result<T, Error>;
