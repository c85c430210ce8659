//! The embedded data sets of wsbcn, generated on this machine from Debian's
//! Fashion-MNIST (nothing is downloaded) and written in the official
//! layouts, so that the real loaders of `wsbcn-seg` and `wsbcn-video` read
//! them back:
//!
//! * [`fashion_mnist`]: the IDX files, read by hand;
//! * [`garment_canvas`]: garments composited on textured backgrounds, the
//!   drawing both generators share;
//! * [`fashion_voc`]: Fashion-VOC, segmentation in the VOCdevkit layout;
//! * [`fashion_ssv2`]: Fashion-SSv2 (VP9 webm, SSv2 JSON) and
//!   Fashion-Kinetics (H.264 mp4, Kinetics CSV), garment-motion clips.
//!
//! The `wsbcn-data` binary runs the generators and builds the HDF5 clip
//! cache of `wsbcn-video`.

#![warn(missing_docs)]

pub mod fashion_mnist;
pub mod fashion_ssv2;
pub mod fashion_voc;
pub mod garment_canvas;

/// The error type of this crate: the task error the engine defines for the
/// crates above it (here: a file that cannot be read or written, or a
/// generator setting out of range).
pub use wsbcn_train::TaskError as Error;

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
