//! Per-iteration learning-rate schedules, with an optional linear warmup in
//! front of any of them, and the estimated-BN moving speed derived from it.
//!
//! With base rate `lr0`, iteration `t` of `T` (0-based):
//!
//! ```text
//! constant:   lr0
//! poly:       lr0 (1 - t / T)^power                     (DeepLab; mmcv adds min_lr)
//! step:       lr0 gamma^floor(t / step_size)
//! multi-step: lr0 gamma^(number of milestones <= t)
//! cosine:     min_lr + (lr0 - min_lr) (1 + cos(pi t / T)) / 2
//! warmup (t < warmup_iters, mmcv's linear form):
//!             lr(t) (1 - (1 - t / warmup_iters) (1 - warmup_ratio))
//! ```

use serde::{Deserialize, Serialize};

/// The decay rule of a schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Decay {
    /// No decay.
    Constant,
    /// Polynomial decay to `min_lr`.
    Poly {
        /// The exponent (0.9 in DeepLab).
        power: f64,
        /// The floor.
        #[serde(default)]
        min_lr: f64,
    },
    /// Multiply by `gamma` every `step_size` iterations.
    Step {
        /// Iterations between decays.
        step_size: u64,
        /// Factor at each decay.
        gamma: f64,
    },
    /// Multiply by `gamma` at each milestone.
    MultiStep {
        /// Iterations at which to decay.
        milestones: Vec<u64>,
        /// Factor at each milestone.
        gamma: f64,
    },
    /// Half-cosine to `min_lr`.
    Cosine {
        /// The floor.
        #[serde(default)]
        min_lr: f64,
    },
}

/// The schedule section of a config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// The decay rule.
    pub decay: Decay,
    /// Iterations of linear warmup (0: none).
    pub warmup_iters: u64,
    /// Fraction of the rate at which warmup starts.
    pub warmup_ratio: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            decay: Decay::Poly {
                power: 0.9,
                min_lr: 0.0,
            },
            warmup_iters: 0,
            warmup_ratio: 0.1,
        }
    }
}

impl ScheduleConfig {
    /// Checks the ranges, naming the offending key.
    pub fn validate(&self) -> std::result::Result<(), (String, String)> {
        let bad = |k: &str, m: String| Err((k.to_string(), m));
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return bad(
                "warmup_ratio",
                format!("must lie in [0, 1], got {}", self.warmup_ratio),
            );
        }
        match &self.decay {
            Decay::Poly { power, .. } if power.is_nan() || *power < 0.0 => {
                bad("decay.power", format!("must be >= 0, got {power}"))
            }
            Decay::Step { step_size: 0, .. } => bad("decay.step_size", "must be >= 1".into()),
            Decay::Step { gamma, .. } | Decay::MultiStep { gamma, .. }
                if gamma.is_nan() || *gamma <= 0.0 =>
            {
                bad("decay.gamma", format!("must be > 0, got {gamma}"))
            }
            _ => Ok(()),
        }
    }

    /// The same schedule for a run of `to` steps instead of `from`: every
    /// length in steps (warmup, step size, milestones) keeps its fraction
    /// of the run.
    pub fn rescaled(&self, from: u64, to: u64) -> Self {
        let k = |n: u64| (n as f64 * to as f64 / from.max(1) as f64).round() as u64;
        let decay = match &self.decay {
            Decay::Step { step_size, gamma } => Decay::Step {
                step_size: k(*step_size).max(1),
                gamma: *gamma,
            },
            Decay::MultiStep { milestones, gamma } => Decay::MultiStep {
                milestones: milestones.iter().map(|&m| k(m)).collect(),
                gamma: *gamma,
            },
            d => d.clone(),
        };
        Self {
            decay,
            warmup_iters: k(self.warmup_iters),
            warmup_ratio: self.warmup_ratio,
        }
    }

    /// The learning rate at iteration `t` of `total`, from base rate `lr0`.
    pub fn lr(&self, lr0: f64, t: u64, total: u64) -> f64 {
        let frac = if total == 0 {
            0.0
        } else {
            (t.min(total) as f64) / total as f64
        };
        let lr = match &self.decay {
            Decay::Constant => lr0,
            Decay::Poly { power, min_lr } => (lr0 - min_lr) * (1.0 - frac).powf(*power) + min_lr,
            Decay::Step { step_size, gamma } => lr0 * gamma.powi((t / step_size) as i32),
            Decay::MultiStep { milestones, gamma } => {
                lr0 * gamma.powi(milestones.iter().filter(|&&m| m <= t).count() as i32)
            }
            Decay::Cosine { min_lr } => {
                min_lr + (lr0 - min_lr) * (1.0 + (std::f64::consts::PI * frac).cos()) / 2.0
            }
        };
        if t < self.warmup_iters {
            let k = 1.0 - (1.0 - t as f64 / self.warmup_iters as f64) * (1.0 - self.warmup_ratio);
            lr * k
        } else {
            lr
        }
    }
}

/// How the estimated-BN moving speed `r` follows training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum MovingSpeedSchedule {
    /// A fixed `r`.
    Constant {
        /// The moving speed.
        r: f64,
    },
    /// The estimates move as fast as the weights (the paper ties `r` to
    /// the learning-rate schedule): `r = min(1, factor * lr)` at the batch
    /// the factor is for; at `batch_ratio` times that batch (a
    /// comparison's linearly scaled rate), one step stands for
    /// `batch_ratio` steps of the reference batch, so
    /// `r = 1 - (1 - min(1, factor * lr / batch_ratio))^batch_ratio`: the
    /// same moving average per sample at every batch.
    LrProportional {
        /// The factor on the current learning rate.
        factor: f64,
        /// This run's batch over the batch `factor` is for (1: the same).
        #[serde(default = "one")]
        batch_ratio: f64,
    },
}

fn one() -> f64 {
    1.0
}

impl Default for MovingSpeedSchedule {
    /// `r = 0`: the estimates stay at their start, the official code's
    /// default and the best-supported rule of the moving-speed study in
    /// `crates/nn/README.md` (better than `r = 10 lr` at batches 1 and 2 on
    /// the comparisons' segmentation task, 10 seeds each).
    fn default() -> Self {
        Self::Constant { r: 0.0 }
    }
}

impl MovingSpeedSchedule {
    /// `r` for the current learning rate, in `[0, 1]`.
    pub fn r(&self, lr: f64) -> f64 {
        match self {
            Self::Constant { r } => r.clamp(0.0, 1.0),
            Self::LrProportional {
                factor,
                batch_ratio,
            } => {
                let k = batch_ratio.max(f64::MIN_POSITIVE);
                let per_reference_step = (factor * lr / k).clamp(0.0, 1.0);
                if k == 1.0 {
                    per_reference_step
                } else {
                    (1.0 - (1.0 - per_reference_step).powf(k)).clamp(0.0, 1.0)
                }
            }
        }
    }

    /// The same schedule at `ratio` times the batch it was set for, with
    /// the learning rate scaled linearly (see [`Self::LrProportional`]); a
    /// constant `r` stays as it is.
    pub fn at_batch_ratio(&self, ratio: f64) -> Self {
        match self {
            Self::LrProportional {
                factor,
                batch_ratio,
            } => Self::LrProportional {
                factor: *factor,
                batch_ratio: batch_ratio * ratio,
            },
            c => c.clone(),
        }
    }
}
