//! The video models behind one config section and one type: the basic-block
//! ResNets of torchvision (R3D, MC3, R(2+1)D; [`crate::video_resnet`]), the
//! bottleneck ResNets I3D and TSM ([`crate::bottleneck_resnet`]) and C3D
//! ([`crate::c3d`]). Every conv and norm comes from the layer factory.

use crate::bottleneck_resnet::BottleneckResNet;
use crate::c3d::C3d;
pub use crate::model_config::{Arch, VideoModelConfig};
use crate::video_resnet::VideoResNet;
use crate::{Error, Result};
use candle_core::Tensor;
use candle_nn::VarBuilder;
use wsbcn_nn::LayerFactory;

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
