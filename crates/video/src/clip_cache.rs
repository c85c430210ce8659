//! A decoded-clip cache in one HDF5 file: every video of a list decoded
//! once, resized to a chosen short side, so that training reads frames
//! instead of decoding them.
//!
//! ```text
//! /                 attributes: classes (JSON list), short_side
//! /labels           (V,) u32          class index of each video
//! /sources          (V,) string       the source video file of each entry
//! /videos/<v:06>    (T, H, W, 3) u8   RGB frames, one chunk per frame, deflate level 1
//! ```
//!
//! Videos are decoded in parallel and written in list order; the file is
//! written under a temporary name and renamed when complete, so an
//! interrupted build leaves no half-written cache. With `skip_bad`, a video
//! that fails to decode is left out and reported (its file and error);
//! without it, the first such video is the error.

use crate::decode::{decode_all, Frames, Resize};
use crate::video_list::VideoList;
use crate::{Error, Result};
use hdf5::types::VarLenUnicode;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// What [`build_cache`] wrote and left out.
#[derive(Clone, Debug, Default)]
pub struct CacheReport {
    /// Videos written.
    pub written: usize,
    /// Frames written in all.
    pub frames: usize,
    /// Videos left out, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Videos decoded in parallel before being written.
const BATCH: usize = 32;

/// Decodes every video of `list` at `short_side` into the cache `out`;
/// `progress(done, total)` is called after each batch.
pub fn build_cache(
    list: &VideoList,
    out: &Path,
    short_side: u32,
    skip_bad: bool,
    mut progress: impl FnMut(usize, usize),
) -> Result<CacheReport> {
    let err = |e: hdf5::Error| Error::data(out, e);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::data(dir, e))?;
    }
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("clips.h5");
    let tmp = out.with_file_name(format!(".{name}.tmp"));
    let mut report = CacheReport::default();
    let mut labels: Vec<u32> = Vec::new();
    let mut sources: Vec<VarLenUnicode> = Vec::new();
    {
        let file = wsbcn_train::h5_file::create(&tmp).map_err(err)?;
        let videos = file.create_group("videos").map_err(err)?;
        for (b, batch) in list.records.chunks(BATCH).enumerate() {
            let decoded: Vec<Result<Frames>> = batch
                .par_iter()
                .map(|r| decode_all(&r.path, Resize::ShortSide(short_side)))
                .collect();
            for (record, frames) in batch.iter().zip(decoded) {
                let frames = match frames {
                    Ok(f) => f,
                    Err(e) if skip_bad => {
                        report.skipped.push((record.path.clone(), e.to_string()));
                        continue;
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(e);
                    }
                };
                let shape = (frames.count, frames.height, frames.width, 3);
                let view = ndarray::ArrayView4::from_shape(shape, &frames.data)
                    .map_err(|e| Error::data(&record.path, e))?;
                videos
                    .new_dataset_builder()
                    .chunk((1, frames.height, frames.width, 3))
                    .deflate(1)
                    .with_data(&view)
                    .create(format!("{:06}", labels.len()).as_str())
                    .map_err(err)?;
                labels.push(record.label as u32);
                sources.push(unicode(&record.path.display().to_string(), out)?);
                report.written += 1;
                report.frames += frames.count;
            }
            progress((b * BATCH + batch.len()).min(list.len()), list.len());
        }
        file.new_dataset_builder()
            .with_data(labels.as_slice())
            .create("labels")
            .map_err(err)?;
        file.new_dataset_builder()
            .with_data(sources.as_slice())
            .create("sources")
            .map_err(err)?;
        let classes = serde_json::to_string(&list.classes).map_err(|e| Error::data(out, e))?;
        let classes = unicode(&classes, out)?;
        file.new_attr::<VarLenUnicode>()
            .create("classes")
            .and_then(|a| a.write_scalar(&classes))
            .map_err(err)?;
        file.new_attr::<u32>()
            .create("short_side")
            .and_then(|a| a.write_scalar(&short_side))
            .map_err(err)?;
        file.close().map_err(err)?;
    }
    std::fs::rename(&tmp, out).map_err(|e| Error::data(out, e))?;
    Ok(report)
}

fn unicode(s: &str, file: &Path) -> Result<VarLenUnicode> {
    s.parse()
        .map_err(|e| Error::data(file, format!("cannot store `{s}`: {e}")))
}

/// An open clip cache.
#[derive(Debug)]
pub struct ClipCache {
    path: PathBuf,
    file: hdf5::File,
    classes: Vec<String>,
    labels: Vec<u32>,
    sources: Vec<PathBuf>,
    short_side: u32,
}

impl ClipCache {
    /// Opens a cache written by [`build_cache`].
    pub fn open(path: &Path) -> Result<Self> {
        let err = |e: hdf5::Error| Error::data(path, format!("not a clip cache: {e}"));
        let file = wsbcn_train::h5_file::open(path).map_err(err)?;
        let classes_json: VarLenUnicode = file
            .attr("classes")
            .and_then(|a| a.read_scalar())
            .map_err(err)?;
        let classes: Vec<String> = serde_json::from_str(classes_json.as_str())
            .map_err(|e| Error::data(path, format!("classes attribute: {e}")))?;
        let labels = file
            .dataset("labels")
            .and_then(|d| d.read_raw::<u32>())
            .map_err(err)?;
        let sources = file
            .dataset("sources")
            .and_then(|d| d.read_raw::<VarLenUnicode>())
            .map_err(err)?
            .iter()
            .map(|s| PathBuf::from(s.as_str()))
            .collect();
        let short_side = file
            .attr("short_side")
            .and_then(|a| a.read_scalar())
            .map_err(err)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            classes,
            labels,
            sources,
            short_side,
        })
    }

    /// Number of videos.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the cache holds no video.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Class names by index.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Class index of video `v`.
    pub fn label(&self, v: usize) -> usize {
        self.labels[v] as usize
    }

    /// The source file of video `v`.
    pub fn source(&self, v: usize) -> &Path {
        &self.sources[v]
    }

    /// The short side the frames were resized to.
    pub fn short_side(&self) -> u32 {
        self.short_side
    }

    fn video(&self, v: usize) -> Result<hdf5::Dataset> {
        self.file
            .dataset(&format!("videos/{v:06}"))
            .map_err(|e| Error::data(&self.path, format!("video {v}: {e}")))
    }

    /// `(frames, height, width)` of video `v`.
    pub fn dims(&self, v: usize) -> Result<(usize, usize, usize)> {
        match self.video(v)?.shape()[..] {
            [t, h, w, 3] => Ok((t, h, w)),
            ref s => Err(Error::data(
                &self.path,
                format!("video {v} has shape {s:?}, not (T, H, W, 3)"),
            )),
        }
    }

    /// The frames of video `v` at `indices` (any order, repeats allowed).
    pub fn frames(&self, v: usize, indices: &[usize]) -> Result<Frames> {
        let ds = self.video(v)?;
        let (t, height, width) = self.dims(v)?;
        let mut data = Vec::with_capacity(indices.len() * height * width * 3);
        for &i in indices {
            if i >= t {
                return Err(Error::data(
                    &self.path,
                    format!("video {v}: frame {i} requested, it has {t}"),
                ));
            }
            let frame: ndarray::Array4<u8> = ds
                .read_slice((i..i + 1, .., .., ..))
                .map_err(|e| Error::data(&self.path, format!("video {v} frame {i}: {e}")))?;
            data.extend(frame.iter());
        }
        Ok(Frames {
            width,
            height,
            count: indices.len(),
            data,
        })
    }
}
