//! Which implementation runs a convolution on the CPU.
//!
//! | backend | what | dtypes |
//! |---|---|---|
//! | [`ConvBackend::OneDnn`] | oneDNN, PyTorch's CPU convolution library, loaded at run time (`onednn.rs`) | f32 (f64 runs `Gemm`) |
//! | [`ConvBackend::Gemm`] | vol2col + GEMM with its own backward (`cpu_conv.rs`) | f32, f64 |
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
                Error::config(
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
                crate::onednn::available().map_err(|why| Error::config("conv backend onednn", why))
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
            .map_err(|why| Error::config("WSBCN_CONV", why))
    }
}

/// Makes idle pool threads sleep instead of spinning: call it first thing
/// in `main`. On a machine with few cores a spinning idle thread takes a
/// core from the work that runs next on another pool (oneDNN's OpenMP
/// threads, candle's element-wise pool, rayon).
///
/// * OpenMP: libgomp spins its idle threads by default, which took the
///   cores from the candle ops between convolutions (a Fashion-VOC DeepLabV3
///   training step ran 1.35x slower). libgomp reads `OMP_WAIT_POLICY` once,
///   when it is loaded: if the variable is unset this sets it to `passive`,
///   and when libgomp is already loaded (a program linking FFmpeg loads it
///   before `main`) re-executes the program so that it reads the setting;
///   when re-executing fails the program goes on as it is.
/// * candle's element-wise pool spins 25,000 rounds after each parallel op
///   before it parks; `CANDLE_BARRIER_POOL_SPIN_LIMIT` is set to 100 (the
///   same DeepLabV3 step: median 24.2 against 22.2 steps/s in four
///   interleaved runs of each).
///
/// A user's own setting of either variable is kept.
pub fn quiet_thread_pools() {
    const SPIN_LIMIT: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(SPIN_LIMIT).is_none() {
        std::env::set_var(SPIN_LIMIT, "100");
    }
    if !default_wait_policy() {
        return;
    }
    let gomp_loaded =
        std::fs::read_to_string("/proc/self/maps").is_ok_and(|maps| maps.contains("libgomp"));
    #[cfg(unix)]
    if gomp_loaded {
        use std::os::unix::process::CommandExt;
        if let Ok(exe) = std::env::current_exe() {
            // Only returns on failure.
            let _ = std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .exec();
        }
    }
}

/// Sets `OMP_WAIT_POLICY=passive` unless the user set it; whether it did.
pub(crate) fn default_wait_policy() -> bool {
    const OMP_WAIT_POLICY: &str = "OMP_WAIT_POLICY";
    if std::env::var_os(OMP_WAIT_POLICY).is_some() {
        return false;
    }
    std::env::set_var(OMP_WAIT_POLICY, "passive");
    true
}
