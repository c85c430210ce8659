//! Input pipeline throughput of segmentation training on VOC-size JPEGs:
//! reading a 500x375 JPEG and its PNG label, then the official DeepLabV3
//! training augmentation (random scale 0.5-2, pad and crop 513, flip,
//! normalization) with this crate's `VocSplit::read` and `train_sample`,
//! next to Pillow and torchvision doing the same on the same files
//! (`torch_pipeline.py`), one thread each, in one run.
//!
//! `cargo bench -p wsbcn-seg --bench pipeline` writes 48 Fashion-VOC images
//! (garments 168-336 px on a 500x500 canvas, cut to 500x375, JPEG quality
//! 95) from Debian's Fashion-MNIST files into `target/bench-voc` and prints
//! a markdown table. `WSBCN_TORCH_PYTHON=/path/to/python` (with torch,
//! torchvision and Pillow) adds PyTorch's row; `WSBCN_BENCH_ROUNDS` sets
//! the timed passes over all images (default 5, after one warm-up pass).

use image::codecs::jpeg::JpegEncoder;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::Path;
use wsbcn_data::fashion_mnist::DEBIAN_DIR;
use wsbcn_data::fashion_voc::{generate, ClassSet, FashionVocConfig};
use wsbcn_seg::augment::{train_sample, AugmentConfig};
use wsbcn_seg::palette::{read_label, write_label, LabelMap};
use wsbcn_seg::voc::VocSplit;
use wsbcn_train::bench::{env_usize, median_secs, python_rate};

const IMAGES: usize = 48;
const CLASSES: usize = 11;

/// Fashion-VOC at 500x500 under `dir/square`, each image and label cut to
/// its top 500x375 under `dir/VOCdevkit`; returns that `VOCdevkit`.
fn voc_size_data(dir: &Path) -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    let out = dir.join("VOCdevkit/VOC2012");
    let list = out.join("ImageSets/Segmentation/train.txt");
    if list.exists() {
        return Ok(dir.join("VOCdevkit"));
    }
    let cfg = FashionVocConfig {
        size: 500,
        train: IMAGES,
        val: 1,
        garments: (2, 4),
        scale: (6.0, 12.0),
        classes: ClassSet::Fine,
        ..FashionVocConfig::default()
    };
    let square = generate(Path::new(DEBIAN_DIR), &dir.join("square"), &cfg)?;
    let src = VocSplit::open(&square, "train", CLASSES)?;
    for d in ["JPEGImages", "SegmentationClass", "ImageSets/Segmentation"] {
        std::fs::create_dir_all(out.join(d))?;
    }
    for i in 0..src.len() {
        let item = src.read(i)?;
        let image = image::imageops::crop_imm(&item.image, 0, 0, 500, 375).to_image();
        let file = std::fs::File::create(out.join(format!("JPEGImages/{}.jpg", item.id)))?;
        JpegEncoder::new_with_quality(std::io::BufWriter::new(file), 95).encode_image(&image)?;
        let label = read_label(&src.label_path(i))?;
        let cut = LabelMap {
            width: 500,
            height: 375,
            data: label.data[..500 * 375].to_vec(),
        };
        write_label(
            &out.join(format!("SegmentationClass/{}.png", item.id)),
            &cut,
        )?;
    }
    std::fs::write(&list, src.ids().join("\n") + "\n")?;
    Ok(dir.join("VOCdevkit"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds = env_usize("WSBCN_BENCH_ROUNDS", 5);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-voc");
    let root = voc_size_data(&dir)?;
    let split = VocSplit::open(&root, "train", CLASSES)?;
    let cfg = AugmentConfig::default();
    let mut rng = StdRng::seed_from_u64(0);
    let secs = median_secs(rounds, || -> wsbcn_seg::Result<()> {
        for i in 0..split.len() {
            let item = split.read(i)?;
            std::hint::black_box(&train_sample(&item.image, &item.label, &cfg, &mut rng));
        }
        Ok(())
    })?;
    let ours = split.len() as f64 / secs;
    let torch = std::env::var("WSBCN_TORCH_PYTHON").ok().and_then(|py| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/torch_pipeline.py");
        python_rate(
            &py,
            &script,
            &[root.join("VOC2012").into(), rounds.to_string().into()],
        )
    });

    println!(
        "\n{} Fashion-VOC JPEGs of 500x375 with PNG labels, read and augmented for training (scale 0.5-2, crop 513, flip, normalize), 1 thread, median of {rounds} passes:\n",
        split.len()
    );
    println!("| pipeline | samples/s per core | vs PyTorch |\n|---|---:|---:|");
    let vs = |rate: f64| torch.map_or("-".to_string(), |t| format!("{:.2}x", rate / t));
    println!(
        "| wsbcn (image crate's JPEG and PNG decoders, fast_image_resize, train_sample) | {ours:.1} | {} |",
        vs(ours)
    );
    if let Some(rate) = torch {
        println!("| PyTorch (Pillow, torchvision's v2 transforms) | {rate:.1} | 1.00x |");
    }
    Ok(())
}
