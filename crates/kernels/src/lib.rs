//! CPU kernels for candle: the ops behind `wsbcn-nn`'s layers and
//! `wsbcn-train`'s loss and optimizer, written by hand where candle's
//! composite ops were the bottleneck of a CPU-scale training step (each
//! module says what it replaces and what it measured).
//!
//! Every op is a candle custom op with its own backward pass, on f32 and
//! f64 CPU tensors; callers keep candle's composite ops for other devices
//! and dtypes. The API is one forward (with its backward) per op, plus
//! backend and thread selection:
//!
//! | module | op | replaces |
//! |---|---|---|
//! | [`conv`] | [`CpuConv`]: 2D/3D convolution, grouped, dilated | candle's `conv2d` backward |
//! | [`backend`] | [`ConvBackend`]: oneDNN, GEMM or candle, chosen once | |
//! | [`group_norm`] | [`group_norm_affine`] | GN from ~30 element-wise ops |
//! | [`batch_norm`] | [`channel_moments`], [`channel_affine`] | BN likewise |
//! | [`max_pool`] | [`MaxPool`] | gathered window taps |
//! | [`relu()`] | one-pass ReLU backward | candle's four-op mask |
//! | [`sgd`] | in-place SGD update, squared norm | seven ops per parameter |
//! | [`pixel_ce`] | [`PixelCrossEntropy`] | a dozen full-size ops |
//! | [`ws`] | [`ws::standardize_rows`]: Weight Standardization | ~1 ms of small ops per kernel |
//! | [`profile`] | op wall times per kind, for a step profile | |
//! | [`threads`] | [`on_own_pool`], [`share_cores`], [`quiet_thread_pools`] | |
//! | [`memory`] | [`keep_freed_memory`]: glibc keeps freed activations for the next step | a page fault per 4 KiB of every large activation |
//!
//! Shapes: convolutions take `x (N, C, [T,] H, W)` and `w (O, C/g, [kt,]
//! kh, kw)`; the norms take `x (N, C, L)` with `(C,)` affine parameters.

#![warn(missing_docs)]

mod affine_norm;
pub mod backend;
pub mod batch_norm;
pub mod conv;
mod conv_geometry;
pub mod error;
pub mod group_norm;
pub mod max_pool;
pub mod memory;
mod onednn;
pub mod pixel_ce;
pub mod profile;
pub mod relu;
pub mod sgd;
pub mod slice;
pub mod threads;
pub mod ws;

pub use backend::ConvBackend;
pub use batch_norm::{channel_affine, channel_moments, StatsGrad, SumAcross};
pub use conv::CpuConv;
pub use conv_geometry::Geometry;
pub use error::{Error, Result};
pub use group_norm::group_norm_affine;
pub use max_pool::MaxPool;
pub use memory::keep_freed_memory;
pub use pixel_ce::PixelCrossEntropy;
pub use relu::relu;
pub use threads::{compute_pool, on_own_pool, quiet_thread_pools, share_cores};
