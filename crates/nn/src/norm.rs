//! One type for every normalization the factory builds, so that models hold
//! a [`Norm`] and never name a concrete layer.

use crate::batch_channel_norm::{BatchChannelNorm, BatchPart};
use crate::batch_norm::BatchNorm;
use crate::diagnostics::Diagnostics;
use crate::group_norm::GroupNorm;
use crate::Result;
use candle_core::{ModuleT, Tensor};

/// The concrete layer inside a [`Norm`].
#[derive(Clone, Debug)]
pub enum NormLayer {
    /// No normalization (`"none"`): the input passes through.
    Identity,
    /// [`BatchNorm`] (`"bn"`).
    Batch(BatchNorm),
    /// [`GroupNorm`], LayerNorm or InstanceNorm (`"gn"`, `"ln"`, `"in"`).
    Group(GroupNorm),
    /// [`BatchChannelNorm`] (`"bcn"`, `"bcn-est"`).
    BatchChannel(BatchChannelNorm),
}

/// A normalization layer for `(N, C, H, W)` or `(N, C, T, H, W)` input,
/// output of the same shape, reporting to a [`Diagnostics`] handle.
#[derive(Clone, Debug)]
pub struct Norm {
    layer: NormLayer,
    name: String,
    diagnostics: Diagnostics,
}

impl Norm {
    /// Wraps `layer`, named `name`, reporting to `diagnostics`.
    pub fn new(layer: NormLayer, name: &str, diagnostics: Diagnostics) -> Self {
        Self {
            layer,
            name: name.to_string(),
            diagnostics,
        }
    }

    /// The concrete layer.
    pub fn layer(&self) -> &NormLayer {
        &self.layer
    }

    /// The layer's name (its `VarBuilder` path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the layer normalizes with the statistics of the current
    /// batch when training (BN, and BCN with batch statistics).
    pub fn uses_batch_statistics(&self) -> bool {
        match &self.layer {
            NormLayer::Batch(_) => true,
            NormLayer::BatchChannel(l) => matches!(l.batch_part(), BatchPart::Batch(_)),
            _ => false,
        }
    }

    fn forward_checked(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = match &self.layer {
            NormLayer::Identity => x.clone(),
            NormLayer::Batch(l) => l.forward_t(x, train)?,
            NormLayer::Group(l) => l.forward_t(x, train)?,
            NormLayer::BatchChannel(l) => l.forward_t(x, train)?,
        };
        if self.diagnostics.is_enabled() && y.rank() >= 3 {
            let (n, c) = (y.dim(0)?, y.dim(1)?);
            let y = y.reshape((n, c, ()))?;
            self.diagnostics
                .record_norm(&self.name, &y, train && self.uses_batch_statistics())?;
        }
        Ok(y)
    }
}

impl ModuleT for Norm {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        Ok(self.forward_checked(x, train)?)
    }
}
