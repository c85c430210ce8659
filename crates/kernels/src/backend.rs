//! Which implementation runs a convolution on the CPU.
//!
//! | backend | what | dtypes |
//! |---|---|---|
//! | [`ConvBackend::OneDnn`] | oneDNN, PyTorch's CPU convolution library, loaded at run time (`onednn.rs`) | f32 (f64 runs `Gemm`) |
//! | [`ConvBackend::Gemm`] | vol2col + GEMM with its own backward (`conv.rs`) | f32, f64 |
//! | [`ConvBackend::Candle`] | candle's ops (`conv2d_generic` / `conv3d_generic`) | any |
//!
//! The process-wide choice is [`ConvBackend::selected`]: the environment
//! variable `WSBCN_CONV` (`onednn`, `gemm` or `candle`) when set, else oneDNN
//! when `libdnnl.so.2` loads, else `Gemm`. Other devices always use candle's
//! ops.

use crate::{Error, Result};
use std::sync::OnceLock;

/// A convolution implementation (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvBackend {
    /// oneDNN (f32 on the CPU).
    OneDnn,
    /// vol2col + GEMM on the CPU.
    Gemm,
    /// candle's own ops.
    Candle,
}

impl ConvBackend {
    /// Every backend, fastest first.
    pub const ALL: [ConvBackend; 3] = [Self::OneDnn, Self::Gemm, Self::Candle];

    /// The name `WSBCN_CONV` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::OneDnn => "onednn",
            Self::Gemm => "gemm",
            Self::Candle => "candle",
        }
    }

    /// The backend called `name` (see [`ConvBackend::name`]).
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|b| b.name() == name)
            .ok_or_else(|| {
                Error::backend(
                    "conv backend",
                    format!("{name:?} is not a backend: expected onednn, gemm or candle"),
                )
            })
    }

    /// Whether this backend can run here: oneDNN needs `libdnnl.so.2`
    /// (oneDNN 2.x); the error says why it cannot be loaded.
    pub fn available(self) -> Result<()> {
        match self {
            Self::OneDnn => {
                crate::onednn::available().map_err(|why| Error::backend("conv backend onednn", why))
            }
            Self::Gemm | Self::Candle => Ok(()),
        }
    }

    /// The backend convolutions use in this process, decided once: see the
    /// module docs. An unknown `WSBCN_CONV`, or `onednn` without the
    /// library, is an error naming the variable.
    pub fn selected() -> Result<Self> {
        static SELECTED: OnceLock<std::result::Result<ConvBackend, String>> = OnceLock::new();
        SELECTED
            .get_or_init(|| match std::env::var("WSBCN_CONV") {
                Ok(name) => Self::from_name(&name)
                    .and_then(|b| b.available().map(|_| b))
                    .map_err(|e| format!("WSBCN_CONV={name}: {e}")),
                Err(_) => Ok(if Self::OneDnn.available().is_ok() {
                    Self::OneDnn
                } else {
                    Self::Gemm
                }),
            })
            .clone()
            .map_err(|why| Error::backend("WSBCN_CONV", why))
    }
}
