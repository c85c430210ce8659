//! Video recognition for the wsbcn suite: 3D-conv models on clips
//! `(N, C, T, H, W)` whose every conv and norm comes from the layers crate's
//! factory, so each normalization variant is one config value.
//!
//! * [`video_resnet`]: R3D, MC3 and R(2+1)D, layer for layer as
//!   torchvision's `r3d_18`, `mc3_18` and `r2plus1d_18`.

#![warn(missing_docs)]

mod error;
pub mod video_resnet;

pub use error::Error;

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
