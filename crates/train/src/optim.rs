//! SGD with momentum, Nesterov and weight decay, with PyTorch's semantics,
//! over parameter groups; gradient norms, clipping and accumulation.
//!
//! Per parameter `p` with gradient `g`, group weight decay `wd`, momentum
//! `m` and learning rate `lr` (the schedule's, times the group's multiplier):
//!
//! ```text
//! d = g + wd p
//! b = d                      (first step)     b = m b + d   (later steps)
//! d = d + m b   (Nesterov)   or   d = b      (plain momentum; no momentum: d)
//! p = p - lr d
//! ```

use crate::{Error, Result};
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use wsbcn_kernels::sgd;

/// Gradients by parameter name.
pub type Grads = BTreeMap<String, Tensor>;

/// The optimizer section of a config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SgdConfig {
    /// Base learning rate (the schedule scales it).
    pub lr: f64,
    /// Momentum `m` (0 disables it).
    pub momentum: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// Weight decay `wd` (L2, added to the gradient).
    pub weight_decay: f64,
    /// No weight decay on parameters with at most one dimension (norm
    /// weights and biases), as timm and mmcv's `norm_decay_mult = 0` do.
    pub no_decay_norm_and_bias: bool,
    /// Parameters whose names start with one of these get `head_lr_mult`.
    pub head_prefixes: Vec<String>,
    /// Learning-rate multiplier of the head parameters.
    pub head_lr_mult: f64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            lr: 0.01,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 1e-4,
            no_decay_norm_and_bias: true,
            head_prefixes: vec![],
            head_lr_mult: 1.0,
        }
    }
}

impl SgdConfig {
    /// Checks the ranges, naming the offending key.
    pub fn validate(&self) -> std::result::Result<(), (String, String)> {
        let bad = |k: &str, m: String| Err((k.to_string(), m));
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr", format!("must be a positive number, got {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad(
                "momentum",
                format!("must lie in [0, 1), got {}", self.momentum),
            );
        }
        if self.nesterov && self.momentum == 0.0 {
            return bad("nesterov", "needs a momentum above 0".into());
        }
        if self.weight_decay.is_nan() || self.weight_decay < 0.0 {
            return bad(
                "weight_decay",
                format!("must be >= 0, got {}", self.weight_decay),
            );
        }
        if self.head_lr_mult.is_nan() || self.head_lr_mult <= 0.0 {
            return bad(
                "head_lr_mult",
                format!("must be > 0, got {}", self.head_lr_mult),
            );
        }
        Ok(())
    }
}

/// A trainable variable and its name in the model's `VarMap`.
#[derive(Clone, Debug)]
pub struct Param {
    /// The `VarBuilder` path, e.g. `backbone.layer1.0.conv1.weight`.
    pub name: String,
    /// The variable.
    pub var: Var,
}

/// Parameters sharing a learning-rate multiplier and a weight decay.
#[derive(Clone, Debug)]
pub struct ParamGroup {
    /// The parameters.
    pub params: Vec<Param>,
    /// Multiplier on the scheduled learning rate.
    pub lr_mult: f64,
    /// Weight decay of the group.
    pub weight_decay: f64,
}

/// True for variables that are state, not parameters (running statistics).
pub fn is_state(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

/// Splits the trainable variables of `varmap` (all but running statistics),
/// sorted by name, into groups by `config`: decayed / not decayed, body /
/// head.
pub fn param_groups(varmap: &VarMap, config: &SgdConfig) -> Vec<ParamGroup> {
    let data = varmap.data().lock().unwrap_or_else(|p| p.into_inner());
    let mut named: Vec<(String, Var)> = data
        .iter()
        .filter(|(n, _)| !is_state(n))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let mut groups: BTreeMap<(bool, bool), Vec<Param>> = BTreeMap::new();
    for (name, var) in named {
        let head = config.head_prefixes.iter().any(|p| name.starts_with(p));
        let decay = !(config.no_decay_norm_and_bias && var.rank() <= 1);
        groups
            .entry((head, decay))
            .or_default()
            .push(Param { name, var });
    }
    groups
        .into_iter()
        .map(|((head, decay), params)| ParamGroup {
            params,
            lr_mult: if head { config.head_lr_mult } else { 1.0 },
            weight_decay: if decay { config.weight_decay } else { 0.0 },
        })
        .collect()
}

/// SGD over parameter groups (see the module docs).
#[derive(Debug)]
pub struct Sgd {
    groups: Vec<ParamGroup>,
    momentum: f64,
    nesterov: bool,
    buffers: HashMap<String, Tensor>,
}

impl Sgd {
    /// An optimizer over `groups` with `config`'s momentum and Nesterov flag.
    pub fn new(groups: Vec<ParamGroup>, config: &SgdConfig) -> Self {
        Self {
            groups,
            momentum: config.momentum,
            nesterov: config.nesterov,
            buffers: HashMap::new(),
        }
    }

    /// Every parameter, group by group.
    pub fn params(&self) -> impl Iterator<Item = &Param> {
        self.groups.iter().flat_map(|g| g.params.iter())
    }

    /// The gradients of every parameter in `store` (parameters without one
    /// are left out).
    pub fn grads(&self, store: &GradStore) -> Grads {
        self.params()
            .filter_map(|p| {
                store
                    .get(p.var.as_tensor())
                    .map(|g| (p.name.clone(), g.clone()))
            })
            .collect()
    }

    /// One step with the scheduled learning rate `lr`. Parameters without a
    /// gradient are not touched (their momentum does not decay either, as in
    /// PyTorch). On the CPU each parameter is updated in place in one pass
    /// (`wsbcn-kernels`' `sgd`); elsewhere through tensor ops.
    pub fn step(&mut self, grads: &Grads, lr: f64) -> Result<()> {
        for group in &self.groups {
            let update = sgd::WeightUpdate {
                lr: lr * group.lr_mult,
                weight_decay: group.weight_decay,
                momentum: self.momentum,
                nesterov: self.nesterov,
            };
            for p in &group.params {
                let Some(g) = grads.get(&p.name) else {
                    continue;
                };
                let w = p.var.as_tensor();
                let fused = match self.buffers.get(&p.name) {
                    Some(b) => sgd::supported(&[w, g, b]),
                    None => sgd::supported(&[w, g]),
                };
                if fused {
                    step_in_place(&mut self.buffers, &p.name, w, g, &update)?;
                } else {
                    step_with_ops(&mut self.buffers, p, g, &update)?;
                }
            }
        }
        Ok(())
    }

    /// The momentum buffers by parameter name (the optimizer's state).
    pub fn state(&self) -> &HashMap<String, Tensor> {
        &self.buffers
    }

    /// Restores momentum buffers saved by [`Sgd::state`]; each must belong
    /// to a parameter of the same shape.
    pub fn load_state(&mut self, state: HashMap<String, Tensor>) -> Result<()> {
        let shapes: HashMap<&str, &[usize]> = self
            .params()
            .map(|p| (p.name.as_str(), p.var.dims()))
            .collect();
        for (name, t) in &state {
            match shapes.get(name.as_str()) {
                Some(s) if *s == t.dims() => {}
                _ => {
                    return Err(Error::Invalid(format!(
                        "optimizer state `{name}` {:?} matches no parameter of the model",
                        t.dims()
                    )))
                }
            }
        }
        self.buffers = state;
        Ok(())
    }
}

/// The update of one parameter through [`sgd`]'s in-place ops.
fn step_in_place(
    buffers: &mut HashMap<String, Tensor>,
    name: &str,
    w: &Tensor,
    g: &Tensor,
    update: &sgd::WeightUpdate,
) -> Result<()> {
    if update.momentum == 0.0 {
        w.inplace_op3(g, g, update)?;
        return Ok(());
    }
    // A zero buffer makes the first update b = d.
    let b = match buffers.get(name) {
        Some(b) => b.clone(),
        None => {
            let b = w.zeros_like()?;
            buffers.insert(name.to_string(), b.clone());
            b
        }
    };
    let momentum = sgd::MomentumUpdate {
        momentum: update.momentum,
        weight_decay: update.weight_decay,
    };
    b.inplace_op3(g, w, &momentum)?;
    w.inplace_op3(g, &b, update)?;
    Ok(())
}

/// The update of one parameter through tensor ops (any device).
fn step_with_ops(
    buffers: &mut HashMap<String, Tensor>,
    p: &Param,
    g: &Tensor,
    update: &sgd::WeightUpdate,
) -> Result<()> {
    // Detached: the update must not join the autograd graph, or each
    // momentum buffer would hold every earlier step alive.
    let w = p.var.as_tensor().detach();
    let g = g.detach();
    let mut d = if update.weight_decay > 0.0 {
        (&g + w.affine(update.weight_decay, 0.0)?)?
    } else {
        g
    };
    if update.momentum > 0.0 {
        let b = match buffers.get(&p.name) {
            Some(b) => (b.affine(update.momentum, 0.0)? + &d)?,
            None => d.clone(),
        };
        d = if update.nesterov {
            (d + b.affine(update.momentum, 0.0)?)?
        } else {
            b.clone()
        };
        buffers.insert(p.name.clone(), b);
    }
    p.var.set(&(&w - d.affine(update.lr, 0.0)?)?)?;
    Ok(())
}

/// The global L2 norm of `grads`.
pub fn global_norm(grads: &Grads) -> Result<f64> {
    let mut sum = 0.0;
    for g in grads.values() {
        sum += if sgd::supported(&[g]) {
            sgd::squared_norm(g)?
        } else {
            g.to_dtype(DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?
        };
    }
    Ok(sum.sqrt())
}

/// Scales `grads` so that their global norm is at most `max_norm`, as
/// PyTorch's `clip_grad_norm_` does; returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut Grads, max_norm: f64) -> Result<f64> {
    let norm = global_norm(grads)?;
    let scale = max_norm / (norm + 1e-6);
    if norm.is_finite() && scale < 1.0 {
        for g in grads.values_mut() {
            *g = g.affine(scale, 0.0)?;
        }
    }
    Ok(norm)
}

/// Adds `grads` into `total` (gradient accumulation over micro-batches).
pub fn accumulate(total: &mut Grads, grads: Grads) -> Result<()> {
    for (name, g) in grads {
        let sum = match total.remove(&name) {
            Some(t) => (t + g)?,
            None => g,
        };
        total.insert(name, sum);
    }
    Ok(())
}

/// Divides every gradient by `k` (the mean over `k` accumulated micro-batches).
pub fn scale(grads: &mut Grads, factor: f64) -> Result<()> {
    for g in grads.values_mut() {
        *g = g.affine(factor, 0.0)?;
    }
    Ok(())
}
