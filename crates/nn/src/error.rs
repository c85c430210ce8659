//! The error type of `wsbcn-nn`: every fallible constructor and helper returns
//! [`Result`]; `Module::forward` implementations wrap it into a candle error
//! so that the message (which names the layer) reaches the caller intact.

/// Errors raised by the layers crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed inside candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// A layer spec string (`"gn+ws"`, `"bcn-est+ws"`) could not be parsed.
    #[error("layer spec `{spec}`: {msg}")]
    Spec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        msg: String,
    },

    /// A layer was configured with inconsistent numbers.
    #[error("{layer}: {msg}")]
    Config {
        /// The layer's name (its `VarBuilder` path).
        layer: String,
        /// What is inconsistent, with the numbers.
        msg: String,
    },

    /// A layer was given an input of the wrong rank or channel count.
    #[error("{layer}: expected input {expected}, got shape {got:?}")]
    Shape {
        /// The layer's name (its `VarBuilder` path).
        layer: String,
        /// The accepted shapes, in words.
        expected: String,
        /// The shape it got.
        got: Vec<usize>,
    },

    /// Batch statistics requested where they are undefined
    /// (one value per channel in training).
    #[error("{layer}: {msg}")]
    Statistics {
        /// The layer's name (its `VarBuilder` path).
        layer: String,
        /// Why the statistics are undefined, with the input shape.
        msg: String,
    },

    /// A kernel backend could not be chosen (`WSBCN_CONV`), or the compute
    /// threads could not start.
    #[error(transparent)]
    Kernels(#[from] wsbcn_kernels::Error),
}

impl Error {
    pub(crate) fn config(layer: &str, msg: impl Into<String>) -> Self {
        Self::Config {
            layer: layer.to_string(),
            msg: msg.into(),
        }
    }
}

/// The result type of `wsbcn-nn`.
pub type Result<T> = std::result::Result<T, Error>;

impl From<Error> for candle_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Candle(e) => e,
            other => candle_core::Error::wrap(other),
        }
    }
}
