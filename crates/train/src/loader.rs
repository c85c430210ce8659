//! Data loading on background threads with a bounded queue, in an order
//! that depends only on the seed.
//!
//! Batch `b` (counted from the start of the run) of rank `r` of `W` ranks
//! (one process: `r = 0`, `W = 1`) holds positions
//! `b' W B + r B .. b' W B + (r + 1) B` of epoch `e = b / S`, `b' = b mod S`,
//! where `S = floor(N / (W B))` steps make an epoch of `N` samples: epoch
//! `e` visits the data set in a permutation seeded by `(seed, e)` (the
//! same on every rank; in order without shuffling), and each step of the
//! job takes the next `W B` of it, rank `r` its `r`-th block of `B`. So the
//! ranks read disjoint shards, together every sample of the permutation's
//! first `S W B` exactly once per epoch, and the fewer than `W B` left over
//! are dropped from that epoch (as PyTorch's `DistributedSampler` and
//! `DataLoader` with `drop_last` drop theirs, though `DistributedSampler`
//! interleaves the ranks' indices where this takes blocks; the next epoch's
//! shuffle drops others).
//! Sample `i` of that batch gets its own generator seeded by
//! `(seed, b, r B + i)` for augmentation. The `W` ranks' batches, joined in
//! rank order, are then exactly the batches of one process at `W B`.
//! Worker `w` of `K` loads batches `b = w (mod K)` in order
//! into its own bounded channel and the consumer reads the channels round
//! robin, so batches arrive in order and identical whatever `K` is.
//! Resuming at batch `b` reproduces the stream from there.

use crate::{Error, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A data set of samples addressed by index.
pub trait Dataset: Send + Sync + 'static {
    /// What one index yields (an image and its label, a clip, ...).
    type Sample: Send + 'static;

    /// The number of samples.
    fn len(&self) -> usize;

    /// True when there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sample `index`; `rng` is the sample's own generator for augmentation.
    fn get(&self, index: usize, rng: &mut StdRng) -> Result<Self::Sample>;
}

/// The data-loading section of a config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoaderConfig {
    /// Samples per batch (per micro-batch when accumulating).
    pub batch_size: usize,
    /// Background loading threads (0 loads on the training thread).
    pub workers: usize,
    /// Batches each worker may have ready ahead of training.
    pub queue_depth: usize,
    /// Visit each epoch in a seeded random order.
    pub shuffle: bool,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            batch_size: 2,
            workers: 2,
            queue_depth: 2,
            shuffle: true,
        }
    }
}

/// SplitMix64 finalizer over a combination of values: a well-mixed seed.
fn mix(values: &[u64]) -> u64 {
    values.iter().fold(0x243F_6A88_85A3_08D3, |h, &v| {
        let mut z = (h ^ v).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// Which part of each step's samples a rank reads (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This rank, `0..ranks`.
    pub rank: usize,
    /// The ranks sharing the data.
    pub ranks: usize,
}

impl Shard {
    /// The whole data set, for one process.
    pub const WHOLE: Shard = Shard { rank: 0, ranks: 1 };
}

/// Loads batches of a [`Dataset`] (see the module docs).
pub struct Loader<D: Dataset> {
    dataset: Arc<D>,
    config: LoaderConfig,
    seed: u64,
    shard: Shard,
}

impl<D: Dataset> Loader<D> {
    /// A loader over `dataset`; fails when a batch does not fit in it.
    pub fn new(dataset: Arc<D>, config: LoaderConfig, seed: u64) -> Result<Self> {
        Self::sharded(dataset, config, seed, Shard::WHOLE)
    }

    /// A loader of rank `shard.rank`'s part of `dataset`; fails when the
    /// ranks' batches together do not fit in it.
    pub fn sharded(dataset: Arc<D>, config: LoaderConfig, seed: u64, shard: Shard) -> Result<Self> {
        let step = config.batch_size * shard.ranks;
        if config.batch_size == 0 || step > dataset.len() || shard.rank >= shard.ranks {
            return Err(Error::Invalid(format!(
                "batch size {} on {} rank(s) does not fit a data set of {} samples",
                config.batch_size,
                shard.ranks,
                dataset.len()
            )));
        }
        Ok(Self {
            dataset,
            config,
            seed,
            shard,
        })
    }

    /// The data set.
    pub fn dataset(&self) -> &Arc<D> {
        &self.dataset
    }

    /// Complete batches per epoch (of this rank; the same on every rank).
    pub fn batches_per_epoch(&self) -> u64 {
        (self.dataset.len() / (self.config.batch_size * self.shard.ranks)) as u64
    }

    /// The data-set indices of this rank's batch `batch`.
    pub fn indices(&self, batch: u64) -> Vec<usize> {
        self.sampler().indices(batch)
    }

    /// Loads batch `batch` on this thread.
    pub fn load(&self, batch: u64) -> Result<Vec<D::Sample>> {
        self.sampler().load(&*self.dataset, batch)
    }

    fn sampler(&self) -> Sampler {
        Sampler {
            len: self.dataset.len(),
            batch_size: self.config.batch_size,
            shuffle: self.config.shuffle,
            seed: self.seed,
            shard: self.shard,
        }
    }

    /// Batches `first, first + 1, ...` loaded in the background.
    pub fn iter_from(&self, first: u64) -> Batches<D> {
        let workers = self.config.workers;
        let stop = Arc::new(AtomicBool::new(false));
        let mut receivers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = sync_channel(self.config.queue_depth.max(1));
            receivers.push(rx);
            let (dataset, sampler, stop) = (self.dataset.clone(), self.sampler(), stop.clone());
            handles.push(std::thread::spawn(move || {
                let mut b = first + w as u64;
                while !stop.load(Ordering::Relaxed) {
                    if tx.send(sampler.load(&*dataset, b)).is_err() {
                        break;
                    }
                    b += workers as u64;
                }
            }));
        }
        Batches {
            loader: Loader {
                dataset: self.dataset.clone(),
                config: self.config.clone(),
                seed: self.seed,
                shard: self.shard,
            },
            receivers,
            handles,
            stop,
            next: first,
            first,
        }
    }
}

/// The sample order of one rank (see the module docs).
#[derive(Clone, Copy)]
struct Sampler {
    len: usize,
    batch_size: usize,
    shuffle: bool,
    seed: u64,
    shard: Shard,
}

impl Sampler {
    fn indices(&self, batch: u64) -> Vec<usize> {
        let step = self.batch_size * self.shard.ranks;
        let per_epoch = (self.len / step) as u64;
        let (epoch, within) = (batch / per_epoch, (batch % per_epoch) as usize);
        let mut order: Vec<usize> = (0..self.len).collect();
        if self.shuffle {
            order.shuffle(&mut StdRng::seed_from_u64(mix(&[self.seed, epoch])));
        }
        let start = within * step + self.shard.rank * self.batch_size;
        order[start..start + self.batch_size].to_vec()
    }

    fn load<D: Dataset>(&self, dataset: &D, batch: u64) -> Result<Vec<D::Sample>> {
        let first = (self.shard.rank * self.batch_size) as u64;
        self.indices(batch)
            .into_iter()
            .enumerate()
            .map(|(i, idx)| {
                let mut rng = StdRng::seed_from_u64(mix(&[self.seed, batch, first + i as u64]));
                dataset.get(idx, &mut rng)
            })
            .collect()
    }
}

/// The batch stream of [`Loader::iter_from`]; stops its threads when dropped.
pub struct Batches<D: Dataset> {
    loader: Loader<D>,
    receivers: Vec<Receiver<Result<Vec<D::Sample>>>>,
    handles: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    next: u64,
    first: u64,
}

impl<D: Dataset> Batches<D> {
    /// The index of the batch the next call returns.
    pub fn position(&self) -> u64 {
        self.next
    }
}

impl<D: Dataset> Iterator for Batches<D> {
    type Item = Result<Vec<D::Sample>>;

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.next;
        self.next += 1;
        if self.receivers.is_empty() {
            return Some(self.loader.load(b));
        }
        let w = ((b - self.first) % self.receivers.len() as u64) as usize;
        Some(
            self.receivers[w]
                .recv()
                .unwrap_or_else(|_| Err(Error::Data("a loading thread stopped".into()))),
        )
    }
}

impl<D: Dataset> Drop for Batches<D> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.receivers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}
