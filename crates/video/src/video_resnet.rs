//! Video ResNets, layer for layer as torchvision's `r3d_18`, `mc3_18` and
//! `r2plus1d_18` (same parameter names and shapes, so their weights exported
//! to safetensors load into the BN variant), at depth 18 or 34 (or 10, one block per
//! stage, for CPU-scale comparisons) and with a
//! width multiplier on every channel count.
//!
//! ```text
//! stem      R3D, MC3: conv 3x7x7 (stride 1,2,2; pad 1,3,3) -> 64, norm, relu   stem.0, stem.1
//!           R(2+1)D:  conv 1x7x7 (stride 1,2,2) -> 45, norm, relu,
//!                     conv 3x1x1 -> 64, norm, relu                           stem.0,1,3,4
//! layer1-4  basic blocks, 64/128/256/512 channels, stride 1/2/2/2:
//!           conv1.0 conv, conv1.1 norm, relu; conv2.0 conv, conv2.1 norm;
//!           + shortcut (downsample.0 1x1x1 conv, downsample.1 norm), relu
//! head      global average pool over (T, H, W), fc (Linear)
//! ```
//!
//! The block convs are, per architecture: R3D 3x3x3 (stride `s` on T, H and
//! W); MC3 3x3x3 in layer1 and 1x3x3 (stride `1,s,s`) in layers 2-4 (mixed
//! convolutions); R(2+1)D a 1x3x3 conv (stride `1,s,s`) to `M` channels,
//! norm, relu, then a 3x1x1 conv (stride `s,1,1`), with
//! `M = 27 Cin Cout / (9 Cin + 3 Cout)` (rounded down) so that the pair has
//! the parameters of one 3x3x3 conv; its names are `conv1.0.0`, `conv1.0.1`,
//! `conv1.0.3`. Shortcuts stride like their block (`1,s,s` in MC3).
//! torchvision's R(2+1)D widths (45 in the stem, `M` = 144, 288, ...) are
//! not multiples of 32: they are kept whatever the norm, and a grouped norm
//! (GN, BCN) over them takes the largest group count that divides them
//! ([`LayerFactory::groups_for`]), so every variant has the same convs.
//!
//! Norm layers see the whole `(N, T, H, W)` extent of a channel, as
//! BatchNorm3d does. Input `(N, 3, T, H, W)`, output logits `(N, classes)`.

use crate::conv_norm::conv_norm;
use crate::model_config::{Arch, VideoModelConfig};
use crate::{Error, Result};
use candle_core::{Module, ModuleT, Tensor};
use candle_nn::{Linear, VarBuilder};
use wsbcn_nn::{global_avg_pool, relu, ConvNorm, LayerFactory, Residual};

/// A block's conv `conv{i}` under `vb`: one conv and its norm
/// (`conv{i}.0`, `conv{i}.1`), or R(2+1)D's spatial then temporal pair
/// (`conv{i}.0.{0,1,3}`, `conv{i}.1`). A basic block is the conv-norms of
/// its two block convs in a row, a ReLU between each two
/// ([`Residual`]).
#[allow(clippy::too_many_arguments)]
fn block_conv(
    f: &LayerFactory,
    arch: Arch,
    spatial_only: bool,
    cin: usize,
    cout: usize,
    mid: usize,
    stride: usize,
    vb: VarBuilder,
) -> Result<Vec<ConvNorm<3>>> {
    let s = stride;
    let (c0, c1) = (vb.pp("0"), vb.pp("1"));
    Ok(match arch {
        Arch::R2plus1d => vec![
            conv_norm(f, cin, mid, [1, 3, 3], [1, s, s], c0.pp("0"), c0.pp("1"))?,
            conv_norm(f, mid, cout, [3, 1, 1], [s, 1, 1], c0.pp("3"), c1)?,
        ],
        _ if spatial_only => {
            vec![conv_norm(f, cin, cout, [1, 3, 3], [1, s, s], c0, c1)?]
        }
        _ => vec![conv_norm(f, cin, cout, [3, 3, 3], [s, s, s], c0, c1)?],
    })
}

/// R3D / MC3 / R(2+1)D (see the module docs).
#[derive(Debug)]
pub struct VideoResNet {
    stem: Vec<ConvNorm<3>>,
    layers: Vec<Residual<3>>,
    fc: Linear,
}

impl VideoResNet {
    /// Builds the model with every conv and norm from `f`.
    pub fn new(cfg: &VideoModelConfig, f: &LayerFactory, vb: VarBuilder) -> Result<Self> {
        if !matches!(cfg.arch, Arch::R3d | Arch::Mc3 | Arch::R2plus1d) {
            return Err(Error::Config(format!(
                "{:?} is not a basic-block video ResNet",
                cfg.arch
            )));
        }
        let blocks = match cfg.depth {
            10 => [1, 1, 1, 1],
            18 => [2, 2, 2, 2],
            34 => [3, 4, 6, 3],
            d => {
                return Err(Error::Config(format!(
                    "{:?} depth {d}: expected 10, 18 or 34",
                    cfg.arch
                )))
            }
        };
        let c64 = cfg.channels(64);
        let stem = match cfg.arch {
            Arch::R2plus1d => {
                let c45 = cfg.channels(45);
                vec![
                    conv_norm(
                        f,
                        3,
                        c45,
                        [1, 7, 7],
                        [1, 2, 2],
                        vb.pp("stem.0"),
                        vb.pp("stem.1"),
                    )?,
                    conv_norm(
                        f,
                        c45,
                        c64,
                        [3, 1, 1],
                        [1, 1, 1],
                        vb.pp("stem.3"),
                        vb.pp("stem.4"),
                    )?,
                ]
            }
            _ => vec![conv_norm(
                f,
                3,
                c64,
                [3, 7, 7],
                [1, 2, 2],
                vb.pp("stem.0"),
                vb.pp("stem.1"),
            )?],
        };
        let mut layers = vec![];
        let mut cin = c64;
        for (stage, &count) in blocks.iter().enumerate() {
            let planes = cfg.channels(64 << stage);
            let spatial_only = cfg.arch == Arch::Mc3 && stage > 0;
            for i in 0..count {
                let vb = vb.pp(format!("layer{}.{i}", stage + 1));
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                let mid = 27 * cin * planes / (9 * cin + 3 * planes);
                let mut branch = block_conv(
                    f,
                    cfg.arch,
                    spatial_only,
                    cin,
                    planes,
                    mid,
                    stride,
                    vb.pp("conv1"),
                )?;
                branch.extend(block_conv(
                    f,
                    cfg.arch,
                    spatial_only,
                    planes,
                    planes,
                    mid,
                    1,
                    vb.pp("conv2"),
                )?);
                let downsample = if stride != 1 || cin != planes {
                    let t = if spatial_only { 1 } else { stride };
                    Some(conv_norm(
                        f,
                        cin,
                        planes,
                        [1, 1, 1],
                        [t, stride, stride],
                        vb.pp("downsample.0"),
                        vb.pp("downsample.1"),
                    )?)
                } else {
                    None
                };
                layers.push(Residual::new(branch, downsample)?);
                cin = planes;
            }
        }
        let fc = candle_nn::linear(cin, cfg.num_classes, vb.pp("fc"))?;
        Ok(Self { stem, layers, fc })
    }

    /// Logits `(N, classes)` for clips `x: (N, 3, T, H, W)`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if x.rank() != 5 || x.dim(1)? != 3 {
            return Err(Error::Config(format!(
                "video resnet: expected clips (N, 3, T, H, W), got {:?}",
                x.dims()
            )));
        }
        let mut y = x.clone();
        for cn in &self.stem {
            y = relu(&cn.forward_t(&y, train)?)?;
        }
        for block in &self.layers {
            y = block.forward_t(&y, train)?;
        }
        let pooled = global_avg_pool(&y)?.flatten_from(1)?;
        Ok(self.fc.forward(&pooled)?)
    }
}
