//! The video models' conv-norm unit: a 3D conv with centred padding
//! (`kernel / 2` on each axis: "same" for odd kernels at stride 1) and its
//! norm, both from the layer factory (`wsbcn_nn::ConvNorm`).

use crate::Result;
use candle_nn::VarBuilder;
use wsbcn_nn::{ConvGeometry, ConvNorm, LayerFactory};

/// `norm(conv(x))`, the conv under `vb_conv` and the norm under `vb_norm`.
pub(crate) fn conv_norm(
    f: &LayerFactory,
    cin: usize,
    cout: usize,
    kernel: [usize; 3],
    stride: [usize; 3],
    vb_conv: VarBuilder,
    vb_norm: VarBuilder,
) -> Result<ConvNorm<3>> {
    let geometry = ConvGeometry::centered(kernel, stride, [1; 3]);
    Ok(f.conv_norm(cin, cout, kernel, geometry, vb_conv, vb_norm)?)
}
