//! The video-recognition task the training engine runs: clips from a split
//! (cache or files), a 3D-conv ResNet, cross-entropy, and evaluation to
//! top-1 / top-5 / mean class accuracy, single-view during training and
//! multi-view (`clips x crops`, softmax scores averaged) on demand.

use crate::clip_cache::ClipCache;
use crate::clip_data::ClipSet;
use crate::clip_transform::{ClipAugment, ClipSample};
use crate::sampling::Sampler;
use crate::video_model::{VideoModel, VideoModelConfig};
use crate::video_source::VideoSource;
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use wsbcn_nn::{seeded_var_builder, LayerFactory};
use wsbcn_train::{cross_entropy, CheckSections, PretrainedConfig, RunConfig, Task, TaskKind};

/// The data section of a video config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VideoDataConfig {
    /// The training split.
    pub train: VideoSource,
    /// The validation split.
    pub val: VideoSource,
    /// A clip cache of the training split, read instead of the files.
    pub train_cache: Option<PathBuf>,
    /// A clip cache of the validation split.
    pub val_cache: Option<PathBuf>,
    /// Short side the files are decoded at (without a cache).
    pub short_side: u32,
    /// Frame sampling.
    pub sampler: Sampler,
    /// Augmentation and normalization.
    pub augment: ClipAugment,
    /// Skip (and report) videos that fail to load instead of stopping.
    pub skip_bad: bool,
    /// Evaluate on at most this many validation videos (0: all).
    pub val_limit: usize,
}

impl Default for VideoDataConfig {
    fn default() -> Self {
        Self {
            train: VideoSource::ssv2_dir(&PathBuf::from("data/ssv2"), "train"),
            val: VideoSource::ssv2_dir(&PathBuf::from("data/ssv2"), "validation"),
            train_cache: None,
            val_cache: None,
            short_side: 128,
            sampler: Sampler::Segments { num_segments: 8 },
            augment: ClipAugment::default(),
            skip_bad: true,
            val_limit: 0,
        }
    }
}

/// A whole video config file: the engine's layout ([`RunConfig`]) with a
/// video model and clip data.
pub type VideoConfig = RunConfig<VideoModelConfig, VideoDataConfig>;

impl CheckSections<VideoModelConfig> for VideoDataConfig {
    fn check(&self, model: &VideoModelConfig) -> std::result::Result<(), (String, String)> {
        if let Err(e) = self.sampler.validate() {
            return Err(("data.sampler".into(), e.to_string()));
        }
        if let Err(e) = self.augment.validate(model.num_classes) {
            return Err(("data.augment".into(), e.to_string()));
        }
        Ok(())
    }
}

/// The video task kind: what the engine's skeleton trains and restores
/// ([`wsbcn_train::train`], [`wsbcn_train::cli`]).
pub struct Video;

impl TaskKind for Video {
    const NAME: &'static str = "video";
    type Model = VideoModelConfig;
    type Data = VideoDataConfig;
    type Task = VideoTask;
    type TrainSet = ClipSet;

    fn build(config: &VideoConfig, device: &Device) -> Result<VideoTask> {
        VideoTask::new(config, device)
    }

    fn train_set(task: &mut VideoTask) -> Result<Arc<ClipSet>> {
        task.train_set()
    }

    /// TSM and I3D keep torchvision's ResNet names at the root.
    fn pretrained(model: &VideoModelConfig) -> Option<(&PretrainedConfig, &'static str)> {
        Some((model.pretrained.as_ref()?, ""))
    }
}

/// Opens a split from its cache when given, else from its files.
pub fn open_split(
    source: &VideoSource,
    cache: Option<&PathBuf>,
    data: &VideoDataConfig,
) -> Result<ClipSet> {
    let (sampler, augment) = (data.sampler, data.augment.clone());
    match cache {
        Some(path) => ClipSet::from_cache(ClipCache::open(path)?, sampler, augment, data.skip_bad),
        None => ClipSet::from_files(
            source.read()?,
            data.short_side,
            sampler,
            augment,
            data.skip_bad,
        ),
    }
}

/// Stacks clips into `(N, 3, T, S, S)` and labels `(N,)`.
pub fn collate(batch: &[ClipSample], device: &Device) -> Result<(Tensor, Tensor)> {
    let first = batch
        .first()
        .ok_or_else(|| Error::Config("empty batch".into()))?;
    let (t, s) = (first.t, first.side);
    if batch.iter().any(|c| (c.t, c.side) != (t, s)) {
        return Err(Error::Config("a batch mixes clip sizes".into()));
    }
    let data: Vec<f32> = batch.iter().flat_map(|c| c.data.iter().copied()).collect();
    let labels: Vec<u32> = batch.iter().map(|c| c.label as u32).collect();
    Ok((
        Tensor::from_vec(data, (batch.len(), 3, t, s, s), device)?,
        Tensor::from_vec(labels, batch.len(), device)?,
    ))
}

/// Top-1, top-5 and mean class accuracy of scored videos.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoMetrics {
    /// Fraction of videos whose best class is right.
    pub top1: f64,
    /// Fraction whose right class is among the best five.
    pub top5: f64,
    /// Mean over classes of per-class top-1 accuracy (classes with videos).
    pub mean_class_accuracy: f64,
    /// `confusion[truth][prediction]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// Videos skipped as unreadable.
    pub skipped: usize,
}

/// Metrics from `(scores, label)` pairs over `classes` classes.
pub fn video_metrics(scored: &[(Vec<f32>, usize)], classes: usize, skipped: usize) -> VideoMetrics {
    let mut confusion = vec![vec![0usize; classes]; classes];
    let (mut top1, mut top5) = (0usize, 0usize);
    for (scores, label) in scored {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        top1 += usize::from(order[0] == *label);
        top5 += usize::from(order.iter().take(5).any(|c| c == label));
        confusion[*label][order[0]] += 1;
    }
    let per_class: Vec<f64> = confusion
        .iter()
        .enumerate()
        .filter_map(|(c, row)| {
            let n: usize = row.iter().sum();
            (n > 0).then(|| row[c] as f64 / n as f64)
        })
        .collect();
    let n = scored.len().max(1) as f64;
    VideoMetrics {
        top1: top1 as f64 / n,
        top5: top5 as f64 / n,
        mean_class_accuracy: per_class.iter().sum::<f64>() / per_class.len().max(1) as f64,
        confusion,
        skipped,
    }
}

/// The video task (see the module docs).
pub struct VideoTask {
    varmap: VarMap,
    factory: LayerFactory,
    model: VideoModel,
    config: VideoConfig,
    val: ClipSet,
    device: Device,
    train_skips: Option<Arc<ClipSet>>,
    /// The metrics of the last evaluation.
    pub last: Option<VideoMetrics>,
}

impl VideoTask {
    /// Builds the model (initialised from the config's seed) and opens the
    /// validation split.
    pub fn new(config: &VideoConfig, device: &Device) -> Result<Self> {
        let factory = LayerFactory::new(&config.norm)?;
        let varmap = VarMap::new();
        let vb = seeded_var_builder(&varmap, config.train.seed, DType::F32, device);
        let model = VideoModel::new(&config.model, &factory, vb)?;
        let val = open_split(
            &config.data.val,
            config.data.val_cache.as_ref(),
            &config.data,
        )?;
        if val.classes().len() != config.model.num_classes {
            return Err(Error::Config(format!(
                "model.num_classes is {}, the data has {} classes",
                config.model.num_classes,
                val.classes().len()
            )));
        }
        Ok(Self {
            varmap,
            factory,
            model,
            config: config.clone(),
            val,
            device: device.clone(),
            train_skips: None,
            last: None,
        })
    }

    /// The training split as a data set (its skips are reported by
    /// [`VideoTask::evaluate_views`]).
    pub fn train_set(&mut self) -> Result<Arc<ClipSet>> {
        let d = &self.config.data;
        let set = Arc::new(open_split(&d.train, d.train_cache.as_ref(), d)?);
        self.train_skips = Some(set.clone());
        Ok(set)
    }

    /// Class names by index.
    pub fn classes(&self) -> &[String] {
        self.val.classes()
    }

    /// Evaluates on the validation split with `clips x crops` views per
    /// video (softmax scores averaged), up to [`EVAL_VIEWS`] views per
    /// forward pass ([`Self::scores`]).
    pub fn evaluate_views(&self, clips: usize, crops: usize) -> Result<VideoMetrics> {
        let (scored, skipped) = self.scores(clips, crops, EVAL_VIEWS)?;
        let world = wsbcn_dist::world();
        let train_skipped = self
            .train_skips
            .as_ref()
            .map_or(0, |s| s.skipped_on_any_rank(world));
        Ok(video_metrics(
            &scored,
            self.config.model.num_classes,
            skipped + train_skipped,
        ))
    }

    /// Per validation video, in order, the mean softmax over its `clips x
    /// crops` views and its label, with the number of videos skipped as
    /// unreadable (left out of the list). Consecutive videos share a forward
    /// pass of up to `max_views` views (at least one video); in eval mode
    /// every norm treats each view on its own, so the batching changes no
    /// score beyond float rounding. On several ranks each scores every
    /// `size`-th video from its rank on, and the lists are joined on every
    /// rank ([`gather_scores`]): the same list as one process.
    pub fn scores(
        &self,
        clips: usize,
        crops: usize,
        max_views: usize,
    ) -> Result<(Vec<Scored>, usize)> {
        // WS kernels standardized once for the whole evaluation.
        let _fold = self.factory.fold_ws();
        let n = match self.config.data.val_limit {
            0 => self.val.len(),
            l => l.min(self.val.len()),
        };
        let mut scored = Vec::with_capacity(n);
        let mut skipped = 0;
        // Views of the videos waiting for a forward pass, and their labels.
        let mut views = vec![];
        let mut pending: Vec<(usize, usize)> = vec![];
        let world = wsbcn_dist::world();
        // The videos scored, in the order of `scored`.
        let mut visited = vec![];
        for v in (world.rank()..n).step_by(world.size()) {
            let vs = match self.val.test_views(v, clips, crops) {
                Ok(vs) => vs,
                Err(e) if self.config.data.skip_bad => {
                    eprintln!("skipping validation video {v}: {e}");
                    skipped += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !pending.is_empty() && views.len() + vs.len() > max_views {
                self.score(&views, &pending, &mut scored)?;
                views.clear();
                pending.clear();
            }
            pending.push((vs.len(), self.val.label(v)));
            visited.push(v);
            views.extend(vs);
        }
        if !pending.is_empty() {
            self.score(&views, &pending, &mut scored)?;
        }
        let classes = self.config.model.num_classes;
        Ok(gather_scores(world, n, classes, &scored, &visited, skipped))
    }

    /// Scores the videos of `pending` (views per video, label) from one
    /// forward pass over their `views`: the mean softmax of each video's.
    fn score(
        &self,
        views: &[ClipSample],
        pending: &[(usize, usize)],
        scored: &mut Vec<Scored>,
    ) -> Result<()> {
        let (x, _) = collate(views, &self.device)?;
        let probs = candle_nn::ops::softmax(&self.model.forward_t(&x, false)?, D::Minus1)?;
        let mut first = 0;
        for &(count, label) in pending {
            let scores: Vec<f32> = probs.narrow(0, first, count)?.mean(0)?.to_vec1()?;
            scored.push((scores, label));
            first += count;
        }
        Ok(())
    }
}

/// A video's softmax scores (the mean over its views) and its label.
pub type Scored = (Vec<f32>, usize);

/// Joins the scores of every rank of `world` on every rank: rank `r` scored
/// videos `visited` (of `n`, over `classes`) as `scored` and skipped
/// `skipped`. Each rank writes its rows (scores, label, a present flag) into
/// an `n`-row table of zeros and the tables are summed; the present rows, in
/// video order, are one process's list, and the skips add up.
pub fn gather_scores(
    world: &wsbcn_dist::World,
    n: usize,
    classes: usize,
    scored: &[Scored],
    visited: &[usize],
    skipped: usize,
) -> (Vec<Scored>, usize) {
    if world.size() == 1 {
        return (scored.to_vec(), skipped);
    }
    let width = classes + 2;
    let mut table = vec![0f64; n * width + 1];
    for ((scores, label), &v) in scored.iter().zip(visited) {
        let row = &mut table[v * width..(v + 1) * width];
        for (t, s) in row.iter_mut().zip(scores) {
            *t = f64::from(*s);
        }
        row[classes] = *label as f64;
        row[classes + 1] = 1.0;
    }
    table[n * width] = skipped as f64;
    world.all_reduce_sum(&mut table);
    let joined = table[..n * width]
        .chunks(width)
        .filter(|row| row[classes + 1] == 1.0)
        .map(|row| {
            let scores = row[..classes].iter().map(|&s| s as f32).collect();
            (scores, row[classes] as usize)
        })
        .collect();
    (joined, table[n * width] as usize)
}

/// Views per forward pass in [`VideoTask::evaluate_views`]. One pass per
/// video made the five evaluations of a comparison's R3D-10 run 13% of its
/// time (7 of 54 s in one run); 16 of its views take a few MB.
pub const EVAL_VIEWS: usize = 16;

impl Task for VideoTask {
    type Sample = ClipSample;

    fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    fn layers(&self) -> Option<&LayerFactory> {
        Some(&self.factory)
    }

    fn loss(&mut self, batch: Vec<ClipSample>) -> wsbcn_train::Result<Tensor> {
        let (x, y) = collate(&batch, &self.device)?;
        let logits = self.model.forward_t(&x, true)?;
        cross_entropy(&logits, &y, 0.0)
    }

    fn evaluate(&mut self) -> wsbcn_train::Result<Vec<(String, f64)>> {
        let m = self.evaluate_views(1, 1)?;
        let out = vec![
            ("top1".to_string(), m.top1),
            ("top5".to_string(), m.top5),
            ("mean_class_accuracy".to_string(), m.mean_class_accuracy),
            ("skipped_videos".to_string(), m.skipped as f64),
        ];
        self.last = Some(m);
        Ok(out)
    }
}
