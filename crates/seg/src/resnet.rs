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
//!   dilations (torchvision's `replace_stride_with_dilation`; a stage's
//!   first block keeps the previous dilation, so at output stride 16 the
//!   last stage's blocks have dilations 1, 2, 2, as in the WS/BCN authors'
//!   DeepLabv3 code);
//! * multi-grid rates for the last stage's blocks, in one of two
//!   conventions ([`MultiGrid`]): the DeepLabv3 paper's, where block `b`
//!   has the stage's dilation times `rates[b]` (unit rates (1, 2, 4) at
//!   output stride 16 give 2, 4, 8), or mmsegmentation's, where the rates
//!   are the dilations themselves ((1, 2, 4) gives 1, 2, 4). In the
//!   paper's convention rates all 1 leave torchvision's layout.
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
    /// Multi-grid rates of the last stage's blocks, block `b` taking
    /// `multi_grid[b % len]`, read as [`ResNetConfig::multi_grid_mode`]
    /// says.
    pub multi_grid: Vec<usize>,
    /// How the multi-grid rates set the dilations.
    pub multi_grid_mode: MultiGrid,
}

/// The two conventions for multi-grid rates `r_b` in the last stage, whose
/// dilation (from the output stride) is `d`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MultiGrid {
    /// The DeepLabv3 paper's (Chen et al. 2017, section 3.2): block `b` has
    /// dilation `d * r_b`. With every `r_b = 1` nothing changes: the first
    /// block keeps the previous stage's dilation and the rest have `d`
    /// (torchvision's layout).
    #[default]
    Scaled,
    /// mmsegmentation's `ResNet(multi_grid=...)`: block `b` has dilation
    /// `r_b`, whatever the output stride.
    Absolute,
}

impl Default for ResNetConfig {
    fn default() -> Self {
        Self {
            depth: 101,
            width: 1.0,
            deep_stem: false,
            output_stride: 16,
            multi_grid: vec![1, 1, 1],
            multi_grid_mode: MultiGrid::Scaled,
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

    /// Which stages trade their stride for dilation at this output stride.
    fn dilated_stages(&self) -> Result<[bool; 4]> {
        Ok(match self.output_stride {
            8 => [false, false, true, true],
            16 => [false, false, false, true],
            32 => [false; 4],
            os => {
                return Err(Error::Config(format!(
                    "output stride {os}: expected 8, 16 or 32"
                )))
            }
        })
    }

    /// The dilation of every block's 3x3 convs, stage by stage: a dilated
    /// stage doubles the running dilation and its first block keeps the
    /// previous one; the last stage then applies the multi-grid rates as
    /// [`MultiGrid`] says.
    pub fn dilations(&self) -> Result<Vec<Vec<usize>>> {
        let (blocks, _) = self.layout()?;
        let dilated = self.dilated_stages()?;
        if self.multi_grid.is_empty() || self.multi_grid.contains(&0) {
            return Err(Error::Config(format!(
                "multi_grid {:?}: expected at least one rate, each 1 or more",
                self.multi_grid
            )));
        }
        let rate = |b: usize| self.multi_grid[b % self.multi_grid.len()];
        let unit = self.multi_grid.iter().all(|&r| r == 1);
        let mut dilation = 1;
        let mut plan = vec![];
        for (s, &n) in blocks.iter().enumerate() {
            let previous = dilation;
            if dilated[s] {
                dilation *= 2;
            }
            let stage = (0..n).map(|b| match (s, self.multi_grid_mode) {
                (3, MultiGrid::Absolute) => rate(b),
                (3, MultiGrid::Scaled) if !unit => dilation * rate(b),
                _ if b == 0 => previous,
                _ => dilation,
            });
            plan.push(stage.collect());
        }
        Ok(plan)
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
        let (_, bottleneck) = cfg.layout()?;
        let dilated = cfg.dilated_stages()?;
        let dilations = cfg.dilations()?;
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
        let mut cin = inplanes;
        let mut stages = vec![];
        for (s, stage_dilations) in dilations.iter().enumerate() {
            let planes = cfg.channels(64 << s);
            let stride = if s == 0 || dilated[s] { 1 } else { 2 };
            let mut stage = vec![];
            for (b, &d) in stage_dilations.iter().enumerate() {
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
