//! Figures of the wsbcn suite, drawn with plotters: the font they are laid
//! out with, writing a figure as PNG and SVG at once, and the figures more
//! than one crate draws (the confusion matrix).
#![warn(missing_docs)]

pub mod confusion;
pub mod figure;
pub mod font;

pub use confusion::ConfusionFigure;
pub use figure::{draw_err, save, Figure};
pub use font::font;

/// Errors of drawing and writing figures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing a figure's file failed.
    #[error("{path}: {msg}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        msg: String,
    },
    /// No usable font, or drawing failed.
    #[error("{0}")]
    Draw(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
