//! Bottleneck ResNets on clips: I3D-ResNet-50 and TSM-ResNet-50/101.
//!
//! Both are torchvision's `resnet50` / `resnet101` with every conv made
//! 3D, under torchvision's parameter names (`conv1`, `bn1`,
//! `layer{1-4}.{i}.conv{1,2,3}`, `.bn{1,2,3}`, `.downsample.{0,1}`, `fc`):
//!
//! ```text
//! stem     conv1 (I3D 5x7x7, stride 2,2,2; TSM 1x7x7, stride 1,2,2) -> 64,
//!          bn1, relu, max pool 1x3x3 (I3D stride 2,2,2; TSM stride 1,2,2;
//!          padding 0,1,1, as mmaction2's pool1)
//! block    [shift] conv1 1x1x1 (I3D: 3x1x1 where inflated) -> planes, bn1, relu,
//!          conv2 1x3x3 (stride 1,s,s) -> planes, bn2, relu,
//!          conv3 1x1x1 -> 4 planes, bn3; + shortcut (downsample 1x1x1
//!          stride 1,s,s, norm); relu
//! layers   64/128/256/512 planes, 3-4-6-3 blocks (101: 3-4-23-3), stride 1/2/2/2;
//!          I3D max-pools time by 2 after layer1
//! head     global average pool over (T, H, W), fc
//! ```
//!
//! I3D follows mmaction2's `i3d_r50` (Carreira & Zisserman's inflation of
//! ResNet-50): blocks inflated to a 3x1x1 first conv in the pattern
//! (1,1,1), (1,0,1,0), (1,0,1,0,1,0), (0,1,0), temporal strides 2 in the
//! stem conv, the stem pool and after layer1. TSM keeps ResNet's 2D
//! kernels (1xkxk: each frame on its own), normalizes each frame on its
//! own (GN, LN, IN and BCN's group part take per-frame statistics,
//! `wsbcn_nn::Norm::per_frame`, as its official 2D backbone), and shifts 1/`shift_div` of the
//! channels one frame forward and as many back before each block's first
//! conv (residual shift, [`temporal_shift`]); averaging the per-frame
//! features before `fc` is TSM's average consensus. A width multiplier
//! scales every channel count. Input `(N, 3, T, H, W)`, logits `(N, classes)`.

use crate::conv_norm::conv_norm;
use crate::model_config::{Arch, VideoModelConfig};
use crate::temporal_shift::temporal_shift;
use crate::{Error, Result};
use candle_core::{Module, ModuleT, Tensor};
use candle_nn::{Linear, VarBuilder};
use wsbcn_nn::{global_avg_pool, max_pool, relu, ConvNorm, LayerFactory, Residual};

/// I3D-ResNet-50's inflated blocks per stage (1: a 3x1x1 first conv).
const I3D_INFLATE: [&[u8]; 4] = [&[1, 1, 1], &[1, 0, 1, 0], &[1, 0, 1, 0, 1, 0], &[0, 1, 0]];

/// A bottleneck block, with TSM's residual shift of its branch input.
#[derive(Debug)]
struct Bottleneck {
    block: Residual<3>,
    shift_div: Option<usize>,
}

impl Bottleneck {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(match self.shift_div {
            Some(d) => self.block.forward_split(&temporal_shift(x, d)?, x, train)?,
            None => self.block.forward_t(x, train)?,
        })
    }
}

/// I3D-ResNet-50 or TSM-ResNet-50/101 (see the module docs).
#[derive(Debug)]
pub struct BottleneckResNet {
    arch: Arch,
    stem: ConvNorm<3>,
    layers: Vec<Bottleneck>,
    /// The number of blocks up to the end of each stage (I3D pools time
    /// after the first).
    stage_ends: Vec<usize>,
    fc: Linear,
}

impl BottleneckResNet {
    /// Builds the model with every conv and norm from `f`.
    pub fn new(cfg: &VideoModelConfig, f: &LayerFactory, vb: VarBuilder) -> Result<Self> {
        let i3d = match cfg.arch {
            Arch::I3d => true,
            Arch::Tsm => false,
            other => {
                return Err(Error::Config(format!(
                    "{other:?} is not a bottleneck ResNet"
                )))
            }
        };
        let blocks = match (cfg.depth, i3d) {
            (50, _) => [3, 4, 6, 3],
            (101, false) => [3, 4, 23, 3],
            (d, _) => {
                return Err(Error::Config(format!(
                    "{:?} depth {d}: expected 50{}",
                    cfg.arch,
                    if i3d { "" } else { " or 101" }
                )))
            }
        };
        let c64 = cfg.channels(64);
        let (k1, s1) = if i3d {
            ([5, 7, 7], [2, 2, 2])
        } else {
            ([1, 7, 7], [1, 2, 2])
        };
        // TSM is a 2D network applied to N x T frames: its norms take each
        // frame's statistics. I3D, a 3D network, takes the clip's.
        let frames = |unit: ConvNorm<3>| if i3d { unit } else { unit.per_frame() };
        let stem = frames(conv_norm(f, 3, c64, k1, s1, vb.pp("conv1"), vb.pp("bn1"))?);
        let mut layers = vec![];
        let mut cin = c64;
        for (stage, &count) in blocks.iter().enumerate() {
            let planes = cfg.channels(64 << stage);
            let cout = 4 * planes;
            for i in 0..count {
                let vb = vb.pp(format!("layer{}.{i}", stage + 1));
                let s = if stage > 0 && i == 0 { 2 } else { 1 };
                let inflated = i3d && I3D_INFLATE[stage].get(i) == Some(&1);
                let k1 = if inflated { [3, 1, 1] } else { [1, 1, 1] };
                let pair = |cin, cout, kernel, stride, i: usize| {
                    let (c, n) = (format!("conv{i}"), format!("bn{i}"));
                    conv_norm(f, cin, cout, kernel, stride, vb.pp(c), vb.pp(n)).map(frames)
                };
                let convs = vec![
                    pair(cin, planes, k1, [1, 1, 1], 1)?,
                    pair(planes, planes, [1, 3, 3], [1, s, s], 2)?,
                    pair(planes, cout, [1, 1, 1], [1, 1, 1], 3)?,
                ];
                let downsample = if s != 1 || cin != cout {
                    Some(frames(conv_norm(
                        f,
                        cin,
                        cout,
                        [1, 1, 1],
                        [1, s, s],
                        vb.pp("downsample.0"),
                        vb.pp("downsample.1"),
                    )?))
                } else {
                    None
                };
                layers.push(Bottleneck {
                    block: Residual::new(convs, downsample)?,
                    shift_div: (!i3d).then_some(cfg.shift_div),
                });
                cin = cout;
            }
        }
        let fc = candle_nn::linear(cin, cfg.num_classes, vb.pp("fc"))?;
        Ok(Self {
            arch: cfg.arch,
            stem,
            layers,
            stage_ends: blocks
                .iter()
                .scan(0, |end, &n| {
                    *end += n;
                    Some(*end)
                })
                .collect(),
            fc,
        })
    }

    /// The features after each stage for clips `x: (N, 3, T, H, W)`: the
    /// stem with its pool, then layer1 (with I3D's time pool after it),
    /// layer2, layer3 and layer4, each `(N, C, T', H', W')`.
    pub fn stages(&self, x: &Tensor, train: bool) -> Result<Vec<Tensor>> {
        let i3d = self.arch == Arch::I3d;
        let y = relu(&self.stem.forward_t(x, train)?)?;
        // mmaction2's pool1: 1x3x3, stride (pool1_stride_t, 2, 2), padding
        // (0, 1, 1); it pools no frames together, I3D only strides them.
        let st = if i3d { 2 } else { 1 };
        let mut y = max_pool(&y, [1, 3, 3], [st, 2, 2], [0, 1, 1])?;
        let mut out = vec![y.clone()];
        for (i, block) in self.layers.iter().enumerate() {
            y = block.forward_t(&y, train)?;
            if i3d && i + 1 == self.stage_ends[0] && y.dim(2)? >= 2 {
                y = max_pool(&y, [2, 1, 1], [2, 1, 1], [0, 0, 0])?;
            }
            if self.stage_ends.contains(&(i + 1)) {
                out.push(y.clone());
            }
        }
        Ok(out)
    }

    /// Logits `(N, classes)` for clips `x: (N, 3, T, H, W)`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let stages = self.stages(x, train)?;
        let last = stages
            .last()
            .ok_or_else(|| Error::Config("no stages".into()))?;
        let pooled = global_avg_pool(last)?.flatten_from(1)?;
        Ok(self.fc.forward(&pooled)?)
    }
}
