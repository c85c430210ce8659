//! The embedded data sets a comparison needs, built when missing: into a
//! temporary folder renamed into place when complete, so an interrupted
//! build is redone rather than half-read.

use crate::comparison::DataKind;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use wsbcn_seg::fashion_voc::{generate, FashionVocConfig};
use wsbcn_train::fashion_mnist::DEBIAN_DIR;
use wsbcn_video::fashion_ssv2::{generate_ssv2, FashionSsv2Config};
use wsbcn_video::{build_cache, VideoSource};

/// The folder the shipped configs read `kind` from.
pub fn default_dir(kind: DataKind) -> PathBuf {
    match kind {
        DataKind::FashionVoc => PathBuf::from("data/fashion-voc"),
        DataKind::FashionVoc32 => PathBuf::from("data/fashion-voc-32"),
        DataKind::FashionSsv2 => PathBuf::from("data/fashion-ssv2"),
    }
}

/// The small Fashion-VOC of the comparisons ([`DataKind::FashionVoc32`]):
/// one garment of 25-31 px per 32x32 image, 3,000 training and 500
/// validation images: a quarter of the default's pixels per sample, so
/// that the comparisons' batch-1 cells are cheap on 2 cores.
pub fn small_voc() -> FashionVocConfig {
    FashionVocConfig {
        size: 32,
        val: 500,
        garments: (1, 1),
        scale: (0.9, 1.1),
        ..FashionVocConfig::default()
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
            DataKind::FashionVoc32 => {
                generate(mnist, &tmp, &small_voc())?;
            }
            DataKind::FashionSsv2 => {
                generate_ssv2(mnist, &tmp, &FashionSsv2Config::default())?;
            }
        }
        std::fs::rename(&tmp, &dir).map_err(|e| Error::file(&dir, e))?;
    }
    if kind == DataKind::FashionSsv2 {
        for split in ["train", "validation"] {
            let cache = dir.join(format!("{split}_clips.h5"));
            if !cache.exists() {
                say(&format!("caching {} clips in {}", split, cache.display()));
                let list = VideoSource::ssv2_dir(&dir, split).read()?;
                build_cache(&list, &cache, 64, false, |_, _| {})?;
            }
        }
    }
    Ok(())
}
