//! What the tests of every wsbcn crate share: deterministic random tensors,
//! finite-difference gradient checks, direct reference implementations to
//! test fast paths against, the PyTorch reference fixtures in `fixtures/`
//! (with the scripts that write them), temporary folders and stand-in
//! Fashion-MNIST files (`files`), and the check of the task binaries'
//! shared command line (`cli`).
//!
//! With the `models` feature (it builds the training engine, so HDF5): the
//! model checks against torchvision's variable lists (`models`) and a toy
//! task for engine tests (`toy`). Without it, this crate needs only candle
//! and `wsbcn-nn`, so the layer tests build neither FFmpeg nor HDF5.

pub mod cli;
pub mod files;
#[cfg(feature = "models")]
pub mod models;
#[cfg(feature = "models")]
pub mod toy;

use candle_core::{DType, Device, Result, Tensor, Var};
use std::collections::HashMap;

pub use files::{fresh_dir, stand_in_mnist, write_idx};

/// A tiny deterministic generator (SplitMix64), so fixtures and checks do
/// not depend on candle's unseeded CPU RNG.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// A tensor of standard normals with the given shape and dtype.
    pub fn randn(&mut self, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| self.normal()).collect();
        Tensor::from_vec(v, shape, device)?.to_dtype(dtype)
    }
}

/// `sum(y * r)` for a fixed random `r`: a scalar loss whose gradient w.r.t.
/// `y` is `r`, so every output element is checked.
pub fn probe_loss(y: &Tensor, seed: u64) -> Result<Tensor> {
    let r = Rng::new(seed).randn(y.dims(), y.dtype(), y.device())?;
    (y * r)?.sum_all()
}

/// Compares analytic gradients of the scalar `loss()` w.r.t. `vars` with
/// central finite differences (step `h`), on at most `max_elems` elements of
/// each variable spread over the tensor. Fails with the first mismatch above
/// `tol * (1 + |numeric|)`. Call with f64 variables.
pub fn check_grads<F>(
    loss: F,
    vars: &[(&str, &Var)],
    h: f64,
    tol: f64,
    max_elems: usize,
) -> Result<()>
where
    F: Fn() -> Result<Tensor>,
{
    let grads = loss()?.backward()?;
    for (name, var) in vars {
        let shape = var.dims().to_vec();
        let base: Vec<f64> = var.as_tensor().flatten_all()?.to_vec1()?;
        let analytic: Vec<f64> = match grads.get(var.as_tensor()) {
            Some(g) => g.flatten_all()?.to_vec1()?,
            None => vec![0.0; base.len()],
        };
        let step = (base.len() / max_elems.max(1)).max(1);
        for i in (0..base.len()).step_by(step) {
            let eval = |delta: f64| -> Result<f64> {
                let mut v = base.clone();
                v[i] += delta;
                var.set(&Tensor::from_vec(v, shape.as_slice(), var.device())?)?;
                loss()?.to_scalar::<f64>()
            };
            let numeric = (eval(h)? - eval(-h)?) / (2.0 * h);
            var.set(&Tensor::from_vec(
                base.clone(),
                shape.as_slice(),
                var.device(),
            )?)?;
            let a = analytic[i];
            if (a - numeric).abs() > tol * (1.0 + numeric.abs()) {
                candle_core::bail!(
                    "gradient of `{name}` at flat index {i}: analytic {a:.10e}, numeric {numeric:.10e}"
                );
            }
        }
    }
    Ok(())
}

/// Largest absolute difference between two tensors of the same shape.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    if a.dims() != b.dims() {
        candle_core::bail!("shapes differ: {:?} vs {:?}", a.dims(), b.dims());
    }
    (a.to_dtype(DType::F64)? - b.to_dtype(DType::F64)?)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f64>()
}

/// Direct 3D convolution by its definition, for any geometry:
/// `y[n, o, t, h, w] = sum_{c, i, j, k} x[n, g*C/g + c, t*st + i*dt - pt, ...] w[o, c, i, j, k]`.
/// `x: (N, C, T, H, W)`, `w: (O, C/g, kt, kh, kw)`; 2D callers add a unit T axis.
pub fn direct_conv3d(
    x: &Tensor,
    w: &Tensor,
    stride: [usize; 3],
    padding: [usize; 3],
    dilation: [usize; 3],
    groups: usize,
) -> Result<Tensor> {
    let (n, c, t, h, wd) = x.dims5()?;
    let (o, cg, kt, kh, kw) = w.dims5()?;
    let xs: Vec<f64> = x.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let ws: Vec<f64> = w.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let out = |i: usize, k: usize, a: usize| {
        (i + 2 * padding[a] - dilation[a] * (k - 1) - 1) / stride[a] + 1
    };
    let (to, ho, wo) = (out(t, kt, 0), out(h, kh, 1), out(wd, kw, 2));
    let og = o / groups;
    let mut y = vec![0.0; n * o * to * ho * wo];
    for b in 0..n {
        for oc in 0..o {
            let g = oc / og;
            for ot in 0..to {
                for oh in 0..ho {
                    for ow in 0..wo {
                        let mut acc = 0.0;
                        for ci in 0..cg {
                            let ic = g * cg + ci;
                            for i in 0..kt {
                                let it = (ot * stride[0] + i * dilation[0]) as isize
                                    - padding[0] as isize;
                                if it < 0 || it >= t as isize {
                                    continue;
                                }
                                for j in 0..kh {
                                    let ih = (oh * stride[1] + j * dilation[1]) as isize
                                        - padding[1] as isize;
                                    if ih < 0 || ih >= h as isize {
                                        continue;
                                    }
                                    for k in 0..kw {
                                        let iw = (ow * stride[2] + k * dilation[2]) as isize
                                            - padding[2] as isize;
                                        if iw < 0 || iw >= wd as isize {
                                            continue;
                                        }
                                        let xi = (((b * c + ic) * t + it as usize) * h
                                            + ih as usize)
                                            * wd
                                            + iw as usize;
                                        let wi = (((oc * cg + ci) * kt + i) * kh + j) * kw + k;
                                        acc += xs[xi] * ws[wi];
                                    }
                                }
                            }
                        }
                        y[(((b * o + oc) * to + ot) * ho + oh) * wo + ow] = acc;
                    }
                }
            }
        }
    }
    Tensor::from_vec(y, (n, o, to, ho, wo), x.device())?.to_dtype(x.dtype())
}

/// A reference fixture written by one of the scripts in this crate's
/// `fixtures/`.
pub struct Fixture(HashMap<String, Tensor>);

impl Fixture {
    fn load(name: &str) -> Self {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let map = candle_core::safetensors::load(&path, &Device::Cpu)
            .unwrap_or_else(|e| panic!("reading the reference fixture {path}: {e}"));
        Self(map)
    }

    /// `nn_reference.safetensors` (`make_nn_reference.py`).
    pub fn nn() -> Self {
        Self::load("nn_reference.safetensors")
    }

    /// `train_reference.safetensors` (`make_train_reference.py`).
    pub fn train() -> Self {
        Self::load("train_reference.safetensors")
    }

    /// The tensor stored under `key`; panics naming the key if absent.
    pub fn get(&self, key: &str) -> &Tensor {
        self.0
            .get(key)
            .unwrap_or_else(|| panic!("fixture has no `{key}`"))
    }

    /// Every `(name, tensor)` whose key starts with `prefix`, the prefix
    /// stripped, sorted by name.
    pub fn with_prefix(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut v: Vec<_> = self
            .0
            .iter()
            .filter_map(|(k, t)| k.strip_prefix(prefix).map(|n| (n.to_string(), t.clone())))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}
