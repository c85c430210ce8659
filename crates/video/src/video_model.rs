//! The video models behind one config section and one type: the basic-block
//! ResNets of torchvision (R3D, MC3, R(2+1)D; [`crate::video_resnet`]), the
//! bottleneck ResNets I3D and TSM ([`crate::bottleneck_resnet`]) and C3D
//! ([`crate::c3d`]). Every conv and norm comes from the layer factory.

use crate::bottleneck_resnet::BottleneckResNet;
use crate::c3d::C3d;
use crate::video_resnet::VideoResNet;
use crate::{Error, Result};
use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use wsbcn_nn::LayerFactory;

/// Which video model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// 3x3x3 convolutions throughout (`r3d_18`), depth 18 or 34.
    R3d,
    /// 3x3x3 in layer1, 1x3x3 after (`mc3_18`), depth 18 or 34.
    Mc3,
    /// Every 3x3x3 factored into 1x3x3 then 3x1x1 (`r2plus1d_18`), depth 18 or 34.
    R2plus1d,
    /// ResNet-50 inflated to 3D as in mmaction2's `i3d_r50`, depth 50.
    I3d,
    /// ResNet-50/101 with temporal shifts (TSM), depth 50 or 101.
    Tsm,
    /// C3D, small (depth ignored).
    C3d,
}

/// The model section of a video config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VideoModelConfig {
    /// The architecture.
    pub arch: Arch,
    /// ResNet depth (see [`Arch`]).
    pub depth: usize,
    /// Multiplier on every channel count (1.0: the published widths).
    pub width: f64,
    /// Classes of the final linear layer.
    pub num_classes: usize,
    /// TSM: 1/`shift_div` of the channels shift each way (8 in the paper).
    pub shift_div: usize,
}

impl Default for VideoModelConfig {
    fn default() -> Self {
        Self {
            arch: Arch::R2plus1d,
            depth: 18,
            width: 1.0,
            num_classes: 400,
            shift_div: 8,
        }
    }
}

impl VideoModelConfig {
    /// Channels of `base` scaled by the width, at least 1.
    pub fn channels(&self, base: usize) -> usize {
        ((base as f64 * self.width).round() as usize).max(1)
    }
}

/// A video model (see the module docs).
#[derive(Debug)]
pub enum VideoModel {
    /// R3D, MC3 or R(2+1)D.
    ResNet(Box<VideoResNet>),
    /// I3D or TSM.
    Bottleneck(Box<BottleneckResNet>),
    /// C3D.
    C3d(Box<C3d>),
}

impl VideoModel {
    /// Builds the model of `cfg` with every conv and norm from `f`.
    pub fn new(cfg: &VideoModelConfig, f: &LayerFactory, vb: VarBuilder) -> Result<Self> {
        Ok(match cfg.arch {
            Arch::R3d | Arch::Mc3 | Arch::R2plus1d => {
                Self::ResNet(Box::new(VideoResNet::new(cfg, f, vb)?))
            }
            Arch::I3d | Arch::Tsm => Self::Bottleneck(Box::new(BottleneckResNet::new(cfg, f, vb)?)),
            Arch::C3d => Self::C3d(Box::new(C3d::new(cfg, f, vb)?)),
        })
    }

    /// Logits `(N, classes)` for clips `x: (N, 3, T, H, W)`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if x.rank() != 5 || x.dim(1)? != 3 {
            return Err(Error::Config(format!(
                "video model: expected clips (N, 3, T, H, W), got {:?}",
                x.dims()
            )));
        }
        match self {
            Self::ResNet(m) => m.forward_t(x, train),
            Self::Bottleneck(m) => m.forward_t(x, train),
            Self::C3d(m) => m.forward_t(x, train),
        }
    }
}
