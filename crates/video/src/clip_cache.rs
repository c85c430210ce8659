//! A decoded-clip cache in one HDF5 file: every video of a list decoded
//! once, resized to a chosen short side, so that training reads frames
//! instead of decoding them.
//!
//! ```text
//! /                 attributes: classes (JSON list), short_side,
//!                   format ("jpeg" or "raw"; absent: raw), jpeg_quality (jpeg),
//!                   jpeg_encoder ("mozjpeg"; absent before 2026-12-01)
//! /labels           (V,) u32          class index of each video
//! /sources          (V,) string       the source video file of each entry
//! /videos/<v:06>    jpeg: (T,) variable-length u8, each frame's JPEG file,
//!                         attributes height, width;
//!                   raw:  (T, H, W, 3) u8 RGB frames, contiguous and
//!                         uncompressed (caches before 2026-12-01's tenth
//!                         session: one deflate chunk per frame; both read)
//! ```
//!
//! JPEG is the default ([`FrameFormat`], quality 75, chroma 4:2:0,
//! MozJPEG's trellis quantization: [`crate::jpeg`]): on real footage it
//! stores 224-pixel frames in 2.6 times the source videos' size, a
//! fifteenth of the raw frames' space and less than ffmpeg's JPEG
//! rawframes of mmaction2 take (crates/video/README.md has the
//! measurements). Raw frames remain for tiny data (the 64-pixel embedded
//! sets, whose comparisons read exactly the decoded pixels). Reading a
//! clip ([`ClipCache::read`]) holds the cache handle, and HDF5's global
//! lock, only while its frames' bytes are read; the decoding
//! ([`StoredFrames::decode_columns`]) runs outside, in the loader's worker,
//! so reads scale with workers, and decodes only the columns the training
//! crop reads.
//!
//! From Python (h5py and Pillow), frame `i` of video `v`:
//!
//! ```python
//! import io, h5py; from PIL import Image
//! with h5py.File("clips.h5") as f:
//!     frame = Image.open(io.BytesIO(f[f"videos/{v:06d}"][i].tobytes()))
//! ```
//!
//! Videos are decoded (and encoded) in parallel, a batch at a time, and
//! written in list order to a temporary file beside the cache, renamed
//! into place when complete: a finished cache is never half-written. The
//! temporary file records after each batch how far the list is done, so a
//! build that is stopped or killed continues there when run again with the
//! same list and settings (the videos of an unfinished batch are written
//! again). With `skip_bad`, a video that fails to decode is left out and
//! reported (its file and error); without it, the first such video is the
//! error.

use crate::decode::{decode_all, Frames, Resize};
use crate::jpeg::{decode_jpeg_columns, encode_jpeg};
use crate::video_list::VideoList;
use crate::{Error, Result};
use hdf5::types::{VarLenArray, VarLenUnicode};
use rayon::prelude::*;
use std::ops::{ControlFlow, Range};
use std::path::{Path, PathBuf};

/// How a cache stores its frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameFormat {
    /// Each frame a JPEG file of this quality (1-100).
    Jpeg(u8),
    /// Raw RGB bytes, uncompressed: exact, large, and read with a copy.
    /// (Deflate level 1 took 2.8 times less space on the comparisons'
    /// Fashion-SSv2, but its decompression was a sixth of a training
    /// step's CPU time for their batch-1 video cells, under HDF5's global
    /// lock.)
    Raw,
}

/// The default JPEG quality of a cache.
pub const DEFAULT_JPEG_QUALITY: u8 = 75;

impl Default for FrameFormat {
    fn default() -> Self {
        FrameFormat::Jpeg(DEFAULT_JPEG_QUALITY)
    }
}

/// How [`build_cache`] builds a cache.
#[derive(Clone, Debug)]
pub struct CacheOptions {
    /// Frames are resized so that their shorter side has this many pixels.
    pub short_side: u32,
    /// How frames are stored.
    pub format: FrameFormat,
    /// Leave out (and report) videos that fail to decode.
    pub skip_bad: bool,
    /// Videos decoded in parallel, and written, between two progress marks.
    pub batch: usize,
}

impl CacheOptions {
    /// JPEG frames at the default quality, stopping at a bad video, 32
    /// videos a batch.
    pub fn new(short_side: u32) -> Self {
        Self {
            short_side,
            format: FrameFormat::default(),
            skip_bad: false,
            batch: 32,
        }
    }
}

/// What [`build_cache`] wrote and left out.
#[derive(Clone, Debug, Default)]
pub struct CacheReport {
    /// Videos written (in this call).
    pub written: usize,
    /// Frames written in all (in this call).
    pub frames: usize,
    /// Videos left out, with the reason (in this and earlier calls).
    pub skipped: Vec<(PathBuf, String)>,
    /// Where in the list an unfinished build was continued, if it was.
    pub resumed_at: Option<usize>,
    /// Whether the cache is complete (else the progress callback stopped
    /// the build, which a later call continues).
    pub complete: bool,
}

/// A 64-bit FNV-1a hash of the list (paths and labels), so that a build is
/// only continued on the list it started with.
fn fingerprint(list: &VideoList) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
    };
    for c in &list.classes {
        eat(c.as_bytes());
        eat(&[0]);
    }
    for r in &list.records {
        eat(r.path.to_string_lossy().as_bytes());
        eat(&(r.label as u64).to_le_bytes());
    }
    h
}

/// One video decoded, ready to write.
struct Decoded {
    count: usize,
    height: usize,
    width: usize,
    /// Raw: the RGB bytes; JPEG: one file per frame.
    raw: Vec<u8>,
    jpegs: Vec<Vec<u8>>,
}

/// Decodes `path` and, for JPEG, encodes its frames.
fn decode(path: &Path, opts: &CacheOptions) -> Result<Decoded> {
    let frames = decode_all(path, Resize::ShortSide(opts.short_side))?;
    let (count, height, width) = (frames.count, frames.height, frames.width);
    Ok(match opts.format {
        FrameFormat::Raw => Decoded {
            count,
            height,
            width,
            raw: frames.data,
            jpegs: vec![],
        },
        FrameFormat::Jpeg(q) => Decoded {
            count,
            height,
            width,
            raw: vec![],
            jpegs: (0..count)
                .map(|i| encode_jpeg(frames.frame(i), width, height, q, path))
                .collect::<Result<_>>()?,
        },
    })
}

/// The encoder a build records (`jpeg_encoder`), and checks before
/// continuing one.
const JPEG_ENCODER: &str = "mozjpeg";

/// The settings a build records, and checks before continuing one.
fn settings(opts: &CacheOptions) -> (String, u32) {
    match opts.format {
        FrameFormat::Raw => ("raw".into(), 0),
        FrameFormat::Jpeg(q) => ("jpeg".into(), q as u32),
    }
}

/// Opens the unfinished build `tmp` if it was started with the same list
/// and settings: `Ok(Some((file, next list position, skipped so far)))`;
/// `Ok(None)` when there is none or it cannot be read (it is then started
/// again); an error when it was started with other settings.
#[allow(clippy::type_complexity)]
fn reopen(
    tmp: &Path,
    list: &VideoList,
    opts: &CacheOptions,
) -> Result<Option<(hdf5::File, usize, Vec<(PathBuf, String)>)>> {
    if !tmp.exists() {
        return Ok(None);
    }
    let Ok(file) = hdf5::File::open_rw(tmp) else {
        return Ok(None);
    };
    let read = || -> hdf5::Result<(u64, u32, VarLenUnicode, u32, u64, VarLenUnicode)> {
        // A build begun by another encoder (or before this attribute) is
        // started again rather than continued with frames of two encoders.
        let encoder: VarLenUnicode = file.attr("jpeg_encoder")?.read_scalar()?;
        if encoder.as_str() != JPEG_ENCODER {
            return Err("another JPEG encoder".into());
        }
        Ok((
            file.attr("list_fingerprint")?.read_scalar()?,
            file.attr("short_side")?.read_scalar()?,
            file.attr("format")?.read_scalar()?,
            file.attr("jpeg_quality")?.read_scalar()?,
            file.attr("next")?.read_scalar()?,
            file.attr("skipped")?.read_scalar()?,
        ))
    };
    let Ok((fp, side, format, quality, next, skipped)) = read() else {
        return Ok(None);
    };
    let (want_format, want_quality) = settings(opts);
    if fp != fingerprint(list)
        || side != opts.short_side
        || format.as_str() != want_format
        || quality != want_quality
    {
        return Err(Error::data(
            tmp,
            format!(
                "an unfinished cache of another list or other settings ({format}, quality \
                 {quality}, short side {side}): build with those, or delete it"
            ),
        ));
    }
    let skipped: Vec<(PathBuf, String)> = serde_json::from_str(skipped.as_str())
        .map_err(|e| Error::data(tmp, format!("skipped attribute: {e}")))?;
    Ok(Some((file, next as usize, skipped)))
}

/// Decodes every video of `list` into the cache `out`, as `opts` says (see
/// the module docs). `progress(done, total)` follows each batch (`done`
/// counts list entries, from the start of the build); a `Break` stops the
/// build there, to be continued by a later call.
pub fn build_cache(
    list: &VideoList,
    out: &Path,
    opts: &CacheOptions,
    mut progress: impl FnMut(usize, usize) -> ControlFlow<()>,
) -> Result<CacheReport> {
    let err = |e: hdf5::Error| Error::data(out, e);
    if opts.batch == 0 {
        return Err(Error::data(
            out,
            "a cache builds at least one video a batch",
        ));
    }
    if let FrameFormat::Jpeg(q) = opts.format {
        if !(1..=100).contains(&q) {
            return Err(Error::data(
                out,
                format!("JPEG quality {q}: expected 1 to 100"),
            ));
        }
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::data(dir, e))?;
    }
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("clips.h5");
    let tmp = out.with_file_name(format!(".{name}.tmp"));
    let mut report = CacheReport::default();
    let (file, start) = match reopen(&tmp, list, opts)? {
        Some((file, next, skipped)) => {
            report.resumed_at = Some(next);
            report.skipped = skipped;
            (file, next)
        }
        None => {
            let file = wsbcn_train::h5_file::create(&tmp).map_err(err)?;
            let (format, quality) = settings(opts);
            let classes = serde_json::to_string(&list.classes).map_err(|e| Error::data(out, e))?;
            for (k, v) in [
                ("classes", classes.as_str()),
                ("format", &format),
                ("jpeg_encoder", JPEG_ENCODER),
                ("skipped", "[]"),
            ] {
                put_attr(&file, k, &unicode(v, out)?).map_err(err)?;
            }
            put_attr(&file, "short_side", &opts.short_side).map_err(err)?;
            put_attr(&file, "jpeg_quality", &quality).map_err(err)?;
            put_attr(&file, "list_fingerprint", &fingerprint(list)).map_err(err)?;
            put_attr(&file, "next", &0u64).map_err(err)?;
            file.create_group("videos").map_err(err)?;
            (file, 0)
        }
    };
    let videos = file.group("videos").map_err(err)?;
    // Videos of a batch the last build did not finish are written again.
    let mut done: Vec<(usize, u32, String)> = vec![];
    for member in videos.member_names().map_err(err)? {
        let ds = videos.dataset(&member).map_err(err)?;
        let pos: u64 = ds
            .attr("list_index")
            .and_then(|a| a.read_scalar())
            .map_err(err)?;
        if pos as usize >= start {
            videos.unlink(&member).map_err(err)?;
            continue;
        }
        let label: u32 = ds
            .attr("label")
            .and_then(|a| a.read_scalar())
            .map_err(err)?;
        let source: VarLenUnicode = ds
            .attr("source")
            .and_then(|a| a.read_scalar())
            .map_err(err)?;
        done.push((pos as usize, label, source.as_str().to_string()));
    }
    done.sort();
    let mut index = done.len();
    let records = &list.records[start.min(list.len())..];
    for (b, batch) in records.chunks(opts.batch).enumerate() {
        let first = start + b * opts.batch;
        let decoded: Vec<Result<Decoded>> =
            batch.par_iter().map(|r| decode(&r.path, opts)).collect();
        for (k, (record, video)) in batch.iter().zip(decoded).enumerate() {
            let video = match video {
                Ok(v) => v,
                Err(e) if opts.skip_bad => {
                    report.skipped.push((record.path.clone(), e.to_string()));
                    continue;
                }
                Err(e) => {
                    drop(videos);
                    drop(file);
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
            };
            let ds_name = format!("{index:06}");
            let ds = match opts.format {
                FrameFormat::Raw => {
                    let shape = (video.count, video.height, video.width, 3);
                    let view = ndarray::ArrayView4::from_shape(shape, &video.raw)
                        .map_err(|e| Error::data(&record.path, e))?;
                    videos
                        .new_dataset_builder()
                        .with_data(&view)
                        .create(ds_name.as_str())
                        .map_err(err)?
                }
                FrameFormat::Jpeg(_) => {
                    let files: Vec<VarLenArray<u8>> = video
                        .jpegs
                        .iter()
                        .map(|j| VarLenArray::from_slice(j))
                        .collect();
                    let ds = videos
                        .new_dataset_builder()
                        .with_data(files.as_slice())
                        .create(ds_name.as_str())
                        .map_err(err)?;
                    for (key, v) in [("height", video.height), ("width", video.width)] {
                        put_attr(&ds, key, &(v as u32)).map_err(err)?;
                    }
                    ds
                }
            };
            let source = record.path.display().to_string();
            put_attr(&ds, "list_index", &((first + k) as u64)).map_err(err)?;
            put_attr(&ds, "label", &(record.label as u32)).map_err(err)?;
            put_attr(&ds, "source", &unicode(&source, out)?).map_err(err)?;
            done.push((first + k, record.label as u32, source));
            index += 1;
            report.written += 1;
            report.frames += video.count;
        }
        // The batch is in the file: record it, then flush.
        let next = (first + batch.len()) as u64;
        file.attr("next")
            .and_then(|a| a.write_scalar(&next))
            .map_err(err)?;
        let skipped = serde_json::to_string(&report.skipped).map_err(|e| Error::data(out, e))?;
        let skipped = unicode(&skipped, out)?;
        file.attr("skipped")
            .and_then(|a| a.write_scalar(&skipped))
            .map_err(err)?;
        file.flush().map_err(err)?;
        if progress(next as usize, list.len()).is_break() && (next as usize) < list.len() {
            return Ok(report);
        }
    }
    let labels: Vec<u32> = done.iter().map(|d| d.1).collect();
    let sources: Vec<VarLenUnicode> = done
        .iter()
        .map(|d| unicode(&d.2, out))
        .collect::<Result<_>>()?;
    file.new_dataset_builder()
        .with_data(labels.as_slice())
        .create("labels")
        .map_err(err)?;
    file.new_dataset_builder()
        .with_data(sources.as_slice())
        .create("sources")
        .map_err(err)?;
    drop(videos);
    file.close().map_err(err)?;
    std::fs::rename(&tmp, out).map_err(|e| Error::data(out, e))?;
    report.complete = true;
    Ok(report)
}

/// Creates the scalar attribute `name` of `loc` with `value`.
fn put_attr<T: hdf5::H5Type>(loc: &hdf5::Location, name: &str, value: &T) -> hdf5::Result<()> {
    loc.new_attr::<T>().create(name)?.write_scalar(value)
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
    format: FrameFormat,
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
        // Caches from before the JPEG format have no `format`: raw.
        let format = match file.attr("format") {
            Err(_) => FrameFormat::Raw,
            Ok(a) => {
                let f: VarLenUnicode = a.read_scalar().map_err(err)?;
                match f.as_str() {
                    "raw" => FrameFormat::Raw,
                    "jpeg" => {
                        let q: u32 = file
                            .attr("jpeg_quality")
                            .and_then(|a| a.read_scalar())
                            .map_err(err)?;
                        FrameFormat::Jpeg(q as u8)
                    }
                    other => {
                        return Err(Error::data(path, format!("frame format `{other}`")));
                    }
                }
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            file,
            classes,
            labels,
            sources,
            short_side,
            format,
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

    /// How the frames are stored.
    pub fn format(&self) -> FrameFormat {
        self.format
    }

    fn video(&self, v: usize) -> Result<hdf5::Dataset> {
        self.file
            .dataset(&format!("videos/{v:06}"))
            .map_err(|e| Error::data(&self.path, format!("video {v}: {e}")))
    }

    /// `(frames, height, width)` of video `v`.
    pub fn dims(&self, v: usize) -> Result<(usize, usize, usize)> {
        self.dims_of(v, &self.video(v)?)
    }

    /// `(frames, height, width)` of video `v`, whose dataset is `ds`.
    fn dims_of(&self, v: usize, ds: &hdf5::Dataset) -> Result<(usize, usize, usize)> {
        let bad = |what: String| Error::data(&self.path, format!("video {v}: {what}"));
        match (self.format, &ds.shape()[..]) {
            (FrameFormat::Raw, &[t, h, w, 3]) => Ok((t, h, w)),
            (FrameFormat::Jpeg(_), &[t]) => {
                let side = |k: &str| -> Result<usize> {
                    let v: u32 = ds
                        .attr(k)
                        .and_then(|a| a.read_scalar())
                        .map_err(|e| bad(format!("{k}: {e}")))?;
                    Ok(v as usize)
                };
                Ok((t, side("height")?, side("width")?))
            }
            (_, s) => Err(bad(format!("shape {s:?} does not fit its format"))),
        }
    }

    /// The bytes of frame `i` of video `v` in a JPEG cache: a JPEG file
    /// (e.g. to write mmaction2's rawframes).
    pub fn jpeg_file(&self, v: usize, i: usize) -> Result<Vec<u8>> {
        if !matches!(self.format, FrameFormat::Jpeg(_)) {
            return Err(Error::data(&self.path, "a raw cache holds no JPEG files"));
        }
        let ds = self.video(v)?;
        let (t, _, _) = self.dims_of(v, &ds)?;
        self.check_frames(v, t, &[i])?;
        let file: ndarray::Array1<VarLenArray<u8>> = ds
            .read_slice_1d(i..i + 1)
            .map_err(|e| Error::data(&self.path, format!("video {v} frame {i}: {e}")))?;
        Ok(file[0].as_slice().to_vec())
    }

    /// An error naming the first of `indices` past video `v`'s `t` frames.
    fn check_frames(&self, v: usize, t: usize, indices: &[usize]) -> Result<()> {
        match indices.iter().find(|&&i| i >= t) {
            Some(i) => Err(Error::data(
                &self.path,
                format!("video {v}: frame {i} requested, it has {t}"),
            )),
            None => Ok(()),
        }
    }

    /// The frames of video `v` at `indices` (any order, repeats allowed),
    /// whole: [`ClipCache::read`], then [`StoredFrames::decode`].
    pub fn frames(&self, v: usize, indices: &[usize]) -> Result<Frames> {
        self.read(v, indices)?.decode()
    }

    /// The stored frames of video `v` at `indices` (any order, repeats
    /// allowed), not yet decoded. A JPEG cache reads the files of all of
    /// them in one HDF5 call; decoding them ([`StoredFrames::decode`]) needs
    /// neither HDF5 nor this handle, so a loader's workers share a handle
    /// only for this call (see the module docs).
    pub fn read(&self, v: usize, indices: &[usize]) -> Result<StoredFrames> {
        let ds = self.video(v)?;
        let (t, height, width) = self.dims_of(v, &ds)?;
        self.check_frames(v, t, indices)?;
        match self.format {
            FrameFormat::Raw => {
                let mut data = Vec::with_capacity(indices.len() * height * width * 3);
                for &i in indices {
                    let frame: ndarray::Array4<u8> =
                        ds.read_slice((i..i + 1, .., .., ..)).map_err(|e| {
                            Error::data(&self.path, format!("video {v} frame {i}: {e}"))
                        })?;
                    // A slice read is in standard order: one copy, not an
                    // element-by-element iterator (a fifth of an evaluation).
                    match frame.as_slice() {
                        Some(bytes) => data.extend_from_slice(bytes),
                        None => data.extend(frame.iter()),
                    }
                }
                Ok(StoredFrames::Raw(Frames {
                    width,
                    height,
                    count: indices.len(),
                    data,
                }))
            }
            FrameFormat::Jpeg(_) => {
                let mut wanted = indices.to_vec();
                wanted.sort_unstable();
                wanted.dedup();
                let points = ndarray::Array2::from_shape_vec((wanted.len(), 1), wanted.clone())
                    .map_err(|e| Error::data(&self.path, e))?;
                let files: ndarray::Array1<VarLenArray<u8>> = ds
                    .read_slice_1d(hdf5::Selection::Points(points))
                    .map_err(|e| Error::data(&self.path, format!("video {v}: {e}")))?;
                Ok(StoredFrames::Jpeg {
                    files: files.into_iter().collect(),
                    order: indices
                        .iter()
                        // `wanted` holds every index, sorted.
                        .map(|&i| (i, wanted.partition_point(|&w| w < i)))
                        .collect(),
                    width,
                    height,
                    video: v,
                    path: self.path.clone(),
                })
            }
        }
    }
}

/// Frames read from a cache ([`ClipCache::read`]), to be decoded.
#[derive(Debug)]
pub enum StoredFrames {
    /// Whole frames: a raw cache's, or a video file's decoded.
    Raw(Frames),
    /// A JPEG cache's files.
    Jpeg {
        /// Each distinct frame's JPEG file.
        files: Vec<VarLenArray<u8>>,
        /// For each frame asked for, its index in the video and in `files`.
        order: Vec<(usize, usize)>,
        /// Frame width in pixels.
        width: usize,
        /// Frame height in pixels.
        height: usize,
        /// The video's index in the cache (for errors).
        video: usize,
        /// The cache file (for errors).
        path: PathBuf,
    },
}

impl StoredFrames {
    /// The frames' `(width, height)` in pixels.
    pub fn size(&self) -> (usize, usize) {
        match self {
            StoredFrames::Raw(f) => (f.width, f.height),
            StoredFrames::Jpeg { width, height, .. } => (*width, *height),
        }
    }

    /// The columns `columns` of the frames (a JPEG cache decodes only the
    /// blocks around them, [`crate::jpeg`]), or whole frames from a raw
    /// cache or a video file; with the column the result starts at:
    /// `columns.start` for JPEG, 0 for whole frames.
    pub fn decode_columns(self, columns: Range<usize>) -> Result<(Frames, usize)> {
        let (width, _) = self.size();
        if columns.start >= columns.end || columns.end > width {
            return Err(Error::Config(format!(
                "columns {columns:?} of frames {width} pixels wide"
            )));
        }
        match self {
            StoredFrames::Raw(f) => Ok((f, 0)),
            StoredFrames::Jpeg {
                files,
                order,
                width,
                height,
                video,
                path,
            } => {
                let count = order.len();
                let mut data = Vec::with_capacity(count * height * columns.len() * 3);
                for (i, k) in order {
                    let file = files[k].as_slice();
                    decode_jpeg_columns(file, width, height, columns.clone(), &path, &mut data)
                        .map_err(|e| match e {
                            Error::Data { path, msg } => Error::Data {
                                path,
                                msg: format!("video {video} frame {i}: {msg}"),
                            },
                            other => other,
                        })?;
                }
                Ok((
                    Frames {
                        width: columns.len(),
                        height,
                        count,
                        data,
                    },
                    columns.start,
                ))
            }
        }
    }

    /// The whole frames.
    pub fn decode(self) -> Result<Frames> {
        let (width, _) = self.size();
        Ok(self.decode_columns(0..width)?.0)
    }
}
