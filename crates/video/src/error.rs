//! The error type of `wsbcn-video`.

/// Errors raised by the video crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed inside candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// A layer rejected its configuration or input.
    #[error(transparent)]
    Nn(#[from] wsbcn_nn::Error),

    /// A model setting is inconsistent.
    #[error("{0}")]
    Config(String),
}
