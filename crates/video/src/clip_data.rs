//! A split of clips for training and testing: videos from an HDF5 clip
//! cache when one is given, else decoded from their files, sampled by a
//! [`Sampler`] and prepared by [`clip_transform`](crate::clip_transform).
//!
//! With `skip_bad`, a video that fails to load is logged once (file and
//! error), counted, and replaced by the next video of the split, so a
//! training run never dies on one bad file; without it the error stops the
//! run.

use crate::clip_cache::{ClipCache, StoredFrames};
use crate::clip_transform::{test_clips, ClipAugment, ClipSample};
use crate::decode::{decode_all, Frames, Resize};
use crate::sampling::Sampler;
use crate::video_list::VideoList;
use crate::{Error, Result};
use rand::rngs::StdRng;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;

/// Where the frames come from.
#[derive(Debug)]
enum Store {
    /// A decoded-clip cache.
    Cache(Mutex<ClipCache>),
    /// Video files, decoded at this short side.
    Files(VideoList, u32),
}

/// A split of clips (see the module docs).
#[derive(Debug)]
pub struct ClipSet {
    store: Store,
    classes: Vec<String>,
    labels: Vec<usize>,
    sampler: Sampler,
    augment: ClipAugment,
    skip_bad: bool,
    skipped: Mutex<BTreeSet<usize>>,
}

impl ClipSet {
    /// Clips decoded from the files of `list` at `short_side`.
    pub fn from_files(
        list: VideoList,
        short_side: u32,
        sampler: Sampler,
        augment: ClipAugment,
        skip_bad: bool,
    ) -> Result<Self> {
        sampler.validate()?;
        augment.validate(list.classes.len())?;
        Ok(Self {
            classes: list.classes.clone(),
            labels: list.records.iter().map(|r| r.label).collect(),
            store: Store::Files(list, short_side),
            sampler,
            augment,
            skip_bad,
            skipped: Mutex::new(BTreeSet::new()),
        })
    }

    /// Clips read from a cache.
    pub fn from_cache(
        cache: ClipCache,
        sampler: Sampler,
        augment: ClipAugment,
        skip_bad: bool,
    ) -> Result<Self> {
        sampler.validate()?;
        augment.validate(cache.classes().len())?;
        Ok(Self {
            classes: cache.classes().to_vec(),
            labels: (0..cache.len()).map(|v| cache.label(v)).collect(),
            store: Store::Cache(Mutex::new(cache)),
            sampler,
            augment,
            skip_bad,
            skipped: Mutex::new(BTreeSet::new()),
        })
    }

    /// Number of videos.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the split holds no video.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Class names by index.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Class index of video `v`.
    pub fn label(&self, v: usize) -> usize {
        self.labels[v]
    }

    /// The videos skipped so far.
    pub fn skipped(&self) -> usize {
        self.skipped.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// The videos skipped so far by any rank of `world` (each rank reads
    /// its own shard): the union of the ranks' sets, counted on every rank.
    pub fn skipped_on_any_rank(&self, world: &wsbcn_dist::World) -> usize {
        if world.size() == 1 {
            return self.skipped();
        }
        let mut seen = vec![0u64; self.len()];
        if let Ok(s) = self.skipped.lock() {
            for &v in s.iter() {
                seen[v] = 1;
            }
        }
        world.all_reduce_sum(&mut seen);
        seen.iter().filter(|&&n| n > 0).count()
    }

    fn source(&self, v: usize) -> PathBuf {
        match &self.store {
            Store::Cache(c) => c
                .lock()
                .map(|c| c.source(v).to_path_buf())
                .unwrap_or_default(),
            Store::Files(list, _) => list.records[v].path.clone(),
        }
    }

    /// The frames of video `v` chosen by `pick(frame_count)`, whole.
    fn frames(&self, v: usize, pick: impl FnOnce(usize) -> Result<Vec<usize>>) -> Result<Frames> {
        self.stored(v, pick)?.decode()
    }

    /// The frames of video `v` chosen by `pick(frame_count)`, as the cache
    /// stores them (to be decoded), or decoded from the file. The cache
    /// handle is held only while the stored bytes are read, so that the
    /// loader's workers decode in parallel.
    fn stored(
        &self,
        v: usize,
        pick: impl FnOnce(usize) -> Result<Vec<usize>>,
    ) -> Result<StoredFrames> {
        match &self.store {
            Store::Cache(c) => {
                let cache = c
                    .lock()
                    .map_err(|_| Error::Config("clip cache lock poisoned".into()))?;
                let (t, _, _) = cache.dims(v)?;
                cache.read(v, &pick(t)?)
            }
            Store::Files(list, short) => {
                let all = decode_all(&list.records[v].path, Resize::ShortSide(*short))?;
                let idx = pick(all.count)?;
                let n = all.width * all.height * 3;
                let mut data = Vec::with_capacity(idx.len() * n);
                for &i in &idx {
                    data.extend_from_slice(all.frame(i));
                }
                Ok(StoredFrames::Raw(Frames {
                    count: idx.len(),
                    data,
                    ..all
                }))
            }
        }
    }

    /// Runs `load` on video `v`, or with `skip_bad` on the next videos until
    /// one loads, logging each skipped video once.
    fn with_skips<T>(&self, v: usize, mut load: impl FnMut(usize) -> Result<T>) -> Result<T> {
        let mut last = None;
        for k in 0..self.len() {
            let i = (v + k) % self.len();
            match load(i) {
                Ok(x) => return Ok(x),
                Err(e) if self.skip_bad => {
                    let first = self
                        .skipped
                        .lock()
                        .map(|mut s| s.insert(i))
                        .unwrap_or(false);
                    if first {
                        eprintln!("skipping video {} ({}): {e}", i, self.source(i).display());
                    }
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Config("the split holds no video".into())))
    }

    /// An augmented training clip of video `v` (or of a later one, when `v`
    /// is skipped), with random temporal offsets.
    pub fn train_sample(&self, v: usize, rng: &mut StdRng) -> Result<ClipSample> {
        self.with_skips(v, |i| {
            let stored = self.stored(i, |t| self.sampler.indices(t, Some(&mut *rng)))?;
            // The crop is drawn from the frames' size, and only its columns
            // are decoded (with a later video's draws when this one fails
            // to decode and is skipped).
            let (width, height) = stored.size();
            let view = self.augment.train_view(width, height, rng);
            let (frames, left) = stored.decode_columns(view.columns())?;
            view.clip(&frames, left, self.labels[i], &self.augment)
        })
    }

    /// Test views of video `v`: `clips` temporal views times `crops`
    /// spatial crops, in that order.
    pub fn test_views(&self, v: usize, clips: usize, crops: usize) -> Result<Vec<ClipSample>> {
        let mut out = Vec::with_capacity(clips * crops);
        // `clips` views of `clip_len` frames each, one after another.
        let frames = self.frames(v, |t| Ok(self.sampler.test_views(t, clips)?.concat()))?;
        let per = self.sampler.clip_len();
        let n = frames.width * frames.height * 3;
        for k in 0..clips {
            let clip = Frames {
                count: per,
                data: frames.data[k * per * n..(k + 1) * per * n].to_vec(),
                ..frames
            };
            out.extend(test_clips(&clip, self.labels[v], &self.augment, crops)?);
        }
        Ok(out)
    }
}

impl wsbcn_train::Dataset for ClipSet {
    type Sample = ClipSample;

    fn len(&self) -> usize {
        self.labels.len()
    }

    fn get(&self, index: usize, rng: &mut StdRng) -> wsbcn_train::Result<ClipSample> {
        Ok(self.train_sample(index, rng)?)
    }
}
