//! A convolution followed by its normalization, both built by the
//! [`LayerFactory`](crate::LayerFactory) ([`LayerFactory::conv_norm`](crate::LayerFactory::conv_norm)):
//! the unit every ResNet, DeepLab head and video model is made of.
//!
//! ```text
//! y = norm(conv(x))    x: (N, C_in, [T,] H, W)  ->  y: (N, C_out, [T',] H', W')
//! ```
//!
//! with `D = 2` or `3` spatial axes. The activation, when there is one, is
//! the model's (see [`Residual`](crate::Residual) for the residual block).

use crate::{Conv, ConvGeometry, ConvOp, Norm};
use candle_core::{Module, ModuleT, Tensor};

/// `norm(conv(x))` (see the module docs).
#[derive(Clone, Debug)]
pub struct ConvNorm<const D: usize> {
    conv: Conv<D>,
    norm: Norm,
}

impl<const D: usize> ConvNorm<D> {
    /// The pair of an already built conv and the norm of its output.
    pub fn new(conv: Conv<D>, norm: Norm) -> Self {
        Self { conv, norm }
    }

    /// The convolution.
    pub fn conv(&self) -> &Conv<D> {
        &self.conv
    }

    /// The normalization.
    pub fn norm(&self) -> &Norm {
        &self.norm
    }
}

impl<const D: usize> ModuleT for ConvNorm<D>
where
    ConvGeometry<D>: ConvOp,
{
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.norm.forward_t(&self.conv.forward(x)?, train)
    }
}
