//! A comparison: tasks x normalization variants x batch sizes x seeds, each
//! cell one training run, read from a TOML file such as `configs/quick.toml`:
//!
//! ```toml
//! name = "quick"
//! out = "runs/quick"          # default: runs/<name>
//! batch_sizes = [2]           # per variant unless it names its own
//! seeds = [0, 1, 2, 3, 4, 5]  # each cell takes the first seeds_per_cell
//! seeds_per_cell = 3          # optional (default: all the seeds)
//!
//! [budget]                    # optional: every cell sees the same samples
//! samples = 3000              # steps = samples / batch
//! reference_batch = 2         # lr = base lr x batch / reference_batch
//! warmup = 0.05               # linear warmup, fraction of each cell's steps
//! eval_at = [0.5, 0.9, 1.0]   # evaluations, fractions of each cell's steps
//! diags = 40                  # singularity / WS diagnostics per run
//! momentum_batch = 16         # optional: BN momentum for this batch, others
//!                             # average running statistics over equal samples
//!
//! [[tasks]]
//! name = "segmentation"       # also the run folder
//! kind = "segmentation"       # segmentation | video
//! config = "seg/fashion_voc_gn_ws.toml"   # relative to this file
//! set = ["train.data.workers=1"]          # overrides for every cell
//! data = "fashion-voc"        # built if missing: fashion-voc | fashion-voc-coarse-32 | fashion-ssv2 | fashion-ssv2-cmp
//! samples = 2400              # this task's budget, instead of budget.samples
//!
//! [[variants]]
//! name = "bn-large"           # the run folder
//! label = "BN, batch 16"      # legends and tables
//! norm = "bn"                 # the layer factory's spec
//! batch_sizes = [16]
//! seeds_per_cell = 6          # optional: this variant's cells take more
//! task_seeds_per_cell = { video = 8 }  # optional: per task, over the above
//! set = []                    # overrides for this variant's cells
//! ```
//!
//! Seeds are spent where the spread is: a variant whose cells vary more
//! over seeds (BN at batch 1) can run more of them, all from the one list,
//! so another seed set is one override (`--set 'seeds=[...]'`).
//!
//! A cell's run lives in `<out>/<task>/<variant>/b<batch>/s<seed>/`; the
//! comparison's identity (its name, the cell's task, variant, label, batch
//! and seed, and the resolved comparison file) is written into the run log,
//! so figures and reports are rebuilt from the logs alone.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use wsbcn_train::{DeviceSpec, Validate};

/// What a task trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    /// DeepLabV3 on VOC-layout data (`wsbcn-seg`); metric `miou`.
    Segmentation,
    /// 3D-conv ResNets on clips (`wsbcn-video`); metric `top1`.
    Video,
}

impl TaskKind {
    /// The evaluation metric compared across variants.
    pub fn metric(self) -> &'static str {
        match self {
            Self::Segmentation => "miou",
            Self::Video => "top1",
        }
    }

    /// The `task` attribute the task's runs write into their logs.
    pub fn log_name(self) -> &'static str {
        match self {
            Self::Segmentation => "segmentation",
            Self::Video => "video",
        }
    }
}

/// An embedded data set `wsbcn-compare` builds when it is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataKind {
    /// `wsbcn-data fashion-voc --out data/fashion-voc`.
    FashionVoc,
    /// The small Fashion-VOC of the comparisons: `wsbcn-data fashion-voc
    /// --out data/fashion-voc-coarse-32 --size 32 --garments 1,1 --scale
    /// 0.9,1.1 --val 5000 --classes coarse` (one garment per 32x32 image, 5
    /// garment classes, 5,000 validation images).
    #[serde(rename = "fashion-voc-coarse-32")]
    FashionVocCoarse32,
    /// `wsbcn-data fashion-ssv2 --out data/fashion-ssv2` and its two clip caches.
    FashionSsv2,
    /// The Fashion-SSv2 of the comparisons: `wsbcn-data fashion-ssv2 --out
    /// data/fashion-ssv2-cmp --val 1080 --frames 8,12` and its two clip
    /// caches.
    FashionSsv2Cmp,
}

/// One task of the grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Name (and run folder).
    pub name: String,
    /// What it trains.
    pub kind: TaskKind,
    /// The base config, relative to the comparison file.
    pub config: PathBuf,
    /// Overrides for every cell of the task.
    #[serde(default)]
    pub set: Vec<String>,
    /// The embedded data set to build if missing.
    #[serde(default)]
    pub data: Option<DataKind>,
    /// Training samples per cell of this task, instead of the budget's.
    #[serde(default)]
    pub samples: Option<u64>,
}

/// One normalization variant of the grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Name (and run folder).
    pub name: String,
    /// Label of legends and tables.
    pub label: String,
    /// The layer factory's spec (`bn`, `gn+ws`, `bcn-est+ws`, ...).
    pub norm: String,
    /// Batch sizes of this variant (default: the comparison's).
    #[serde(default)]
    pub batch_sizes: Option<Vec<usize>>,
    /// Seeds of each of this variant's cells, the first of
    /// [`Comparison::seeds`] (default: the comparison's `seeds_per_cell`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds_per_cell: Option<usize>,
    /// Seeds of this variant's cells on the named tasks, over
    /// `seeds_per_cell` (a variant's spread can differ by task).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub task_seeds_per_cell: BTreeMap<String, usize>,
    /// Overrides for this variant's cells (after the task's).
    #[serde(default)]
    pub set: Vec<String>,
}

/// Equal-sample training budgets across batch sizes: the protocol of
/// Goyal et al. (arXiv 1706.02677), linear scaling with a gradual warmup.
///
/// A cell of batch `B` trains `T = samples / B` steps at base rate
/// `lr0 = lr_ref B / reference_batch`, and every length of its schedule is a
/// fraction of `T`: the warmup is `warmup T` steps, step-decay points keep
/// their fraction of the base config's run, evaluations happen at
/// `eval_at` of `T`. So the schedule `lr_t = lr0 f(t / T)` has the same
/// shape `f` in every cell, and the sum of the rate over the steps,
/// `lr_ref (samples / reference_batch) mean(f)`, is the same for every
/// batch: each sample moves the weights by the same integrated rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Training samples per cell: steps = samples / batch (rounded).
    pub samples: u64,
    /// The batch the base config's learning rate is for; others scale it
    /// linearly (Goyal et al.'s rule).
    pub reference_batch: usize,
    /// Linear warmup, as a fraction of each cell's steps.
    #[serde(default = "default_warmup")]
    pub warmup: f64,
    /// Evaluation points, as fractions of each cell's steps (the end is
    /// always one).
    #[serde(default = "default_eval_at")]
    pub eval_at: Vec<f64>,
    /// Diagnostic measurements per run.
    #[serde(default = "default_diags")]
    pub diags: u64,
    /// The norm batch the BN momentum `m` of a cell's config (after its
    /// overrides) is for, if the running statistics are to average over
    /// equal samples: a cell whose norm layers see `B` samples per forward
    /// pass then updates them (BN's, and those of BCN's batch part) at
    /// `m_B = 1 - (1 - m)^(B / momentum_batch)`, so that in every cell a
    /// sample seen `s` samples ago weighs `(1 - m)^(s / momentum_batch)`.
    /// Unset: every cell keeps `m` (PyTorch's habit, under which the running
    /// averages of a batch-1 cell cover 16 times fewer samples than at
    /// batch 16).
    #[serde(default)]
    pub momentum_batch: Option<usize>,
}

impl Budget {
    /// The BN momentum of a cell of norm batch `batch`, from the momentum
    /// of its config (see [`Self::momentum_batch`]).
    pub fn momentum(&self, momentum: f64, batch: usize) -> f64 {
        match self.momentum_batch {
            Some(reference) if reference != batch => {
                1.0 - (1.0 - momentum).powf(batch as f64 / reference as f64)
            }
            _ => momentum,
        }
    }
}

fn default_warmup() -> f64 {
    0.05
}

fn default_eval_at() -> Vec<f64> {
    vec![0.25, 0.5, 0.75, 0.9, 1.0]
}

fn default_diags() -> u64 {
    40
}

/// A comparison (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    /// Name.
    pub name: String,
    /// Output folder (default `runs/<name>`).
    #[serde(default)]
    pub out: Option<PathBuf>,
    /// The device every cell trains on (`cpu`, `cuda`, `cuda:N`); unset,
    /// each task config's own `device` (cpu by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceSpec>,
    /// The data-parallel ranks the comparison is written for (its batch
    /// sizes are per rank, so a step takes `ranks x batch` samples);
    /// `wsbcn-compare` refuses to run it on another number. Unset: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranks: Option<usize>,
    /// Default batch sizes (per rank).
    pub batch_sizes: Vec<usize>,
    /// Seeds: every cell takes the first `seeds_per_cell` of them.
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// Seeds per cell, unless a variant sets its own (default: all of
    /// `seeds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds_per_cell: Option<usize>,
    /// Equal-sample budgets, if any.
    #[serde(default)]
    pub budget: Option<Budget>,
    /// The tasks.
    pub tasks: Vec<TaskSpec>,
    /// The variants.
    pub variants: Vec<Variant>,
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}

fn unique<'a>(names: impl Iterator<Item = &'a str>, what: &str) -> Result<(), (String, String)> {
    let mut seen = std::collections::BTreeSet::new();
    for n in names {
        let ok = !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err((
                what.into(),
                format!("`{n}`: names are folder names (letters, digits, - and _)"),
            ));
        }
        if !seen.insert(n) {
            return Err((what.into(), format!("`{n}` appears twice")));
        }
    }
    Ok(())
}

impl Validate for Comparison {
    fn validate(&self) -> Result<(), (String, String)> {
        if self.tasks.is_empty() || self.variants.is_empty() {
            return Err((
                "tasks".into(),
                "need at least one task and one variant".into(),
            ));
        }
        unique(self.tasks.iter().map(|t| t.name.as_str()), "tasks")?;
        unique(self.variants.iter().map(|v| v.name.as_str()), "variants")?;
        if self.seeds.is_empty() {
            return Err(("seeds".into(), "need at least one seed".into()));
        }
        let distinct: std::collections::BTreeSet<u64> = self.seeds.iter().copied().collect();
        if distinct.len() != self.seeds.len() {
            return Err(("seeds".into(), "a seed appears twice".into()));
        }
        for v in &self.variants {
            if let Some(t) = v
                .task_seeds_per_cell
                .keys()
                .find(|t| !self.tasks.iter().any(|task| &task.name == *t))
            {
                return Err((
                    format!("variants.{}.task_seeds_per_cell", v.name),
                    format!("`{t}` is not a task of this comparison"),
                ));
            }
        }
        let per_cell = std::iter::once(("seeds_per_cell".to_string(), self.seeds_per_cell)).chain(
            self.variants.iter().flat_map(|v| {
                std::iter::once((
                    format!("variants.{}.seeds_per_cell", v.name),
                    v.seeds_per_cell,
                ))
                .chain(v.task_seeds_per_cell.iter().map(|(t, n)| {
                    (
                        format!("variants.{}.task_seeds_per_cell.{t}", v.name),
                        Some(*n),
                    )
                }))
            }),
        );
        for (key, n) in per_cell {
            if let Some(n) = n.filter(|n| !(1..=self.seeds.len()).contains(n)) {
                return Err((
                    key,
                    format!("{n} seeds per cell, from a list of {}", self.seeds.len()),
                ));
            }
        }
        for v in &self.variants {
            let sizes = v.batch_sizes.as_ref().unwrap_or(&self.batch_sizes);
            if sizes.is_empty() || sizes.contains(&0) {
                return Err((
                    format!("variants.{}.batch_sizes", v.name),
                    "need batch sizes of at least 1".into(),
                ));
            }
            v.norm
                .parse::<wsbcn_nn::LayerSpec>()
                .map_err(|e| (format!("variants.{}.norm", v.name), e.to_string()))?;
        }
        if let Some(b) = &self.budget {
            if b.samples == 0 || b.reference_batch == 0 || b.momentum_batch == Some(0) {
                return Err((
                    "budget".into(),
                    "samples, reference_batch and momentum_batch must be at least 1".into(),
                ));
            }
            if !(0.0..1.0).contains(&b.warmup) {
                return Err((
                    "budget.warmup".into(),
                    format!("a fraction of the run in [0, 1), got {}", b.warmup),
                ));
            }
            if b.eval_at.len() < 2 {
                return Err((
                    "budget.eval_at".into(),
                    "at least two evaluation points: convergence is judged from the last two"
                        .into(),
                ));
            }
            if let Some(f) = b.eval_at.iter().find(|f| !(**f > 0.0 && **f <= 1.0)) {
                return Err((
                    "budget.eval_at".into(),
                    format!("fractions of the run in (0, 1], got {f}"),
                ));
            }
        }
        Ok(())
    }
}

/// One run of the grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    /// Index into [`Comparison::tasks`].
    pub task: usize,
    /// Index into [`Comparison::variants`].
    pub variant: usize,
    /// Samples per step.
    pub batch: usize,
    /// Seed.
    pub seed: u64,
}

impl Comparison {
    /// The output folder.
    pub fn out_dir(&self) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| Path::new("runs").join(&self.name))
    }

    /// The seeds of `variant`'s cells on `task`: the first `seeds_per_cell`
    /// of [`Comparison::seeds`], the variant's count for the task, else the
    /// variant's, else the comparison's.
    pub fn seeds_of(&self, task: &TaskSpec, variant: &Variant) -> &[u64] {
        let n = variant
            .task_seeds_per_cell
            .get(&task.name)
            .copied()
            .or(variant.seeds_per_cell)
            .or(self.seeds_per_cell)
            .unwrap_or(self.seeds.len());
        &self.seeds[..n.min(self.seeds.len())]
    }

    /// Every cell, task by task, variant by variant, batch by batch, seed by seed.
    pub fn cells(&self) -> Vec<Cell> {
        let mut cells = vec![];
        for (task, t) in self.tasks.iter().enumerate() {
            for (variant, v) in self.variants.iter().enumerate() {
                for &batch in v.batch_sizes.as_ref().unwrap_or(&self.batch_sizes) {
                    for &seed in self.seeds_of(t, v) {
                        cells.push(Cell {
                            task,
                            variant,
                            batch,
                            seed,
                        });
                    }
                }
            }
        }
        cells
    }

    /// The run folder of `cell`.
    pub fn cell_dir(&self, cell: &Cell) -> PathBuf {
        self.out_dir()
            .join(&self.tasks[cell.task].name)
            .join(&self.variants[cell.variant].name)
            .join(format!("b{}", cell.batch))
            .join(format!("s{}", cell.seed))
    }

    /// A short name of `cell` for messages.
    pub fn cell_name(&self, cell: &Cell) -> String {
        format!(
            "{}/{}/b{}/s{}",
            self.tasks[cell.task].name, self.variants[cell.variant].name, cell.batch, cell.seed
        )
    }

    /// The overrides of `cell`, applied to its task's base config in order:
    /// the task's, the cell's norm, batch and seed, then the variant's.
    pub fn cell_overrides(&self, cell: &Cell) -> Vec<String> {
        let (task, variant) = (&self.tasks[cell.task], &self.variants[cell.variant]);
        let mut set = task.set.clone();
        set.push(format!("norm.spec=\"{}\"", variant.norm));
        set.push(format!("train.data.batch_size={}", cell.batch));
        set.push(format!("train.seed={}", cell.seed));
        set.extend(variant.set.iter().cloned());
        set
    }
}
