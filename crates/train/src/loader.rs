//! Data loading on background threads with a bounded queue, in an order
//! that depends only on the seed.
//!
//! Batch `b` (counted from the start of the run) holds positions
//! `b B .. (b + 1) B` of the sample stream: epoch `e = b / batches_per_epoch`
//! visits the data set in a permutation seeded by `(seed, e)` (or in order
//! without shuffling), dropping the last incomplete batch. Sample `i` of
//! batch `b` gets its own generator seeded by `(seed, b, i)` for
//! augmentation. Worker `w` of `W` loads batches `b = w (mod W)` in order
//! into its own bounded channel and the consumer reads the channels round
//! robin, so batches arrive in order and identical whatever `W` is.
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

/// Loads batches of a [`Dataset`] (see the module docs).
pub struct Loader<D: Dataset> {
    dataset: Arc<D>,
    config: LoaderConfig,
    seed: u64,
}

impl<D: Dataset> Loader<D> {
    /// A loader over `dataset`; fails when a batch does not fit in it.
    pub fn new(dataset: Arc<D>, config: LoaderConfig, seed: u64) -> Result<Self> {
        if config.batch_size == 0 || config.batch_size > dataset.len() {
            return Err(Error::Invalid(format!(
                "batch size {} does not fit a data set of {} samples",
                config.batch_size,
                dataset.len()
            )));
        }
        Ok(Self {
            dataset,
            config,
            seed,
        })
    }

    /// The data set.
    pub fn dataset(&self) -> &Arc<D> {
        &self.dataset
    }

    /// Complete batches per epoch.
    pub fn batches_per_epoch(&self) -> u64 {
        (self.dataset.len() / self.config.batch_size) as u64
    }

    /// The data-set indices of batch `batch`.
    pub fn indices(&self, batch: u64) -> Vec<usize> {
        indices(&*self.dataset, &self.config, self.seed, batch)
    }

    /// Loads batch `batch` on this thread.
    pub fn load(&self, batch: u64) -> Result<Vec<D::Sample>> {
        load(&*self.dataset, &self.config, self.seed, batch)
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
            let (dataset, config, seed, stop) = (
                self.dataset.clone(),
                self.config.clone(),
                self.seed,
                stop.clone(),
            );
            handles.push(std::thread::spawn(move || {
                let mut b = first + w as u64;
                while !stop.load(Ordering::Relaxed) {
                    if tx.send(load(&*dataset, &config, seed, b)).is_err() {
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
            },
            receivers,
            handles,
            stop,
            next: first,
            first,
        }
    }
}

fn indices<D: Dataset>(dataset: &D, config: &LoaderConfig, seed: u64, batch: u64) -> Vec<usize> {
    let per_epoch = (dataset.len() / config.batch_size) as u64;
    let (epoch, within) = (batch / per_epoch, (batch % per_epoch) as usize);
    let mut order: Vec<usize> = (0..dataset.len()).collect();
    if config.shuffle {
        order.shuffle(&mut StdRng::seed_from_u64(mix(&[seed, epoch])));
    }
    let start = within * config.batch_size;
    order[start..start + config.batch_size].to_vec()
}

fn load<D: Dataset>(
    dataset: &D,
    config: &LoaderConfig,
    seed: u64,
    batch: u64,
) -> Result<Vec<D::Sample>> {
    indices(dataset, config, seed, batch)
        .into_iter()
        .enumerate()
        .map(|(i, idx)| {
            let mut rng = StdRng::seed_from_u64(mix(&[seed, batch, i as u64]));
            dataset.get(idx, &mut rng)
        })
        .collect()
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
