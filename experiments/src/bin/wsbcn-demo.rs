//! A small demonstration of the layers crate until the experiment binaries
//! exist: the same tiny conv net, built from the layer factory with several
//! normalization specs, trained on a synthetic task at a large and at a
//! micro batch, then evaluated in eval mode.
//!
//! Task: 16x16 single-channel images with a noisy bar at a random position;
//! the class is its orientation (horizontal, vertical, diagonal,
//! anti-diagonal). Every variant sees the same 2,400 training samples.

use candle_core::{DType, Device, Module, ModuleT, Result, Tensor, D};
use candle_nn::{Linear, Optimizer, VarMap, SGD};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;
use wsbcn_nn::{
    conv, seeded_var_builder, Conv2d, ConvConfig, ConvGeometry, LayerFactory, Norm, NormConfig,
};

const SIZE: usize = 16;
const CLASSES: usize = 4;
const SAMPLES: usize = 2400;

/// A batch of bar images `(n, 1, 16, 16)` and their labels `(n,)`.
fn batch(rng: &mut StdRng, n: usize, dev: &Device) -> Result<(Tensor, Tensor)> {
    let mut pixels = vec![0f32; n * SIZE * SIZE];
    let mut labels = vec![0u32; n];
    for (i, label) in labels.iter_mut().enumerate() {
        let class = rng.random_range(0..CLASSES);
        *label = class as u32;
        let (cy, cx) = (
            rng.random_range(4..12) as isize,
            rng.random_range(4..12) as isize,
        );
        let img = &mut pixels[i * SIZE * SIZE..(i + 1) * SIZE * SIZE];
        for v in img.iter_mut() {
            *v = rng.random_range(-0.8..0.8);
        }
        for t in -3isize..=3 {
            let (dy, dx) = [(0, t), (t, 0), (t, t), (t, -t)][class];
            let (y, x) = ((cy + dy) as usize, (cx + dx) as usize);
            img[y * SIZE + x] += 1.2;
        }
    }
    Ok((
        Tensor::from_vec(pixels, (n, 1, SIZE, SIZE), dev)?,
        Tensor::from_vec(labels, n, dev)?,
    ))
}

struct Net {
    blocks: Vec<(Conv2d, Norm)>,
    head: Linear,
}

impl Net {
    fn new(factory: &LayerFactory, vm: &VarMap, dev: &Device) -> wsbcn_nn::Result<Self> {
        let vb = seeded_var_builder(vm, 0, DType::F32, dev);
        let mut blocks = vec![];
        for (i, (cin, cout, stride)) in [(1, 16, 1), (16, 32, 2), (32, 32, 2)]
            .into_iter()
            .enumerate()
        {
            let geo = ConvGeometry::uniform(stride, 1, 1);
            let c = factory.conv(cin, cout, [3, 3], geo, vb.pp(format!("conv{i}")))?;
            let n = factory.norm(cout, vb.pp(format!("norm{i}")))?;
            blocks.push((c, n));
        }
        let head = conv(32, CLASSES, ConvConfig::new([1, 1]), vb.pp("head"))?;
        let head = Linear::new(head.weight().reshape((CLASSES, 32))?, head.bias().cloned());
        Ok(Self { blocks, head })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = x.clone();
        for (c, n) in &self.blocks {
            x = n.forward_t(&c.forward(&x)?, train)?.relu()?;
        }
        self.head.forward(&x.mean(D::Minus1)?.mean(D::Minus1)?)
    }
}

fn run(spec: &str, batch_size: usize, dev: &Device) -> anyhow_free::Result<String> {
    let cfg = NormConfig {
        spec: spec.into(),
        groups: 8,
        ..NormConfig::default()
    };
    let factory = LayerFactory::new(&cfg)?;
    let vm = VarMap::new();
    let net = Net::new(&factory, &vm, dev)?;
    let lr = 0.05 * (batch_size as f64 / 16.0).sqrt();
    let mut sgd = SGD::new(vm.all_vars(), lr)?;
    let mut rng = StdRng::seed_from_u64(1);
    let steps = SAMPLES / batch_size;
    let start = Instant::now();
    let mut last_losses = vec![];
    for step in 0..steps {
        let (x, y) = batch(&mut rng, batch_size, dev)?;
        factory.diagnostics().set_enabled(step + 1 == steps);
        let loss = candle_nn::loss::cross_entropy(&net.forward_t(&x, true)?, &y)?;
        let loss_v = loss.to_scalar::<f32>()?;
        if !loss_v.is_finite() {
            return Err(
                format!("{spec} at batch {batch_size}: non-finite loss at step {step}").into(),
            );
        }
        last_losses.push(loss_v);
        sgd.backward_step(&loss)?;
    }
    let fractions = factory.diagnostics().take_singularity();
    let singular =
        fractions.iter().map(|r| r.fraction).sum::<f64>() / fractions.len().max(1) as f64;
    let secs = start.elapsed().as_secs_f64();
    let mut eval_rng = StdRng::seed_from_u64(2);
    let (x, y) = batch(&mut eval_rng, 512, dev)?;
    let pred = net.forward_t(&x, false)?.argmax(D::Minus1)?;
    let acc = pred
        .eq(&y)?
        .to_dtype(DType::F32)?
        .mean_all()?
        .to_scalar::<f32>()?
        * 100.0;
    let tail = &last_losses[last_losses.len().saturating_sub(50)..];
    let loss = tail.iter().sum::<f32>() / tail.len() as f32;
    Ok(format!(
        "| {spec} | {batch_size} | {steps} | {loss:.3} | {acc:.1} | {singular:.2} | {secs:.1} |"
    ))
}

/// Errors of the demo: any error, printed as it is.
mod anyhow_free {
    pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
}

fn main() -> anyhow_free::Result<()> {
    let dev = Device::Cpu;
    println!("wsbcn layer demo: bar-orientation task, {SAMPLES} training samples per variant\n");
    println!("| spec | batch | steps | train loss (last 50) | eval accuracy % | singular fraction | seconds |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (spec, batch_size) in [
        ("bn", 16),
        ("bn", 2),
        ("bn+ws", 2),
        ("gn+ws", 2),
        ("bcn-est+ws", 2),
    ] {
        println!("{}", run(spec, batch_size, &dev)?);
    }
    Ok(())
}
