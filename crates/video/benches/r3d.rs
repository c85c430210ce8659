//! Training throughput and peak memory of R3D-18 (400 classes) on clips of
//! 2x3x8x112x112, for every norm variant the comparisons train
//! (`VARIANTS`), next to torchvision's `r3d_18` in PyTorch in the same run.
//!
//! `cargo bench -p wsbcn-video --bench r3d` prints a markdown table; each
//! variant runs in its own process (peak memory is its own).
//! `WSBCN_TORCH_PYTHON=/path/to/python` (with torch and torchvision) adds
//! PyTorch's columns; `WSBCN_BENCH_STEPS` sets the timed steps (default 3,
//! after one warm-up step).

mod common;

use wsbcn_train::bench::{bench_main, VARIANTS};
use wsbcn_video::video_model::Arch;

fn main() {
    bench_main(
        "R3D-18, 400 classes, clips 2x3x8x112x112, training (forward, backward, SGD step)",
        &VARIANTS,
        &[common::TORCH_SCRIPT, "r3d_18"],
        "clips/s",
        |spec, steps, dev| common::child(Arch::R3d, 18, [2, 8, 112], spec, steps, dev),
    );
}
