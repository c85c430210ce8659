//! The `[model]` section of a video config: which architecture, its depth,
//! width and classes.

use serde::{Deserialize, Serialize};

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
    /// Weights to start from (`[model.pretrained]`: a PyTorch checkpoint
    /// or safetensors file, its name map and the prefixes to skip; see
    /// `wsbcn_train::pretrained`): torchvision's video models as they are,
    /// or an ImageNet ResNet for TSM (as it is) and I3D
    /// (inflated over time).
    pub pretrained: Option<wsbcn_train::PretrainedConfig>,
}

impl Default for VideoModelConfig {
    fn default() -> Self {
        Self {
            arch: Arch::R2plus1d,
            depth: 18,
            width: 1.0,
            num_classes: 400,
            shift_div: 8,
            pretrained: None,
        }
    }
}

impl VideoModelConfig {
    /// Channels of `base` scaled by the width, at least 1.
    pub fn channels(&self, base: usize) -> usize {
        ((base as f64 * self.width).round() as usize).max(1)
    }
}
