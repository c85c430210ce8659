//! The config layout every task shares, one TOML file:
//!
//! ```toml
//! device = "cpu"   # or "cuda", "cuda:N"
//! [model]          # the task's model section (M)
//! [norm]           # every layer's normalization and conv weight mode (wsbcn-nn)
//! [data]           # the task's data section (D)
//! [train]          # the engine: steps, optimizer, schedule, loader
//! ```
//!
//! A task supplies `M` and `D`, and checks them together through
//! [`CheckSections`]; the engine checks `norm` and `train`.

use crate::config::{within, Validate};
use crate::{DeviceSpec, TrainConfig};
use serde::{Deserialize, Serialize};
use wsbcn_nn::{LayerFactory, NormConfig};

/// A task's whole config file (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig<M, D> {
    /// Where the run computes.
    pub device: DeviceSpec,
    /// The model.
    pub model: M,
    /// Normalization and conv weight mode of every layer.
    pub norm: NormConfig,
    /// Data.
    pub data: D,
    /// The engine.
    pub train: TrainConfig,
}

/// The check a task makes of its own sections: `Err((key, problem))` with
/// the dotted key from the file's root (`data.augment.crop`).
pub trait CheckSections<M> {
    /// Checks this data section against the model section.
    fn check(&self, model: &M) -> std::result::Result<(), (String, String)>;
}

impl<M, D: CheckSections<M>> Validate for RunConfig<M, D> {
    fn validate(&self) -> std::result::Result<(), (String, String)> {
        if let Err(e) = LayerFactory::new(&self.norm) {
            return Err(("norm".into(), e.to_string()));
        }
        self.data.check(&self.model)?;
        within("train", self.train.validate())
    }
}
