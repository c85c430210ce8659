//! Weight Standardization and Batch-Channel Normalization layers for candle.
//!
//! Implements the method of Qiao et al., "Micro-Batch Training with
//! Batch-Channel Normalization and Weight Standardization" (arXiv
//! 1903.10520), as restated in the project's METHOD.md:
//!
//! * [`Conv2d`] / [`Conv3d`]: convolution with a [`WeightMode`] (plain or one
//!   of three WS variants), built on [`conv2d`] / [`conv3d`] (per-axis
//!   geometry and groups, with autograd; candle has no 3D conv);
//! * [`BatchNorm`], [`EstimatedBatchNorm`], [`GroupNorm`] (and LayerNorm,
//!   InstanceNorm), [`BatchChannelNorm`], for 4D and 5D input;
//! * [`LayerFactory`]: a spec string such as `"bcn-est+ws"` picks every
//!   layer of a model;
//! * [`ConvNorm`], [`Residual`]: the conv-norm unit and the residual block
//!   every model is built of, 2D and 3D;
//! * [`Diagnostics`]: elimination-singularity fractions and WS gradient
//!   ratios for the experiments' figures;
//! * [`resize_bilinear`], [`max_pool`], [`adaptive_avg_pool`]: the spatial
//!   ops models need, with backward passes (candle lacks or limits them);
//! * [`relu()`]: ReLU with a one-pass backward on the CPU;
//! * [`seeded_var_builder`]: deterministic initialisation (candle cannot
//!   seed its CPU generator).
//!
//! On the CPU the layers run `wsbcn-kernels`' fused ops (convolution through
//! oneDNN or GEMM, GN, BN, max pooling, ReLU); elsewhere, candle's own.
//!
//! Running statistics and estimates are variables in the model's `VarMap`
//! (named `running_mean`, `running_var` as in PyTorch), so
//! `VarMap::save`/`load` round-trips them with the weights; they never get
//! gradients.

#![warn(missing_docs)]

pub mod axis_map;
pub mod batch_channel_norm;
pub mod batch_norm;
pub mod conv_fn;
pub mod conv_norm;
pub mod diagnostics;
pub mod error;
pub mod estimated_batch_norm;
pub mod factory;
pub mod folding;
pub mod group_norm;
pub mod input;
pub mod norm;
pub mod pool;
pub mod residual;
pub mod resize;
pub mod seeded_init;
pub mod weight_standardization;
pub mod ws_conv;

pub use batch_channel_norm::{batch_channel_norm, BatchChannelNorm, BatchPart, BatchStatistics};
pub use batch_norm::{batch_norm, sync_batch_norm, BatchNorm};
pub use conv_fn::{
    conv2d, conv2d_generic, conv2d_with, conv3d, conv3d_generic, conv3d_with, ConvGeometry,
};
pub use conv_norm::ConvNorm;
pub use diagnostics::{
    singularity_fraction, Diagnostics, SingularityRecord, SingularityThresholds, WsGradRatio,
};
pub use error::{Error, Result};
pub use estimated_batch_norm::{estimated_batch_norm, EstimatedBatchNorm, MovingSpeed};
pub use factory::{LayerFactory, LayerSpec, NormConfig, NormKind};
pub use folding::{FoldSwitch, Folding};
pub use group_norm::{
    group_norm, group_norm_affine, group_norm_affine_composite, group_standardize, instance_norm,
    layer_norm, GroupNorm,
};
pub use norm::{Norm, NormLayer};
pub use pool::{adaptive_avg_pool, global_avg_pool, max_pool};
pub use residual::Residual;
pub use resize::{interpolation_matrix, resize_bilinear};
pub use seeded_init::seeded_var_builder;
pub use weight_standardization::{standardize, standardize_composite, WeightMode};
pub use ws_conv::{conv, Conv, Conv2d, Conv3d, ConvConfig, ConvOp, WeightInit};
/// ReLU with a one-pass backward on the CPU (a `wsbcn-kernels` op).
pub use wsbcn_kernels::relu;
/// The convolution backends [`conv2d_with`] and [`conv3d_with`] take (a
/// `wsbcn-kernels` type).
pub use wsbcn_kernels::ConvBackend;
