//! Helpers of the cross-crate tests in this folder: stand-in Fashion-MNIST
//! files and tiny generated data sets. What every crate's tests share is in
//! `wsbcn-testkit`.

use std::path::{Path, PathBuf};
use wsbcn_testkit::stand_in_mnist;

/// A tiny Fashion-SSv2 tree in `dir/ssv2` (9 training and 9 validation
/// videos of 6-9 frames at 40x40, from [`stand_in_mnist`] garments);
/// returns its folder.
pub fn tiny_fashion_ssv2(dir: &Path) -> PathBuf {
    let mnist = stand_in_mnist(&dir.join("mnist"), false);
    let cfg = wsbcn_data::fashion_ssv2::FashionSsv2Config {
        size: 40,
        frames: (6, 9),
        train: 9,
        val: 9,
        scale: (0.7, 0.75),
        ..Default::default()
    };
    let root = dir.join("ssv2");
    wsbcn_data::fashion_ssv2::generate_ssv2(&mnist, &root, &cfg).unwrap();
    root
}

/// A tiny Fashion-VOC tree in `dir/voc` (8 training and 4 validation
/// images of 32x32); returns its `VOCdevkit/VOC2012` folder.
pub fn tiny_fashion_voc(dir: &Path) -> PathBuf {
    let mnist = stand_in_mnist(&dir.join("mnist-voc"), false);
    let cfg = wsbcn_data::fashion_voc::FashionVocConfig {
        size: 32,
        train: 8,
        val: 4,
        garments: (1, 2),
        scale: (1.0, 1.1),
        max_overlap: 1.0,
        classes: wsbcn_data::fashion_voc::ClassSet::Fine,
        seed: 0,
    };
    wsbcn_data::fashion_voc::generate(&mnist, &dir.join("voc"), &cfg).unwrap()
}

/// The `[model]`, `[norm]` and `[data]` sections of a tiny R3D config
/// (eighth width, 9 classes, GN+WS with 4 groups, crops of 24) on the
/// Fashion-SSv2 tree `root` of [`tiny_fashion_ssv2`], sampling clips with
/// `sampler` (an inline TOML table).
pub fn tiny_video_sections(root: &Path, sampler: &str) -> String {
    let r = root.display();
    let split = |name: &str| {
        format!(
            r#"{{ layout = "ssv2", videos = "{r}/videos", labels = "{r}/labels.json", split = "{r}/{name}.json" }}"#
        )
    };
    format!(
        "[model]\narch = \"r3d\"\nwidth = 0.125\nnum_classes = 9\n\
         [norm]\nspec = \"gn+ws\"\ngroups = 4\n\
         [data]\ntrain = {}\nval = {}\nshort_side = 32\nsampler = {sampler}\n\
         [data.augment]\ncrop = 24\n",
        split("train"),
        split("validation"),
    )
}
