//! Training throughput and peak memory of TSM-ResNet-50 (400 classes, 8
//! segments at 224x224, one clip per step), for every norm variant the
//! comparisons train (`VARIANTS`), next to the same network in PyTorch
//! (torchvision's `resnet50` with TSM's residual shift, `torch_video.py`)
//! in the same run.
//!
//! `cargo bench -p wsbcn-video --bench tsm`; the options are those of the
//! `r3d` bench.

mod common;

use wsbcn_train::bench::{bench_main, VARIANTS};
use wsbcn_video::video_model::Arch;

fn main() {
    bench_main(
        "TSM-R50, 400 classes, clips 1x3x8x224x224, training (forward, backward, SGD step)",
        &VARIANTS,
        &[common::TORCH_SCRIPT, "tsm_r50"],
        "clips/s",
        |spec, steps, dev| common::child(Arch::Tsm, 50, [1, 8, 224], spec, steps, dev),
    );
}
