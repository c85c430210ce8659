//! A 3D conv followed by its norm, both from the layer factory: the unit
//! every video model is built of. Padding is `kernel / 2` on each axis
//! ("same" for odd kernels at stride 1).

use crate::Result;
use candle_core::{Module, ModuleT, Tensor};
use candle_nn::VarBuilder;
use wsbcn_nn::{Conv3d, ConvGeometry, LayerFactory, Norm};

/// `norm(conv(x))`, the conv under `vb_conv` and the norm under `vb_norm`.
#[derive(Debug)]
pub(crate) struct ConvNorm {
    conv: Conv3d,
    norm: Norm,
}

impl ConvNorm {
    pub(crate) fn new(
        f: &LayerFactory,
        cin: usize,
        cout: usize,
        kernel: [usize; 3],
        stride: [usize; 3],
        vb_conv: VarBuilder,
        vb_norm: VarBuilder,
    ) -> Result<Self> {
        let geometry = ConvGeometry {
            stride,
            padding: kernel.map(|k| k / 2),
            ..ConvGeometry::default()
        };
        Ok(Self {
            conv: f.conv(cin, cout, kernel, geometry, vb_conv)?,
            norm: f.norm(cout, vb_norm)?,
        })
    }

    /// `norm(conv(x))`, without the activation.
    pub(crate) fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.norm.forward_t(&self.conv.forward(x)?, train)?)
    }
}
