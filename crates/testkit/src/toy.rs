//! A toy task for engine tests: a small factory-built conv net classifying
//! the orientation of a noisy bar in 12x12 images.

use candle_core::{DType, Device, Module, ModuleT, Tensor, D};
use candle_nn::VarMap;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wsbcn_nn::{
    conv, global_avg_pool, seeded_var_builder, Conv2d, ConvConfig, ConvGeometry, LayerFactory,
    Norm, NormConfig,
};
use wsbcn_train::{cross_entropy, Dataset, Result, Task};

const SIZE: usize = 12;

/// `n` bar images; image `i` is fixed by `(seed, i)`, augmentation adds
/// noise from the sample's generator.
pub struct Bars {
    pub n: usize,
    pub seed: u64,
}

/// One image (flattened 12x12) and its class.
pub type Sample = (Vec<f32>, u32);

impl Bars {
    fn image(&self, index: usize) -> Sample {
        let mut rng = StdRng::seed_from_u64(self.seed * 1_000_003 + index as u64);
        let class = rng.random_range(0..4usize);
        let (cy, cx) = (
            rng.random_range(3..9) as isize,
            rng.random_range(3..9) as isize,
        );
        let mut img = vec![0f32; SIZE * SIZE];
        for t in -2isize..=2 {
            let (dy, dx) = [(0, t), (t, 0), (t, t), (t, -t)][class];
            img[((cy + dy) as usize) * SIZE + (cx + dx) as usize] = 1.0;
        }
        (img, class as u32)
    }
}

impl Dataset for Bars {
    type Sample = Sample;

    fn len(&self) -> usize {
        self.n
    }

    fn get(&self, index: usize, rng: &mut StdRng) -> Result<Sample> {
        let (mut img, class) = self.image(index);
        for v in &mut img {
            *v += rng.random_range(-0.3..0.3);
        }
        Ok((img, class))
    }
}

/// Stacks samples into `(N, 1, 12, 12)` images and `(N,)` labels.
pub fn collate(batch: &[Sample], dev: &Device) -> Result<(Tensor, Tensor)> {
    let n = batch.len();
    let pixels: Vec<f32> = batch.iter().flat_map(|(p, _)| p.iter().copied()).collect();
    let labels: Vec<u32> = batch.iter().map(|(_, l)| *l).collect();
    Ok((
        Tensor::from_vec(pixels, (n, 1, SIZE, SIZE), dev)?,
        Tensor::from_vec(labels, n, dev)?,
    ))
}

/// The toy model and task.
pub struct ToyTask {
    varmap: VarMap,
    factory: LayerFactory,
    blocks: Vec<(Conv2d, Norm)>,
    head: Conv2d,
    eval: Vec<Sample>,
    dtype: DType,
    calls: u64,
    /// Make the loss of this loss call (0-based) NaN.
    pub nan_at_call: Option<u64>,
    /// Sleep this long in every loss call (to give a test time to kill a run).
    pub sleep_ms: u64,
}

impl ToyTask {
    /// A toy model built with `spec` (8 groups), initialised from `seed`.
    pub fn new(spec: &str, seed: u64) -> Result<Self> {
        Self::with_dtype(spec, seed, DType::F32)
    }

    /// [`Self::new`] computing in `dtype`.
    pub fn with_dtype(spec: &str, seed: u64, dtype: DType) -> Result<Self> {
        let dev = Device::Cpu;
        let cfg = NormConfig {
            spec: spec.into(),
            groups: 4,
            ..NormConfig::default()
        };
        let factory = LayerFactory::new(&cfg)?;
        let varmap = VarMap::new();
        let vb = seeded_var_builder(&varmap, seed, dtype, &dev);
        let mut blocks = vec![];
        for (i, (cin, cout, s)) in [(1, 8, 1), (8, 16, 2)].into_iter().enumerate() {
            let c = factory.conv(
                cin,
                cout,
                [3, 3],
                ConvGeometry::uniform(s, 1, 1),
                vb.pp(format!("conv{i}")),
            )?;
            blocks.push((c, factory.norm(cout, vb.pp(format!("norm{i}")))?));
        }
        let head = conv(16, 4, ConvConfig::new([1, 1]), vb.pp("head"))?;
        let data = Bars {
            n: 64,
            seed: seed + 1,
        };
        let eval = (0..64).map(|i| data.image(i)).collect();
        Ok(Self {
            varmap,
            factory,
            blocks,
            head,
            eval,
            dtype,
            calls: 0,
            nan_at_call: None,
            sleep_ms: 0,
        })
    }

    /// Logits `(N, 4)`.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = x.clone();
        for (c, n) in &self.blocks {
            x = n.forward_t(&c.forward(&x)?, train)?.relu()?;
        }
        Ok(self.head.forward(&global_avg_pool(&x)?)?.flatten_from(1)?)
    }
}

impl Task for ToyTask {
    type Sample = Sample;

    fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    fn layers(&self) -> Option<&LayerFactory> {
        Some(&self.factory)
    }

    fn loss(&mut self, batch: Vec<Sample>) -> Result<Tensor> {
        if self.sleep_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(self.sleep_ms));
        }
        let (x, y) = collate(&batch, &Device::Cpu)?;
        let loss = cross_entropy(&self.forward(&x.to_dtype(self.dtype)?, true)?, &y, 0.0)?;
        self.calls += 1;
        if self.nan_at_call == Some(self.calls - 1) {
            return Ok((loss * f64::NAN)?);
        }
        Ok(loss)
    }

    fn evaluate(&mut self) -> Result<Vec<(String, f64)>> {
        let (x, y) = collate(&self.eval, &Device::Cpu)?;
        let pred = self
            .forward(&x.to_dtype(self.dtype)?, false)?
            .argmax(D::Minus1)?;
        let acc = pred
            .eq(&y)?
            .to_dtype(DType::F64)?
            .mean_all()?
            .to_scalar::<f64>()?;
        Ok(vec![("top1".into(), acc)])
    }
}
