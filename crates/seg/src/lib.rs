//! DeepLabV3 semantic segmentation on PASCAL VOC, with every normalization
//! variant of the layers crate: the VOC loader and augmentation, ResNet
//! backbones and the DeepLabV3 head, metrics, and the task that plugs into
//! the training engine.
#![warn(missing_docs)]

pub mod augment;
pub mod deeplab;
pub mod error;
pub mod metrics;
pub mod palette;
pub mod resnet;
pub mod task;
pub mod visualize;
pub mod voc;

pub use error::{Error, Result};
