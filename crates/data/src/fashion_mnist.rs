//! Fashion-MNIST in its IDX files (Debian's `dataset-fashion-mnist` installs
//! them gzipped under `/usr/share/datasets/fashion-mnist`): the raw material
//! of the suite's embedded segmentation and video data sets.
//!
//! IDX: a big-endian header `0x00 0x00 type ndim`, `ndim` u32 extents, then
//! the u8 data. Images are `(n, 28, 28)`, labels `(n,)` in `0..10`. Read by
//! hand: the format is a dozen lines, no crate needed.

use crate::{Error, Result};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where Debian's package puts the files.
pub const DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The ten garment classes, in label order.
pub const CLASSES: [&str; 10] = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
];

/// One split: `n` images of 28x28 bytes and their labels.
#[derive(Clone, Debug)]
pub struct FashionMnist {
    /// Row-major 28x28 images, one after another.
    pub pixels: Vec<u8>,
    /// Class of each image.
    pub labels: Vec<u8>,
}

/// The two splits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// 60,000 images.
    Train,
    /// 10,000 images.
    Test,
}

impl FashionMnist {
    /// Side of an image.
    pub const SIDE: usize = 28;

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image `i` as 784 bytes.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * 784..(i + 1) * 784]
    }

    /// Reads a split from `dir` (files `train-*` / `t10k-*`, gzipped or not).
    pub fn load(dir: &Path, split: Split) -> Result<Self> {
        let stem = match split {
            Split::Train => "train",
            Split::Test => "t10k",
        };
        let (images, dims) = read_idx(&find(dir, &format!("{stem}-images-idx3-ubyte"))?)?;
        let (labels, ldims) = read_idx(&find(dir, &format!("{stem}-labels-idx1-ubyte"))?)?;
        let n = ldims.first().copied().unwrap_or(0);
        if dims != [n, 28, 28] {
            return Err(Error::data(
                dir,
                format!("images {dims:?} do not match {n} labels of 28x28"),
            ));
        }
        if let Some(bad) = labels.iter().find(|&&l| l > 9) {
            return Err(Error::data(dir, format!("label {bad} outside 0..10")));
        }
        Ok(Self {
            pixels: images,
            labels,
        })
    }
}

fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    for candidate in [dir.join(format!("{name}.gz")), dir.join(name)] {
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    Err(Error::data(
        dir,
        format!("no {name}[.gz]; install Debian's dataset-fashion-mnist or point to the IDX files"),
    ))
}

/// Reads an IDX file of u8 data: `(data, extents)`.
pub fn read_idx(path: &Path) -> Result<(Vec<u8>, Vec<usize>)> {
    let raw = std::fs::read(path).map_err(|e| Error::data(path, e))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = vec![];
        GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| Error::data(path, e))?;
        out
    } else {
        raw
    };
    let bad = |msg: &str| Error::data(path, msg);
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad("not an IDX file (bad magic)"));
    }
    if bytes[2] != 0x08 {
        return Err(bad("IDX data type is not unsigned bytes"));
    }
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(bad("truncated header"));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap_or([0; 4])) as usize
        })
        .collect();
    let count: usize = dims.iter().product();
    if bytes.len() != header + count {
        return Err(bad(&format!(
            "{} data bytes for extents {dims:?} ({count} expected)",
            bytes.len() - header
        )));
    }
    Ok((bytes[header..].to_vec(), dims))
}
