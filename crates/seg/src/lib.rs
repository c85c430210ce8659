//! DeepLabV3 semantic segmentation on PASCAL VOC, with every normalization
//! variant of the layers crate: the VOC loader and augmentation, ResNet
//! backbones and the DeepLabV3 head, metrics, and the task that plugs into
//! the training engine.
#![warn(missing_docs)]

pub mod augment;
pub mod deeplab;
pub mod metrics;
pub mod palette;
pub mod resnet;
pub mod task;
pub mod visualize;
pub mod voc;

/// The error type of this crate: the task error the engine defines for
/// every task crate (a data file or setting at fault, or what candle, the
/// layers or the engine report).
pub use wsbcn_train::TaskError as Error;

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
