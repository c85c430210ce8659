//! The segmentation task the training engine runs: VOC-layout data, the
//! DeepLabV3 model, per-pixel cross-entropy (plus the weighted auxiliary
//! loss), and evaluation to mIoU on the validation split, on whole images
//! or with a sliding window.

use crate::augment::{eval_sample, train_sample, AugmentConfig, SegSample};
pub use crate::deeplab::EvalMode;
use crate::deeplab::{DeepLabConfig, DeepLabV3};
use crate::metrics::{ConfusionMatrix, SegMetrics};
use crate::voc::{VocSplit, IGNORE};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use wsbcn_nn::{seeded_var_builder, LayerFactory};
use wsbcn_train::{
    pixel_cross_entropy, CheckSections, Dataset, PretrainedConfig, RunConfig, Task, TaskKind,
};

/// The most input pixels [`SegTask::evaluate_split`] stacks into one
/// forward pass, as consecutive validation images of one size: 32 images
/// of 32x32, where a single small image's pass is mostly per-op overhead
/// (5,000 such images: 2.5 s one per pass, 1.3 s batched, one thread,
/// one run each, process start included); a single image on
/// full-size VOC (500x375), so its activations do not grow.
pub const EVAL_PIXELS: usize = 32 * 32 * 32;

/// The data section of a config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegDataConfig {
    /// The `VOCdevkit` folder (or its `VOC2012` folder).
    pub root: PathBuf,
    /// Training split (`train`, `train_aug`, ...).
    pub train_split: String,
    /// Validation split.
    pub val_split: String,
    /// Evaluate on at most this many validation images (0: all).
    pub val_limit: usize,
    /// Training augmentation and normalization.
    pub augment: AugmentConfig,
    /// Evaluation mode.
    pub eval: EvalMode,
}

impl Default for SegDataConfig {
    fn default() -> Self {
        Self {
            root: PathBuf::from("data/VOCdevkit"),
            train_split: "train_aug".into(),
            val_split: "val".into(),
            val_limit: 0,
            augment: AugmentConfig::default(),
            eval: EvalMode::Whole,
        }
    }
}

/// A whole segmentation config file: the engine's layout
/// ([`RunConfig`]) with DeepLabV3 as the model and VOC-layout data.
pub type SegConfig = RunConfig<DeepLabConfig, SegDataConfig>;

impl CheckSections<DeepLabConfig> for SegDataConfig {
    fn check(&self, _model: &DeepLabConfig) -> std::result::Result<(), (String, String)> {
        if self.augment.crop == 0 {
            return Err(("data.augment.crop".into(), "must be at least 1".into()));
        }
        if let EvalMode::Slide { window, stride } = self.eval {
            if window == 0 || stride == 0 || stride > window {
                return Err((
                    "data.eval".into(),
                    format!("window {window} and stride {stride}: need 0 < stride <= window"),
                ));
            }
        }
        Ok(())
    }
}

/// The segmentation task kind: what the engine's skeleton trains and
/// restores ([`wsbcn_train::train`], [`wsbcn_train::cli`]).
pub struct Segmentation;

impl TaskKind for Segmentation {
    const NAME: &'static str = "segmentation";
    type Model = DeepLabConfig;
    type Data = SegDataConfig;
    type Task = SegTask;
    type TrainSet = VocTrainSet;

    fn build(config: &SegConfig, device: &Device) -> Result<SegTask> {
        SegTask::new(config, device)
    }

    fn train_set(task: &mut SegTask) -> Result<Arc<VocTrainSet>> {
        task.train_set()
    }

    fn pretrained(model: &DeepLabConfig) -> Option<(&PretrainedConfig, &'static str)> {
        let p = model.pretrained.as_ref()?;
        Some((p, model.backbone_prefix()))
    }
}

/// The training split as a data set of augmented samples.
pub struct VocTrainSet {
    split: VocSplit,
    augment: AugmentConfig,
}

impl VocTrainSet {
    /// Training samples of `split`, augmented by `augment`.
    pub fn new(split: VocSplit, augment: AugmentConfig) -> Self {
        Self { split, augment }
    }
}

impl Dataset for VocTrainSet {
    type Sample = SegSample;

    fn len(&self) -> usize {
        self.split.len()
    }

    fn get(&self, index: usize, rng: &mut StdRng) -> wsbcn_train::Result<SegSample> {
        let item = self.split.read(index)?;
        Ok(train_sample(&item.image, &item.label, &self.augment, rng))
    }
}

/// Stacks samples of one size into `(N, 3, H, W)` and `(N, H, W)` labels.
pub fn collate(batch: &[SegSample], device: &Device) -> Result<(Tensor, Tensor)> {
    let first = batch
        .first()
        .ok_or_else(|| Error::Config("empty batch".into()))?;
    let (h, w) = (first.h, first.w);
    if batch.iter().any(|s| (s.h, s.w) != (h, w)) {
        return Err(Error::Config("a batch mixes sample sizes".into()));
    }
    let n = batch.len();
    let pixels: Vec<f32> = batch.iter().flat_map(|s| s.image.iter().copied()).collect();
    let labels: Vec<u32> = batch
        .iter()
        .flat_map(|s| s.label.iter().map(|&v| v as u32))
        .collect();
    Ok((
        Tensor::from_vec(pixels, (n, 3, h, w), device)?,
        Tensor::from_vec(labels, (n, h, w), device)?,
    ))
}

/// The segmentation task (see the module docs).
pub struct SegTask {
    varmap: VarMap,
    factory: LayerFactory,
    model: DeepLabV3,
    config: SegConfig,
    val: VocSplit,
    device: Device,
    /// The metrics of the last evaluation.
    pub last: Option<SegMetrics>,
}

impl SegTask {
    /// Builds the model (initialised from the config's seed) and opens the
    /// validation split.
    pub fn new(config: &SegConfig, device: &Device) -> Result<Self> {
        let factory = LayerFactory::new(&config.norm)?;
        let varmap = VarMap::new();
        let vb = seeded_var_builder(&varmap, config.train.seed, DType::F32, device);
        let model = DeepLabV3::new(&config.model, &factory, vb)?;
        let val = VocSplit::open(
            &config.data.root,
            &config.data.val_split,
            config.model.num_classes,
        )?;
        Ok(Self {
            varmap,
            factory,
            model,
            config: config.clone(),
            val,
            device: device.clone(),
            last: None,
        })
    }

    /// The training split as a data set.
    pub fn train_set(&self) -> Result<Arc<VocTrainSet>> {
        let split = VocSplit::open(
            &self.config.data.root,
            &self.config.data.train_split,
            self.config.model.num_classes,
        )?;
        Ok(Arc::new(VocTrainSet::new(
            split,
            self.config.data.augment.clone(),
        )))
    }

    /// The model.
    pub fn model(&self) -> &DeepLabV3 {
        &self.model
    }

    /// Logits `(K, H, W)` of one evaluation sample.
    pub fn predict_logits(&self, sample: &SegSample) -> Result<Tensor> {
        Ok(self
            .predict_batch_logits(std::slice::from_ref(sample))?
            .squeeze(0)?)
    }

    /// Logits `(N, K, H, W)` of `N >= 1` evaluation samples of one size
    /// `(H, W)`, in one forward pass per window. In evaluation every norm
    /// uses per-sample or stored statistics, so each sample's logits are
    /// those of [`Self::predict_logits`] (up to the order of float sums).
    pub fn predict_batch_logits(&self, samples: &[SegSample]) -> Result<Tensor> {
        let first = samples
            .first()
            .ok_or_else(|| Error::Config("no samples to predict".into()))?;
        let (h, w) = (first.h, first.w);
        if samples.iter().any(|s| (s.h, s.w) != (h, w)) {
            return Err(Error::Config(
                "a prediction batch mixes sample sizes".into(),
            ));
        }
        let pixels: Vec<f32> = samples
            .iter()
            .flat_map(|s| s.image.iter().copied())
            .collect();
        let x = Tensor::from_vec(pixels, (samples.len(), 3, h, w), &self.device)?;
        // WS kernels standardized once for the whole evaluation.
        let _fold = self.factory.fold_ws();
        self.model.infer(&x, &self.config.data.eval)
    }

    /// The predicted class of every pixel of one evaluation sample.
    pub fn predict(&self, sample: &SegSample) -> Result<Vec<u8>> {
        let mut one = self.predict_batch(std::slice::from_ref(sample))?;
        Ok(one.pop().unwrap_or_default())
    }

    /// The predicted class of every pixel of each of `N >= 1` evaluation
    /// samples of one size, from [`Self::predict_batch_logits`].
    pub fn predict_batch(&self, samples: &[SegSample]) -> Result<Vec<Vec<u8>>> {
        let pred: Vec<u32> = self
            .predict_batch_logits(samples)?
            .argmax(1)?
            .flatten_all()?
            .to_vec1()?;
        let pixels = samples.first().map_or(0, |s| s.h * s.w);
        if pred.len() != samples.len() * pixels {
            return Err(Error::Config(format!(
                "{} predicted pixels for {} images of {pixels}",
                pred.len(),
                samples.len()
            )));
        }
        Ok(pred
            .chunks_exact(pixels.max(1))
            .map(|p| p.iter().map(|&v| v as u8).collect())
            .collect())
    }

    /// Evaluates on the validation split (see [`SegDataConfig::val_limit`]),
    /// up to [`EVAL_PIXELS`] input pixels per forward pass.
    pub fn evaluate_split(&self) -> Result<SegMetrics> {
        self.evaluate_in_batches(EVAL_PIXELS)
    }

    /// [`Self::evaluate_split`] with consecutive validation images of one
    /// size stacked into a forward pass while they hold at most
    /// `max_pixels` input pixels (always at least one image). On several
    /// ranks each scores every `size`-th image from its rank on, and the
    /// confusion matrices are summed over the ranks, so the metrics are
    /// those of the whole split, exactly.
    pub fn evaluate_in_batches(&self, max_pixels: usize) -> Result<SegMetrics> {
        let _fold = self.factory.fold_ws();
        let mut cm = ConfusionMatrix::new(self.config.model.num_classes);
        let world = wsbcn_dist::world();
        let n = match self.config.data.val_limit {
            0 => self.val.len(),
            l => l.min(self.val.len()),
        };
        let mut pending: Vec<SegSample> = vec![];
        let mut flush = |batch: &mut Vec<SegSample>| -> Result<()> {
            if batch.is_empty() {
                return Ok(());
            }
            for (sample, p) in batch.iter().zip(self.predict_batch(batch)?) {
                cm.add(&sample.label, &p)?;
            }
            batch.clear();
            Ok(())
        };
        for i in (world.rank()..n).step_by(world.size()) {
            let item = self.val.read(i)?;
            let sample = eval_sample(&item.image, &item.label, &self.config.data.augment);
            if pending.first().is_some_and(|f| {
                (f.h, f.w) != (sample.h, sample.w)
                    || (pending.len() + 1) * sample.h * sample.w > max_pixels
            }) {
                flush(&mut pending)?;
            }
            pending.push(sample);
        }
        flush(&mut pending)?;
        cm.all_reduce(world);
        Ok(cm.metrics())
    }
}

impl Task for SegTask {
    type Sample = SegSample;

    fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    fn layers(&self) -> Option<&LayerFactory> {
        Some(&self.factory)
    }

    fn loss(&mut self, batch: Vec<SegSample>) -> wsbcn_train::Result<Tensor> {
        let (x, y) = collate(&batch, &self.device)?;
        let out = self.model.forward_t(&x, true)?;
        let mut loss = pixel_cross_entropy(&out.logits, &y, IGNORE as u32, None)?;
        if let Some(aux) = &out.aux {
            let aux_loss = pixel_cross_entropy(aux, &y, IGNORE as u32, None)?;
            loss = (loss + (aux_loss * self.config.model.aux_weight)?)?;
        }
        Ok(loss)
    }

    fn evaluate(&mut self) -> wsbcn_train::Result<Vec<(String, f64)>> {
        let m = self.evaluate_split()?;
        let out = vec![
            ("miou".to_string(), m.miou),
            ("pixel_accuracy".to_string(), m.pixel_accuracy),
            ("mean_class_accuracy".to_string(), m.mean_class_accuracy),
        ];
        self.last = Some(m);
        Ok(out)
    }
}
