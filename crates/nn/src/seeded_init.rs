//! Deterministic parameter initialisation.
//!
//! candle cannot seed its CPU random generator (`Device::set_seed` fails on
//! CPU), so a `VarMap` initialises differently on every run. This backend
//! fills a `VarMap` from the same `Init` hints but draws each variable from
//! its own generator, seeded by `seed` and the variable's full name (FNV-1a):
//! the values depend on neither construction order nor threads, and are the
//! same on every device.

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// A `VarBuilder` that creates missing variables in `varmap`, initialised
/// deterministically from `seed` (see the module docs); variables already
/// present are returned as they are, after a shape check.
pub fn seeded_var_builder(
    varmap: &VarMap,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> VarBuilder<'static> {
    VarBuilder::from_backend(
        Box::new(SeededVarMap {
            varmap: varmap.clone(),
            seed,
        }),
        dtype,
        device.clone(),
    )
}

struct SeededVarMap {
    varmap: VarMap,
    seed: u64,
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Draws `shape` values for `init` from `rng`.
fn draw(init: &Init, shape: &Shape, rng: &mut StdRng) -> Vec<f64> {
    let n = shape.elem_count();
    let normal = |rng: &mut StdRng, mean: f64, std: f64| -> Vec<f64> {
        (0..n)
            .map(|_| {
                let z: f64 = StandardNormal.sample(rng);
                mean + std * z
            })
            .collect::<Vec<f64>>()
    };
    let uniform =
        |rng: &mut StdRng, lo: f64, up: f64| (0..n).map(|_| rng.random_range(lo..up)).collect();
    match *init {
        Init::Const(v) => vec![v; n],
        Init::Randn { mean, stdev } => normal(rng, mean, stdev),
        Init::Uniform { lo, up } if lo < up => uniform(rng, lo, up),
        Init::Uniform { lo, .. } => vec![lo; n],
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let std = non_linearity.gain() / (fan.for_shape(shape).max(1) as f64).sqrt();
            match dist {
                NormalOrUniform::Normal => normal(rng, 0.0, std),
                NormalOrUniform::Uniform => uniform(rng, -(3f64.sqrt()) * std, 3f64.sqrt() * std),
            }
        }
    }
}

impl SimpleBackend for SeededVarMap {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut data = self.varmap.data().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(var) = data.get(name) {
            if var.shape() != &shape {
                candle_core::bail!(
                    "variable `{name}` exists with shape {:?}, requested {:?}",
                    var.dims(),
                    shape.dims()
                );
            }
            return Ok(var.as_tensor().clone());
        }
        let mut rng = StdRng::seed_from_u64(self.seed ^ fnv1a(name));
        let values = draw(&init, &shape, &mut rng);
        let var = Var::from_tensor(&Tensor::from_vec(values, shape, dev)?.to_dtype(dtype)?)?;
        data.insert(name.to_string(), var.clone());
        Ok(var.as_tensor().clone())
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        candle_core::bail!(
            "`{name}`: a seeded VarMap creates variables with `get`, not `get_unchecked`"
        )
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap
            .data()
            .lock()
            .map(|d| d.contains_key(name))
            .unwrap_or(false)
    }
}
