//! Helpers shared by the workspace integration tests: deterministic random
//! tensors, finite-difference gradient checks, and direct reference
//! implementations to test fast paths against.

pub mod toy;

use candle_core::{DType, Device, Result, Tensor, Var};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

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

/// A reference fixture written by one of the scripts in `tests/fixtures/`.
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

/// Every norm spec a model must build and train with.
pub const NORM_SPECS: [&str; 10] = [
    "bn",
    "gn",
    "ln",
    "in",
    "bcn",
    "bcn-est",
    "none",
    "gn+ws",
    "bcn+ws",
    "bcn-est+ws",
];

/// Variable names and shapes of a torchvision model, from
/// `fixtures/<file>` (written by `fixtures/make_torchvision_names.py`).
pub fn torchvision_variables(file: &str) -> std::collections::BTreeMap<String, Vec<usize>> {
    let path = format!("{}/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let shape = match f[2] {
                "" => vec![],
                dims => dims.split(',').map(|d| d.parse().unwrap()).collect(),
            };
            (f[1].to_string(), shape)
        })
        .collect()
}

/// A model made by `make` on a fresh f32 CPU `VarMap`, with a factory for
/// `spec` (GN and BCN with `groups` groups).
pub fn build_model<M, E: std::fmt::Debug>(
    spec: &str,
    groups: usize,
    make: impl FnOnce(&wsbcn_nn::LayerFactory, candle_nn::VarBuilder) -> std::result::Result<M, E>,
) -> (candle_nn::VarMap, M) {
    let vm = candle_nn::VarMap::new();
    // Seeded, so that tests that train the model are deterministic.
    let vb = wsbcn_nn::seeded_var_builder(&vm, 0, DType::F32, &Device::Cpu);
    let f = wsbcn_nn::LayerFactory::new(&wsbcn_nn::NormConfig {
        spec: spec.into(),
        groups,
        ..wsbcn_nn::NormConfig::default()
    })
    .unwrap();
    let model = make(&f, vb).unwrap();
    (vm, model)
}

/// Every variable of `vm`, by name, with its shape.
pub fn variable_shapes(vm: &candle_nn::VarMap) -> std::collections::BTreeMap<String, Vec<usize>> {
    let data = vm.data().lock().unwrap();
    data.iter()
        .map(|(n, v)| (n.clone(), v.dims().to_vec()))
        .collect()
}

/// Asserts that `vm` holds exactly the variables (names and shapes) of the
/// torchvision model listed in `fixtures/<file>`, and that the optimizer
/// trains `params` values, torchvision's parameter count.
pub fn assert_torchvision_layout(vm: &candle_nn::VarMap, file: &str, params: usize) {
    let want = torchvision_variables(file);
    assert_eq!(variable_shapes(vm), want, "{file}: variables");
    assert_eq!(
        trainable_count(vm),
        params,
        "{file}: parameter count (torchvision's)"
    );
}

/// Parameters in the weights of convolutions and linear layers (every
/// variable of rank 2 or more): what must not change with the norm.
pub fn weight_parameters(vm: &candle_nn::VarMap) -> usize {
    vm.all_vars()
        .iter()
        .filter(|v| v.rank() >= 2)
        .map(|v| v.elem_count())
        .sum()
}

/// How many values the optimizer trains (running statistics excluded).
pub fn trainable_count(vm: &candle_nn::VarMap) -> usize {
    let cfg = wsbcn_train::SgdConfig::default();
    wsbcn_train::param_groups(vm, &cfg)
        .iter()
        .flat_map(|g| g.params.iter())
        .map(|p| p.var.elem_count())
        .sum()
}

/// Writes an IDX file (big-endian dims, unsigned bytes).
pub fn write_idx(path: &Path, dims: &[u32], data: &[u8]) {
    let mut bytes = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

/// Stand-in Fashion-MNIST IDX files in the folder `mnist`: garment `i` has
/// class `i % 10` and is the rectangle x 6..22, y 4..24 at intensity 200,
/// `hollow` ones black inside x 9..19, y 7..21.
pub fn stand_in_mnist(mnist: &Path, hollow: bool) -> PathBuf {
    std::fs::create_dir_all(mnist).unwrap();
    for (stem, n) in [("train", 20usize), ("t10k", 10)] {
        let mut pixels = vec![0u8; n * 784];
        for i in 0..n {
            for y in 4..24 {
                for x in 6..22 {
                    let inside = (9..19).contains(&x) && (7..21).contains(&y);
                    pixels[i * 784 + y * 28 + x] = if hollow && inside { 0 } else { 200 };
                }
            }
        }
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        write_idx(
            &mnist.join(format!("{stem}-images-idx3-ubyte")),
            &[n as u32, 28, 28],
            &pixels,
        );
        write_idx(
            &mnist.join(format!("{stem}-labels-idx1-ubyte")),
            &[n as u32],
            &labels,
        );
    }
    mnist.to_path_buf()
}

/// A tiny Fashion-SSv2 tree in `dir/ssv2` (9 training and 9 validation
/// videos of 6-9 frames at 40x40, from [`stand_in_mnist`] garments);
/// returns its folder.
pub fn tiny_fashion_ssv2(dir: &Path) -> PathBuf {
    let mnist = stand_in_mnist(&dir.join("mnist"), false);
    let cfg = wsbcn_data::fashion_ssv2::FashionSsv2Config {
        size: 40,
        frames: (6, 9),
        train: 9,
        val: 9,
        scale: (0.7, 0.75),
        ..Default::default()
    };
    let root = dir.join("ssv2");
    wsbcn_data::fashion_ssv2::generate_ssv2(&mnist, &root, &cfg).unwrap();
    root
}

/// A tiny Fashion-VOC tree in `dir/voc` (8 training and 4 validation
/// images of 32x32); returns its `VOCdevkit/VOC2012` folder.
pub fn tiny_fashion_voc(dir: &Path) -> PathBuf {
    let mnist = stand_in_mnist(&dir.join("mnist-voc"), false);
    let cfg = wsbcn_data::fashion_voc::FashionVocConfig {
        size: 32,
        train: 8,
        val: 4,
        garments: (1, 2),
        scale: (1.0, 1.1),
        max_overlap: 1.0,
        classes: wsbcn_data::fashion_voc::ClassSet::Fine,
        seed: 0,
    };
    wsbcn_data::fashion_voc::generate(&mnist, &dir.join("voc"), &cfg).unwrap()
}
