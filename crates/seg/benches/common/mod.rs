//! What the segmentation benchmarks share.

use wsbcn_seg::deeplab::DeepLabConfig;
use wsbcn_seg::resnet::ResNetConfig;

/// DeepLabV3-ResNet-50 at output stride 16 (ASPP rates 12/24/36, 21
/// classes, torchvision's head): the benchmarks' model.
pub fn r50_os16() -> DeepLabConfig {
    DeepLabConfig {
        backbone: ResNetConfig {
            depth: 50,
            output_stride: 16,
            ..ResNetConfig::default()
        },
        aspp_rates: [12, 24, 36],
        ..DeepLabConfig::default()
    }
}
