//! The video models' conv-norm unit: a conv with centred padding
//! (`kernel / 2` on each axis: "same" for odd kernels at stride 1) and its
//! norm, both from the layer factory (`wsbcn_nn::ConvNorm`). 3D for the
//! clip networks, 2D for TSM's frames.

use crate::Result;
use candle_nn::VarBuilder;
use wsbcn_nn::{ConvGeometry, ConvNorm, ConvOp, LayerFactory};

/// `norm(conv(x))`, the conv under `vb_conv` and the norm under `vb_norm`.
pub(crate) fn conv_norm<const D: usize>(
    f: &LayerFactory,
    cin: usize,
    cout: usize,
    kernel: [usize; D],
    stride: [usize; D],
    vb_conv: VarBuilder,
    vb_norm: VarBuilder,
) -> Result<ConvNorm<D>>
where
    ConvGeometry<D>: ConvOp,
{
    let geometry = ConvGeometry::centered(kernel, stride, [1; D]);
    Ok(f.conv_norm(cin, cout, kernel, geometry, vb_conv, vb_norm)?)
}
