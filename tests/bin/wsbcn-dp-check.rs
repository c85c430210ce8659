//! `wsbcn-dp-check`: trains the engine's toy task (`wsbcn_testkit::toy`)
//! through the real [`Trainer`] and [`main_with`], as one rank or as a
//! rank of an MPI job, for the data-parallel tests (`tests/data_parallel.rs`).
//!
//! ```text
//! wsbcn-dp-check --dir DIR --batch B --steps S [--spec gn+ws] [--stop-after N]
//!                [--checkpoint-every N] [--sleep-ms M] [--nan-on-rank R]
//! wsbcn-dp-check --dir DIR --sync-bn N0,N1,...
//! wsbcn-dp-check --dir DIR --est-bn N0,N1,... [--local]
//! wsbcn-dp-check --dir DIR --eval-voc VOC --eval-ssv2 SSV2
//! ```
//!
//! Each rank writes its pid to `DIR/rank<r>.pid` when it starts, and its
//! final model to `DIR/rank<r>.safetensors`; rank 0 writes the run log and
//! checkpoints into `DIR/run`. The model computes in f64.
//!
//! `--sync-bn`: rank `r` takes `N_r` samples of a fixed batch and checks
//! that synchronized BN on its part equals BN on the whole batch (f64,
//! 1e-10): output, input gradient, weight and bias gradients summed over
//! the ranks, running statistics; and that plain BN on its part does not.
//! With `--half` the synchronized layer computes in f16 (the host-staged
//! path of other devices and dtypes), compared at 1%.
//!
//! `--est-bn`: one training step of estimated BN at `r = 0.3` from the
//! initial estimates (0, 1) on rank `r`'s `N_r` samples gives estimates and
//! output computed by hand from the whole batch's statistics, or with
//! `--local` from this rank's part alone.
//!
//! `--eval-voc`, `--eval-ssv2`: evaluates a freshly initialised
//! segmentation model on the Fashion-VOC tree `VOC` and a video model on the
//! Fashion-SSv2 tree `SSV2` (the tests' tiny configs), each rank its shard,
//! and writes the metrics every rank holds to `DIR/eval-rank<r>.txt`.

use candle_core::{DType, Device, ModuleT, Tensor, Var};
use candle_nn::VarMap;
use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use wsbcn_nn::{
    batch_norm, estimated_batch_norm, seeded_var_builder, sync_batch_norm, BatchNorm, MovingSpeed,
};
use wsbcn_seg::task::{SegConfig, SegTask};
use wsbcn_testkit::toy::{Bars, ToyTask};
use wsbcn_testkit::Rng;
use wsbcn_tests::tiny_video_sections;
use wsbcn_train::cli::main_with;
use wsbcn_train::{parse_config, Loader, LoaderConfig, Shard, Task, TrainConfig, Trainer};
use wsbcn_video::task::{VideoConfig, VideoTask};

#[derive(Parser)]
struct Args {
    /// Output folder.
    #[arg(long)]
    dir: PathBuf,
    /// Samples per rank per step.
    #[arg(long, default_value_t = 2)]
    batch: usize,
    /// Steps of the run.
    #[arg(long, default_value_t = 1)]
    steps: u64,
    /// Check synchronized BN with these samples per rank instead of training.
    #[arg(long, value_delimiter = ',')]
    sync_bn: Vec<usize>,
    /// Check estimated BN with these samples per rank instead of training.
    #[arg(long, value_delimiter = ',')]
    est_bn: Vec<usize>,
    /// With `--est-bn`: each rank keeps its own estimates.
    #[arg(long)]
    local: bool,
    /// With `--sync-bn`: the synchronized layer computes in f16, which it
    /// stages through f32 on the host as it would a GPU tensor.
    #[arg(long)]
    half: bool,
    /// Evaluate a segmentation model on this Fashion-VOC tree.
    #[arg(long)]
    eval_voc: Option<PathBuf>,
    /// Evaluate a video model on this Fashion-SSv2 tree.
    #[arg(long)]
    eval_ssv2: Option<PathBuf>,
    /// The norm spec.
    #[arg(long, default_value = "gn+ws")]
    spec: String,
    /// Stop (with a checkpoint) after this many steps.
    #[arg(long)]
    stop_after: Option<u64>,
    /// Steps between checkpoints (0: at the end only).
    #[arg(long, default_value_t = 0)]
    checkpoint_every: u64,
    /// Sleep in every loss call, to give a test time to kill a rank.
    #[arg(long, default_value_t = 0)]
    sleep_ms: u64,
    /// This rank's first loss is NaN (a rank that fails on its own).
    #[arg(long)]
    nan_on_rank: Option<usize>,
}

fn run(args: Args) -> wsbcn_train::Result<()> {
    let world = wsbcn_dist::world();
    let rank = world.rank();
    std::fs::create_dir_all(&args.dir).map_err(|e| wsbcn_train::Error::io(&args.dir, e))?;
    let pid = args.dir.join(format!("rank{rank}.pid"));
    std::fs::write(&pid, std::process::id().to_string())
        .map_err(|e| wsbcn_train::Error::io(&pid, e))?;
    if !args.sync_bn.is_empty() {
        let dtype = if args.half { DType::F16 } else { DType::F64 };
        return check_sync_bn(&args.sync_bn, dtype);
    }
    if !args.est_bn.is_empty() {
        return check_est_bn(&args.est_bn, args.local);
    }
    if let (Some(voc), Some(ssv2)) = (&args.eval_voc, &args.eval_ssv2) {
        return evaluate_shards(&args.dir, voc, ssv2);
    }
    let mut task = ToyTask::with_dtype(&args.spec, 3, DType::F64)?;
    task.sleep_ms = args.sleep_ms;
    if args.nan_on_rank == Some(rank) {
        task.nan_at_call = Some(0);
    }
    let data = LoaderConfig {
        batch_size: args.batch,
        workers: 0,
        queue_depth: 1,
        shuffle: true,
    };
    let config = TrainConfig {
        steps: args.steps,
        checkpoint_interval: args.checkpoint_every,
        keep_checkpoints: 100,
        log_interval: 1,
        seed: 5,
        data: data.clone(),
        ..TrainConfig::default()
    };
    let shard = Shard {
        rank,
        ranks: world.size(),
    };
    let loader = Loader::sharded(Arc::new(Bars { n: 64, seed: 9 }), data, 5, shard)?;
    let mut trainer = Trainer::new(config, &args.dir.join("run")).plain_progress(true);
    if let Some(s) = args.stop_after {
        trainer = trainer.stop_after(s);
    }
    trainer.run(&mut task, &loader)?;
    let out = args.dir.join(format!("rank{rank}.safetensors"));
    task.varmap().save(&out)?;
    Ok(())
}

/// What one BN layer gives on `x` in training: output, the gradients of
/// `sum(y * dy)` for `x`, weight and bias, and the running statistics.
fn bn_pass(
    bn: &BatchNorm,
    varmap: &VarMap,
    x: &Tensor,
    dy: &Tensor,
) -> candle_core::Result<[Tensor; 6]> {
    let xv = Var::from_tensor(x)?;
    let y = bn.forward_t(xv.as_tensor(), true)?;
    let grads = (&y * dy)?.sum_all()?.backward()?;
    let vars = varmap.data().lock().expect("varmap");
    let grad = |n: &str| grads.get(vars[n].as_tensor()).cloned().expect("a gradient");
    Ok([
        y,
        grads.get(xv.as_tensor()).cloned().expect("dx"),
        grad("weight"),
        grad("bias"),
        bn.running_mean().clone(),
        bn.running_var().clone(),
    ])
}

fn evaluate_shards(dir: &Path, voc: &Path, ssv2: &Path) -> wsbcn_train::Result<()> {
    let text = format!(
        "[model]\nnum_classes = 11\naspp_channels = 16\naspp_rates = [1, 2, 3]\n\
         [model.backbone]\ndepth = 18\nwidth = 0.125\noutput_stride = 8\n\
         [norm]\nspec = \"gn+ws\"\ngroups = 4\n\
         [data]\nroot = \"{}\"\n[data.augment]\ncrop = 32\n",
        voc.display()
    );
    let seg_cfg: SegConfig = parse_config(&text, "seg.toml", &[])?;
    let mut seg = SegTask::new(&seg_cfg, &Device::Cpu).map_err(task_error)?;
    let sampler = r#"{ kind = "segments", num_segments = 4 }"#;
    let video_cfg: VideoConfig = parse_config(&tiny_video_sections(ssv2, sampler), "v.toml", &[])?;
    let mut video = VideoTask::new(&video_cfg, &Device::Cpu).map_err(task_error)?;
    let mut lines = vec![];
    for (name, v) in Task::evaluate(&mut seg)?
        .into_iter()
        .chain(Task::evaluate(&mut video)?)
    {
        lines.push(format!("{name} {:?}", v));
    }
    let out = dir.join(format!("eval-rank{}.txt", wsbcn_dist::world().rank()));
    std::fs::write(&out, lines.join("\n")).map_err(|e| wsbcn_train::Error::io(&out, e))?;
    Ok(())
}

fn task_error(e: wsbcn_train::TaskError) -> wsbcn_train::Error {
    wsbcn_train::Error::Invalid(e.to_string())
}

/// The fixed batch `x`, `dy: (total, 3, 4, 5)` of the layer checks, and
/// where this rank's part starts.
fn fixed_batch(split: &[usize]) -> wsbcn_train::Result<(Tensor, Tensor, usize)> {
    let world = wsbcn_dist::world();
    let rank = world.rank();
    if split.len() != world.size() {
        return Err(wsbcn_train::Error::Invalid(format!(
            "{} parts for {} ranks",
            split.len(),
            world.size()
        )));
    }
    let total = split.iter().sum();
    let mut rng = Rng::new(17);
    let x = rng
        .randn(&[total, 3, 4, 5], DType::F64, &Device::Cpu)?
        .affine(2.0, 0.5)?;
    let dy = rng.randn(&[total, 3, 4, 5], DType::F64, &Device::Cpu)?;
    Ok((x, dy, split[..rank].iter().sum()))
}

fn check_est_bn(split: &[usize], local: bool) -> wsbcn_train::Result<()> {
    let rank = wsbcn_dist::world().rank();
    let (x, _, first) = fixed_batch(split)?;
    let mine = x.narrow(0, first, split[rank])?;
    let varmap = VarMap::new();
    let vb = seeded_var_builder(&varmap, 1, DType::F64, &Device::Cpu);
    let bn = estimated_batch_norm(3, 1e-5, MovingSpeed::new(0.3), vb)?.local_estimates(local);
    let y = bn.forward_t(&mine, true)?;
    // From (0, 1): mu = 0.3 mean x, var = 0.7 + 0.3 mean x^2 (about the
    // old mean, 0), per channel over the statistics' samples.
    let from = if local { &mine } else { &x };
    let per_channel =
        |t: &Tensor| -> candle_core::Result<Tensor> { t.transpose(0, 1)?.flatten_from(1)?.mean(1) };
    let mu = per_channel(from)?.affine(0.3, 0.0)?;
    let var = per_channel(&from.sqr()?)?.affine(0.3, 0.7)?;
    let shape = (1, 3, 1, 1);
    let expected = mine
        .broadcast_sub(&mu.reshape(shape)?)?
        .broadcast_div(&(var.reshape(shape)? + 1e-5)?.sqrt()?)?;
    let diffs = [
        ("mean estimate", (bn.estimated_mean() - &mu)?),
        ("variance estimate", (bn.estimated_var() - &var)?),
        ("output", (&y - &expected)?),
    ];
    for (name, d) in diffs {
        let d = d.abs()?.max_all()?.to_scalar::<f64>()?;
        if d > 1e-10 {
            return Err(wsbcn_train::Error::Invalid(format!(
                "rank {rank}: estimated BN's {name} is off by {d} (local: {local})"
            )));
        }
    }
    println!("rank {rank}: estimated BN's update matches (local: {local})");
    Ok(())
}

/// `--sync-bn`, with the synchronized layer computing in `dtype` (f16
/// takes the host-staged path other devices take; compared at 1% of the
/// reference's scale, f64 at 1e-10).
fn check_sync_bn(split: &[usize], dtype: DType) -> wsbcn_train::Result<()> {
    let world = wsbcn_dist::world();
    let rank = world.rank();
    let dev = Device::Cpu;
    let (x, dy, first) = fixed_batch(split)?;
    // Both layers see the same values: the input rounded to `dtype`.
    let (x, dy) = (
        x.to_dtype(dtype)?.to_dtype(DType::F64)?,
        dy.to_dtype(dtype)?.to_dtype(DType::F64)?,
    );
    let layer = |sync: bool, dtype: DType| -> wsbcn_train::Result<(BatchNorm, VarMap)> {
        let varmap = VarMap::new();
        let vb = seeded_var_builder(&varmap, 1, dtype, &dev);
        let bn = if sync {
            sync_batch_norm(3, 1e-5, 0.1, vb)?
        } else {
            batch_norm(3, 1e-5, 0.1, vb)?
        };
        Ok((bn, varmap))
    };
    let (whole_bn, whole_vars) = layer(false, DType::F64)?;
    let whole = bn_pass(&whole_bn, &whole_vars, &x, &dy)?;
    let (mine_x, mine_dy) = (
        x.narrow(0, first, split[rank])?,
        dy.narrow(0, first, split[rank])?,
    );
    let (sync_bn, sync_vars) = layer(true, dtype)?;
    let mut synced = bn_pass(
        &sync_bn,
        &sync_vars,
        &mine_x.to_dtype(dtype)?,
        &mine_dy.to_dtype(dtype)?,
    )?;
    for t in synced.iter_mut() {
        *t = t.to_dtype(DType::F64)?;
    }
    for t in &mut synced[2..4] {
        let mut v = t.to_vec1::<f64>()?;
        world.all_reduce_sum(&mut v);
        *t = Tensor::from_vec(v, 3, &dev)?;
    }
    let names = [
        "output",
        "dx",
        "d weight",
        "d bias",
        "running mean",
        "running var",
    ];
    // Per quantity, the largest difference over the tolerance.
    let worst = |ours: &[Tensor; 6]| -> candle_core::Result<Vec<f64>> {
        (0..6)
            .map(|i| {
                let reference = if i < 2 {
                    whole[i].narrow(0, first, split[rank])?
                } else {
                    whole[i].clone()
                };
                let tolerance = if dtype == DType::F64 {
                    1e-10
                } else {
                    0.01 * reference.abs()?.max_all()?.to_scalar::<f64>()?.max(1.0)
                };
                let d = (&ours[i] - reference)?
                    .abs()?
                    .max_all()?
                    .to_scalar::<f64>()?;
                Ok(d / tolerance)
            })
            .collect()
    };
    for (name, d) in names.iter().zip(worst(&synced)?) {
        if d > 1.0 {
            return Err(wsbcn_train::Error::Invalid(format!(
                "rank {rank}: synchronized BN's {name} differs from BN on the whole batch by \
                 {d} times the tolerance ({dtype:?})"
            )));
        }
    }
    if world.size() > 1 {
        let (local_bn, local_vars) = layer(false, DType::F64)?;
        let local = bn_pass(&local_bn, &local_vars, &mine_x, &mine_dy)?;
        if worst(&local)?[0] < 1.0 {
            return Err(wsbcn_train::Error::Invalid(format!(
                "rank {rank}: BN on this rank's part alone matches the whole batch: the check \
                 cannot tell synchronized statistics from local ones"
            )));
        }
    }
    println!("rank {rank}: synchronized BN equals BN on the whole batch ({dtype:?})");
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    main_with("wsbcn-dp-check", || run(args))
}
