//! Video recognition for the wsbcn suite: 3D-conv models on clips
//! `(N, C, T, H, W)` whose every conv and norm comes from the layers crate's
//! factory, so each normalization variant is one config value, and the clip
//! data they train on.
//!
//! * [`model_config`], [`video_model`]: every model behind one config
//!   section and type:
//!   [`video_resnet`] (R3D, MC3 and R(2+1)D, layer for layer as
//!   torchvision's `r3d_18`, `mc3_18` and `r2plus1d_18`),
//!   [`bottleneck_resnet`] (I3D-ResNet-50 and TSM-ResNet-50/101, with the
//!   [`temporal_shift`] module) and [`c3d`] (C3D, small).
//! * [`ssv2`], [`kinetics`], [`video_list`]: the Something-Something v2,
//!   Kinetics-400 and plain list-file annotation layouts.
//! * [`video_source`]: a split in any of those layouts, as a config value.
//! * [`decode`]: FFmpeg decoding to RGB frames, with seeking; [`encode`]:
//!   RGB frames to WebM or MP4, for the embedded data sets.
//! * [`clip_cache`]: the decoded-clip cache in HDF5.
//! * [`clip_transform`], [`clip_data`]: augmentation and the clip data set.
//! * [`task`]: the training task, config and metrics.
//! * [`sampling`]: TSN/TSM segment sampling and dense clip sampling.

#![warn(missing_docs)]

pub mod bottleneck_resnet;
pub mod c3d;
pub mod clip_cache;
pub mod clip_data;
pub mod clip_transform;
mod conv_norm;
pub mod decode;
pub mod encode;
pub mod jpeg;
pub mod kinetics;
pub mod model_config;
pub mod sampling;
pub mod ssv2;
pub mod task;
pub mod temporal_shift;
pub mod video_list;
pub mod video_model;
pub mod video_resnet;
pub mod video_source;

pub use clip_cache::{
    build_cache, CacheOptions, CacheReport, ClipCache, FrameFormat, DEFAULT_JPEG_QUALITY,
};
pub use decode::{count_frames, decode_all, decode_frames, Frames, Resize};
pub use sampling::Sampler;
pub use video_list::{read_list_file, VideoList, VideoRecord};
pub use video_source::VideoSource;
/// The error type of this crate: the task error the engine defines for
/// every task crate (a data file or setting at fault, or what candle, the
/// layers or the engine report).
pub use wsbcn_train::TaskError as Error;

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
