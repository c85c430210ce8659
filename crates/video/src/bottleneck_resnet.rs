//! Bottleneck ResNets on clips: I3D-ResNet-50 and TSM-ResNet-50/101.
//!
//! Both are torchvision's `resnet50` / `resnet101` under torchvision's
//! parameter names (`conv1`, `bn1`, `layer{1-4}.{i}.conv{1,2,3}`,
//! `.bn{1,2,3}`, `.downsample.{0,1}`, `fc`). I3D makes every conv 3D and
//! runs on the clips, `(N, C, T, H, W)`; TSM keeps the 2D network and runs
//! it on the frames, `(N T, C, H, W)`, as the official code does. Below,
//! TSM's kernels are written `1xkxk` for the `kxk` 2D kernel:
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
//! stem conv, the stem pool and after layer1. TSM's convs see each frame
//! on its own, and so do its norms: GN, LN, IN and BCN's group part take
//! each frame's statistics, BN and BCN's batch part pool every frame of
//! the batch, as the official 2D backbone does. TSM shifts 1/`shift_div`
//! of the channels one frame forward and as many back before each block's
//! first conv (residual shift, [`temporal_shift`]); averaging the
//! per-frame features before `fc` is TSM's average consensus. A width
//! multiplier scales every channel count. Input `(N, 3, T, H, W)` (TSM
//! turns it into frames once), logits `(N, classes)`.

use crate::conv_norm::conv_norm;
use crate::model_config::{Arch, VideoModelConfig};
use crate::temporal_shift::temporal_shift;
use crate::{Error, Result};
use candle_core::{Module, ModuleT, Tensor};
use candle_nn::{Linear, VarBuilder};
use wsbcn_nn::{
    global_avg_pool, max_pool, relu, ConvGeometry, ConvNorm, ConvOp, LayerFactory, Residual,
};

/// I3D-ResNet-50's inflated blocks per stage (1: a 3x1x1 first conv).
const I3D_INFLATE: [&[u8]; 4] = [&[1, 1, 1], &[1, 0, 1, 0], &[1, 0, 1, 0, 1, 0], &[0, 1, 0]];

/// A kernel, stride or padding of `t` frames and `s` pixels: `[t, s, s]`
/// in 3D, `[s, s]` in 2D (TSM's, whose kernels span one frame, with time
/// stride 1 and padding 0: `t` is dropped).
fn extent<const D: usize>(t: usize, s: usize) -> [usize; D] {
    let mut a = [s; D];
    if D == 3 {
        a[0] = t;
    }
    a
}

/// The stem and the bottleneck blocks, with `D` spatial axes: I3D's 3D
/// network on clips or TSM's 2D network on frames.
#[derive(Debug)]
struct Body<const D: usize> {
    stem: ConvNorm<D>,
    blocks: Vec<Residual<D>>,
    /// The number of blocks up to the end of each stage (I3D pools time
    /// after the first).
    stage_ends: Vec<usize>,
    /// The channels of the last block's output.
    width: usize,
}

impl<const D: usize> Body<D>
where
    ConvGeometry<D>: ConvOp,
{
    fn new(
        cfg: &VideoModelConfig,
        counts: &[usize],
        f: &LayerFactory,
        vb: VarBuilder,
    ) -> Result<Self> {
        let i3d = D == 3;
        let c64 = cfg.channels(64);
        let (t1, st1) = if i3d { (5, 2) } else { (1, 1) };
        let stem = conv_norm(
            f,
            3,
            c64,
            extent(t1, 7),
            extent(st1, 2),
            vb.pp("conv1"),
            vb.pp("bn1"),
        )?;
        let mut blocks = vec![];
        let mut cin = c64;
        for (stage, &count) in counts.iter().enumerate() {
            let planes = cfg.channels(64 << stage);
            let cout = 4 * planes;
            for i in 0..count {
                let vb = vb.pp(format!("layer{}.{i}", stage + 1));
                let s = if stage > 0 && i == 0 { 2 } else { 1 };
                let inflated = i3d && I3D_INFLATE[stage].get(i) == Some(&1);
                let pair = |cin, cout, kernel, stride, i: usize| {
                    let (c, n) = (format!("conv{i}"), format!("bn{i}"));
                    conv_norm(f, cin, cout, kernel, stride, vb.pp(c), vb.pp(n))
                };
                let convs = vec![
                    pair(
                        cin,
                        planes,
                        extent(if inflated { 3 } else { 1 }, 1),
                        [1; D],
                        1,
                    )?,
                    pair(planes, planes, extent(1, 3), extent(1, s), 2)?,
                    pair(planes, cout, [1; D], [1; D], 3)?,
                ];
                let downsample = if s != 1 || cin != cout {
                    Some(conv_norm(
                        f,
                        cin,
                        cout,
                        [1; D],
                        extent(1, s),
                        vb.pp("downsample.0"),
                        vb.pp("downsample.1"),
                    )?)
                } else {
                    None
                };
                blocks.push(Residual::new(convs, downsample)?);
                cin = cout;
            }
        }
        let stage_ends = counts
            .iter()
            .scan(0, |end, &n| {
                *end += n;
                Some(*end)
            })
            .collect();
        Ok(Self {
            stem,
            blocks,
            stage_ends,
            width: cin,
        })
    }

    /// The features after the stem (with its pool) and after each stage,
    /// in the body's layout. TSM's
    /// blocks (`shift: Some((frames, shift_div))`) shift their branch
    /// input; I3D pools time by 2 after the first stage.
    fn stages(
        &self,
        x: &Tensor,
        shift: Option<(usize, usize)>,
        train: bool,
    ) -> Result<Vec<Tensor>> {
        let i3d = D == 3;
        let y = relu(&self.stem.forward_t(x, train)?)?;
        // mmaction2's pool1: 1x3x3, stride (pool1_stride_t, 2, 2), padding
        // (0, 1, 1); it pools no frames together, I3D only strides them.
        let st = if i3d { 2 } else { 1 };
        let mut y = max_pool::<D>(&y, extent(1, 3), extent(st, 2), extent(0, 1))?;
        let mut out = vec![y.clone()];
        for (i, block) in self.blocks.iter().enumerate() {
            y = match shift {
                Some((frames, div)) => {
                    block.forward_split(&temporal_shift(&y, frames, div)?, &y, train)?
                }
                None => block.forward_t(&y, train)?,
            };
            if i3d && i + 1 == self.stage_ends[0] && y.dim(2)? >= 2 {
                y = max_pool::<D>(&y, extent(2, 1), extent(2, 1), [0; D])?;
            }
            if self.stage_ends.contains(&(i + 1)) {
                out.push(y.clone());
            }
        }
        Ok(out)
    }
}

/// The network in its layout.
#[derive(Debug)]
enum Layout {
    /// I3D: 3D convs on clips `(N, C, T, H, W)`.
    Clips(Body<3>),
    /// TSM: 2D convs on frames `(N T, C, H, W)`, shifted by `shift_div`.
    Frames { body: Body<2>, shift_div: usize },
}

/// I3D-ResNet-50 or TSM-ResNet-50/101 (see the module docs).
#[derive(Debug)]
pub struct BottleneckResNet {
    layout: Layout,
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
        let counts = match (cfg.depth, i3d) {
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
        let (width, layout) = if i3d {
            let body = Body::new(cfg, &counts, f, vb.clone())?;
            (body.width, Layout::Clips(body))
        } else {
            let body = Body::new(cfg, &counts, f, vb.clone())?;
            let shift_div = cfg.shift_div;
            (body.width, Layout::Frames { body, shift_div })
        };
        let fc = candle_nn::linear(width, cfg.num_classes, vb.pp("fc"))?;
        Ok(Self { layout, fc })
    }

    /// The features after each stage in the network's layout: I3D's clips
    /// `(N, C, T', H', W')`, TSM's frames `(N T, C, H', W')`.
    fn layout_stages(&self, x: &Tensor, train: bool) -> Result<Vec<Tensor>> {
        match &self.layout {
            Layout::Clips(body) => body.stages(x, None, train),
            Layout::Frames { body, shift_div } => {
                // The clips' frames, (N, C, T, H, W) -> (N T, C, H, W).
                let (n, c, t, h, w) = x.dims5()?;
                let frames = x.permute((0, 2, 1, 3, 4))?.reshape((n * t, c, h, w))?;
                body.stages(&frames, Some((t, *shift_div)), train)
            }
        }
    }

    /// The features after each stage for clips `x: (N, 3, T, H, W)`: the
    /// stem with its pool, then layer1 (with I3D's time pool after it),
    /// layer2, layer3 and layer4, each `(N, C, T', H', W')` (TSM's frames
    /// turned back into clips).
    pub fn stages(&self, x: &Tensor, train: bool) -> Result<Vec<Tensor>> {
        let stages = self.layout_stages(x, train)?;
        if let Layout::Clips(_) = self.layout {
            return Ok(stages);
        }
        let (n, t) = (x.dim(0)?, x.dim(2)?);
        stages
            .iter()
            .map(|y| {
                let (_, c, h, w) = y.dims4()?;
                Ok(y.reshape((n, t, c, h, w))?.permute((0, 2, 1, 3, 4))?)
            })
            .collect()
    }

    /// Logits `(N, classes)` for clips `x: (N, 3, T, H, W)`: `fc` of the
    /// features averaged over `(T, H, W)`; for TSM each frame's average,
    /// then the clip's (TSM's consensus).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let stages = self.layout_stages(x, train)?;
        let n = x.dim(0)?;
        let pooled = global_avg_pool(last(&stages)?)?;
        let pooled = match self.layout {
            Layout::Clips(_) => pooled.reshape((n, ()))?,
            Layout::Frames { .. } => pooled.reshape((n, x.dim(2)?, ()))?.mean(1)?,
        };
        Ok(self.fc.forward(&pooled)?)
    }
}

/// The last stage's features.
fn last(stages: &[Tensor]) -> Result<&Tensor> {
    stages
        .last()
        .ok_or_else(|| Error::Config("no stages".into()))
}
