//! Training throughput and peak memory of R(2+1)D-18 (400 classes) on clips
//! of 2x3x8x112x112, for every norm variant the comparisons train
//! (`VARIANTS`), next to torchvision's `r2plus1d_18` in PyTorch in the same
//! run.
//!
//! `cargo bench -p wsbcn-video --bench r2plus1d`; the options are those of
//! the `r3d` bench.

mod common;

use wsbcn_train::bench::{bench_main, VARIANTS};
use wsbcn_video::video_model::Arch;

fn main() {
    bench_main(
        "R(2+1)D-18, 400 classes, clips 2x3x8x112x112, training (forward, backward, SGD step)",
        &VARIANTS,
        &[common::TORCH_SCRIPT, "r2plus1d_18"],
        "clips/s",
        |spec, steps, dev| common::child(Arch::R2plus1d, 18, [2, 8, 112], spec, steps, dev),
    );
}
