//! Helpers of the cross-crate tests in this folder: stand-in Fashion-MNIST
//! files and tiny generated data sets. What every crate's tests share is in
//! `wsbcn-testkit`.

use std::path::{Path, PathBuf};

/// Writes an IDX file (big-endian dims, unsigned bytes).
pub fn write_idx(path: &Path, dims: &[u32], data: &[u8]) {
    let mut bytes = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

/// Stand-in Fashion-MNIST IDX files in the folder `mnist`: garment `i` has
/// class `i % 10` and is the rectangle x 6..22, y 4..24 at intensity 200,
/// `hollow` ones black inside x 9..19, y 7..21.
pub fn stand_in_mnist(mnist: &Path, hollow: bool) -> PathBuf {
    std::fs::create_dir_all(mnist).unwrap();
    for (stem, n) in [("train", 20usize), ("t10k", 10)] {
        let mut pixels = vec![0u8; n * 784];
        for i in 0..n {
            for y in 4..24 {
                for x in 6..22 {
                    let inside = (9..19).contains(&x) && (7..21).contains(&y);
                    pixels[i * 784 + y * 28 + x] = if hollow && inside { 0 } else { 200 };
                }
            }
        }
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        write_idx(
            &mnist.join(format!("{stem}-images-idx3-ubyte")),
            &[n as u32, 28, 28],
            &pixels,
        );
        write_idx(
            &mnist.join(format!("{stem}-labels-idx1-ubyte")),
            &[n as u32],
            &labels,
        );
    }
    mnist.to_path_buf()
}

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
