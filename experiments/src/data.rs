//! The embedded data sets a comparison needs, built when missing: into a
//! temporary folder renamed into place when complete, so an interrupted
//! build is redone rather than half-read.

use crate::comparison::DataKind;
use crate::{Error, Result};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use wsbcn_data::fashion_mnist::DEBIAN_DIR;
use wsbcn_data::fashion_ssv2::{generate_ssv2, FashionSsv2Config};
use wsbcn_data::fashion_voc::{generate, ClassSet, FashionVocConfig};
use wsbcn_seg::voc::VocSplit;
use wsbcn_video::{build_cache, CacheOptions, FrameFormat, VideoSource};

/// The folder the shipped configs read `kind` from.
pub fn default_dir(kind: DataKind) -> PathBuf {
    match kind {
        DataKind::FashionVoc => PathBuf::from("data/fashion-voc"),
        DataKind::FashionVocCoarse32 => PathBuf::from("data/fashion-voc-coarse-32"),
        DataKind::FashionSsv2 => PathBuf::from("data/fashion-ssv2"),
        DataKind::FashionSsv2Cmp => PathBuf::from("data/fashion-ssv2-cmp"),
    }
}

/// The small Fashion-VOC of the comparisons
/// ([`DataKind::FashionVocCoarse32`]): one garment of 25-31 px per 32x32
/// image, labelled with the 5 coarse classes ([`ClassSet::Coarse`]), 3,000
/// training and 5,000 validation images. A quarter of the default's pixels
/// per sample keeps the batch-1 cells cheap on 2 cores, and the coarse
/// classes let them converge within the main command's budget.
///
/// Why 5,000 validation images: with 500, most of the variance of a cell
/// over seeds came from which images a model happened to get wrong, not
/// from the model.
/// The final checkpoints of 10 seeds per cell of the quick comparison,
/// evaluated on the first 500 and on all 5,000 images, had seed standard
/// deviations of 0.0099 and 0.0044 (BN, batch 16), 0.0127 and 0.0084 (GN),
/// 0.0073 and 0.0046 (GN+WS), 0.0117 and 0.0074 (BCN+WS) mIoU; BN at batch
/// 1, whose spread is its own, 0.0234 and 0.0246 (`experiments/RESULTS.md`,
/// 2026-11-30). Evaluation stays cheap, batched by
/// [`wsbcn_seg::task::EVAL_PIXELS`].
pub fn small_voc() -> FashionVocConfig {
    FashionVocConfig {
        size: 32,
        val: SMALL_VOC_VAL,
        garments: (1, 1),
        scale: (0.9, 1.1),
        classes: ClassSet::Coarse,
        ..FashionVocConfig::default()
    }
}

/// Validation images of [`small_voc`].
pub const SMALL_VOC_VAL: usize = 5000;

/// The Fashion-SSv2 of the comparisons ([`DataKind::FashionSsv2Cmp`]): the
/// default with 1,080 validation videos instead of 270, so that one model's
/// top-1 near 90% has a binomial standard error under 1 point, small
/// against the ±3 points a comparison aims to resolve; and with 8-12 frames per
/// video instead of 16-24, which halves the time to encode and cache them
/// (the comparisons sample 4 frames spread over the whole video, so they
/// see the same motion either way).
pub fn comparison_ssv2() -> FashionSsv2Config {
    FashionSsv2Config {
        val: 1080,
        frames: (8, 12),
        ..FashionSsv2Config::default()
    }
}

/// Builds `kind` with its default settings in [`default_dir`] unless it is
/// there; `say` reports what is being done.
pub fn ensure(kind: DataKind, say: &dyn Fn(&str)) -> Result<()> {
    let dir = default_dir(kind);
    let mnist = Path::new(DEBIAN_DIR);
    if !dir.exists() {
        let tmp = dir.with_file_name(format!(
            ".{}.tmp",
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("data")
        ));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| Error::file(&tmp, e))?;
        }
        say(&format!("building {} (first run only)", dir.display()));
        match kind {
            DataKind::FashionVoc => {
                generate(mnist, &tmp, &FashionVocConfig::default())?;
            }
            DataKind::FashionVocCoarse32 => {
                generate(mnist, &tmp, &small_voc())?;
            }
            DataKind::FashionSsv2 => {
                generate_ssv2(mnist, &tmp, &FashionSsv2Config::default())?;
            }
            DataKind::FashionSsv2Cmp => {
                generate_ssv2(mnist, &tmp, &comparison_ssv2())?;
            }
        }
        std::fs::rename(&tmp, &dir).map_err(|e| Error::file(&dir, e))?;
    }
    if kind == DataKind::FashionVocCoarse32 {
        check_val_count(&dir, SMALL_VOC_VAL)?;
    }
    if matches!(kind, DataKind::FashionSsv2 | DataKind::FashionSsv2Cmp) {
        for split in ["train", "validation"] {
            let cache = dir.join(format!("{split}_clips.h5"));
            if !cache.exists() {
                say(&format!("caching {} clips in {}", split, cache.display()));
                let list = VideoSource::ssv2_dir(&dir, split).read()?;
                // Raw frames: the comparisons train on exactly the decoded
                // pixels of these tiny clips.
                let opts = CacheOptions {
                    format: FrameFormat::Raw,
                    ..CacheOptions::new(64)
                };
                build_cache(&list, &cache, &opts, |_, _| ControlFlow::Continue(()))?;
            }
        }
    }
    Ok(())
}

/// Fails unless the Fashion-VOC under `dir` lists `want` validation images:
/// a folder built by an older version (500 then) would silently give other
/// numbers.
pub fn check_val_count(dir: &Path, want: usize) -> Result<()> {
    let list = dir.join("VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt");
    let have = VocSplit::open(
        &dir.join("VOCdevkit"),
        "val",
        small_voc().classes.names().len(),
    )?
    .len();
    if have != want {
        return Err(Error::file(
            &list,
            format!(
                "lists {have} validation images where this version builds {want}; delete {} to rebuild it",
                dir.display()
            ),
        ));
    }
    Ok(())
}
