//! ResNet backbones for dense prediction, layer for layer as torchvision's
//! `resnet18/34/50/101` (same parameter names), with every conv and norm
//! from the layers factory.
//!
//! * depth 10/18/34 (basic blocks; 10 has one block per stage, timm's
//!   `resnet10t` layout with the plain stem) and 50/101 (bottlenecks,
//!   expansion 4);
//! * a width multiplier on every channel count, for CPU-scale runs;
//! * the plain 7x7 stem or the deep stem of three 3x3 convs (`conv1.0`,
//!   `conv1.3`, `conv1.6` with norms `conv1.1`, `conv1.4`, then `bn1`);
//! * output stride 8, 16 or 32: the strides of the last stages become
//!   dilations (torchvision's `replace_stride_with_dilation`), and the last
//!   stage's blocks multiply their dilation by the multi-grid rates: the
//!   DeepLabv3 paper's definition (unit rates (1, 2, 4) at output stride 16
//!   give dilations 2, 4, 8). mmsegmentation's `multi_grid` differs: it
//!   uses the rates themselves as the dilations. With rates all 1 the
//!   layout is torchvision's.
//!
//! Input `(N, 3, H, W)`; [`ResNet::forward_t`] returns the outputs of stage 3
//! (for an auxiliary head) and stage 4, at stride `min(16, os)` and `os`.

use crate::{Error, Result};
use candle_core::{ModuleT, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use wsbcn_nn::{max_pool, relu, ConvGeometry, ConvNorm, LayerFactory, Residual};

/// The backbone section of a config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResNetConfig {
    /// 18, 34, 50 or 101.
    pub depth: usize,
    /// Multiplier on every channel count (1.0: torchvision's widths).
    pub width: f64,
    /// Three 3x3 convs instead of the 7x7 stem.
    pub deep_stem: bool,
    /// 8, 16 or 32.
    pub output_stride: usize,
    /// Dilation multipliers of the last stage's blocks (the DeepLabv3
    /// paper's multi-grid: rate times the stage's dilation, not
    /// mmsegmentation's absolute rates).
    pub multi_grid: Vec<usize>,
}

impl Default for ResNetConfig {
    fn default() -> Self {
        Self {
            depth: 101,
            width: 1.0,
            deep_stem: false,
            output_stride: 16,
            multi_grid: vec![1, 1, 1],
        }
    }
}

impl ResNetConfig {
    /// Blocks per stage and whether they are bottlenecks.
    fn layout(&self) -> Result<([usize; 4], bool)> {
        Ok(match self.depth {
            10 => ([1, 1, 1, 1], false),
            18 => ([2, 2, 2, 2], false),
            34 => ([3, 4, 6, 3], false),
            50 => ([3, 4, 6, 3], true),
            101 => ([3, 4, 23, 3], true),
            d => {
                return Err(Error::Config(format!(
                    "resnet depth {d}: expected 10, 18, 34, 50 or 101"
                )))
            }
        })
    }

    /// Channels of `base` scaled by the width, at least 1.
    pub fn channels(&self, base: usize) -> usize {
        ((base as f64 * self.width).round() as usize).max(1)
    }

    /// Channels of the stage-3 and stage-4 outputs.
    pub fn out_channels(&self) -> Result<(usize, usize)> {
        let (_, bottleneck) = self.layout()?;
        let e = if bottleneck { 4 } else { 1 };
        Ok((self.channels(256) * e, self.channels(512) * e))
    }
}

/// A `k`x`k` conv (centred padding) and its norm, under `vb_conv` and
/// `vb_norm`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_norm(
    f: &LayerFactory,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    vb_conv: VarBuilder,
    vb_norm: VarBuilder,
) -> Result<ConvNorm<2>> {
    let geo = ConvGeometry::centered([k, k], [stride; 2], [dilation; 2]);
    Ok(f.conv_norm(cin, cout, [k, k], geo, vb_conv, vb_norm)?)
}

/// A residual block: basic (two 3x3) or bottleneck (1x1, 3x3, 1x1), with
/// torchvision's names (`conv{i}`, `bn{i}`, `downsample.{0,1}`).
#[allow(clippy::too_many_arguments)]
fn block(
    f: &LayerFactory,
    cin: usize,
    planes: usize,
    bottleneck: bool,
    stride: usize,
    dilation: usize,
    downsample: bool,
    vb: VarBuilder,
) -> Result<Residual<2>> {
    let cout = if bottleneck { planes * 4 } else { planes };
    let specs: Vec<(usize, usize, usize, usize, usize)> = if bottleneck {
        vec![
            (cin, planes, 1, 1, 1),
            (planes, planes, 3, stride, dilation),
            (planes, cout, 1, 1, 1),
        ]
    } else {
        vec![
            (cin, planes, 3, stride, dilation),
            (planes, planes, 3, 1, dilation),
        ]
    };
    let mut convs = vec![];
    for (i, (a, b, k, s, d)) in specs.into_iter().enumerate() {
        let (c, n) = (format!("conv{}", i + 1), format!("bn{}", i + 1));
        convs.push(conv_norm(f, a, b, k, s, d, vb.pp(c), vb.pp(n))?);
    }
    let downsample = if downsample {
        let (c, n) = (vb.pp("downsample.0"), vb.pp("downsample.1"));
        Some(conv_norm(f, cin, cout, 1, stride, 1, c, n)?)
    } else {
        None
    };
    Ok(Residual::new(convs, downsample)?)
}

/// A ResNet backbone (see the module docs).
#[derive(Debug)]
pub struct ResNet {
    stem: Vec<ConvNorm<2>>,
    stages: Vec<Vec<Residual<2>>>,
}

impl ResNet {
    /// Builds the backbone under `vb` (names as torchvision's `resnet*`).
    pub fn new(cfg: &ResNetConfig, f: &LayerFactory, vb: VarBuilder) -> Result<Self> {
        let (blocks, bottleneck) = cfg.layout()?;
        let dilate = match cfg.output_stride {
            8 => [false, true, true],
            16 => [false, false, true],
            32 => [false, false, false],
            os => {
                return Err(Error::Config(format!(
                    "output stride {os}: expected 8, 16 or 32"
                )))
            }
        };
        if cfg.multi_grid.is_empty() {
            return Err(Error::Config("multi_grid needs at least one rate".into()));
        }
        let inplanes = cfg.channels(64);
        let stem = if cfg.deep_stem {
            let half = cfg.channels(32);
            vec![
                conv_norm(f, 3, half, 3, 2, 1, vb.pp("conv1.0"), vb.pp("conv1.1"))?,
                conv_norm(f, half, half, 3, 1, 1, vb.pp("conv1.3"), vb.pp("conv1.4"))?,
                conv_norm(f, half, inplanes, 3, 1, 1, vb.pp("conv1.6"), vb.pp("bn1"))?,
            ]
        } else {
            vec![conv_norm(
                f,
                3,
                inplanes,
                7,
                2,
                1,
                vb.pp("conv1"),
                vb.pp("bn1"),
            )?]
        };
        let expansion = if bottleneck { 4 } else { 1 };
        let (mut cin, mut dilation) = (inplanes, 1);
        let mut stages = vec![];
        for (s, &n) in blocks.iter().enumerate() {
            let planes = cfg.channels(64 << s);
            let mut stride = if s == 0 { 1 } else { 2 };
            let previous = dilation;
            if s > 0 && dilate[s - 1] {
                dilation *= stride;
                stride = 1;
            }
            let mut stage = vec![];
            for b in 0..n {
                // torchvision: a stage's first block keeps the previous
                // dilation; with multi-grid rates (the DeepLabv3 paper's
                // form) every block of the last stage uses dilation x rate.
                let mut d = if b == 0 { previous } else { dilation };
                if s == 3 && cfg.multi_grid.iter().any(|&r| r != 1) {
                    d = dilation * cfg.multi_grid[b % cfg.multi_grid.len()];
                }
                let (st, down) = if b == 0 {
                    (stride, stride != 1 || cin != planes * expansion)
                } else {
                    (1, false)
                };
                let vbb = vb.pp(format!("layer{}.{b}", s + 1));
                stage.push(block(f, cin, planes, bottleneck, st, d, down, vbb)?);
                cin = planes * expansion;
            }
            stages.push(stage);
        }
        Ok(Self { stem, stages })
    }

    /// `(stage-3 features, stage-4 features)` of `x: (N, 3, H, W)`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let mut y = x.clone();
        for cn in &self.stem {
            y = relu(&cn.forward_t(&y, train)?)?;
        }
        y = max_pool(&y, [3, 3], [2, 2], [1, 1])?;
        let mut c3 = None;
        for (s, stage) in self.stages.iter().enumerate() {
            for block in stage {
                y = block.forward_t(&y, train)?;
            }
            if s == 2 {
                c3 = Some(y.clone());
            }
        }
        let c3 = c3.ok_or_else(|| Error::Config("resnet has fewer than 3 stages".into()))?;
        Ok((c3, y))
    }
}
