//! `wsbcn-dp-check`: trains the engine's toy task (`wsbcn_testkit::toy`)
//! through the real [`Trainer`] and [`main_with`], as one rank or as a
//! rank of an MPI job, for the data-parallel tests (`tests/data_parallel.rs`).
//!
//! ```text
//! wsbcn-dp-check --dir DIR --batch B --steps S [--spec gn+ws] [--stop-after N]
//!                [--checkpoint-every N] [--sleep-ms M] [--nan-on-rank R]
//! wsbcn-dp-check --dir DIR --sync-bn N0,N1,...
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

use candle_core::{DType, Device, ModuleT, Tensor, Var};
use candle_nn::VarMap;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use wsbcn_nn::{batch_norm, seeded_var_builder, sync_batch_norm, BatchNorm};
use wsbcn_testkit::toy::{Bars, ToyTask};
use wsbcn_testkit::Rng;
use wsbcn_train::cli::main_with;
use wsbcn_train::{Loader, LoaderConfig, Shard, TrainConfig, Trainer};

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
        return check_sync_bn(&args.sync_bn);
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
    wsbcn_train::Task::varmap(&task).save(&out)?;
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

fn check_sync_bn(split: &[usize]) -> wsbcn_train::Result<()> {
    let world = wsbcn_dist::world();
    let rank = world.rank();
    if split.len() != world.size() {
        return Err(wsbcn_train::Error::Invalid(format!(
            "--sync-bn gives {} parts for {} ranks",
            split.len(),
            world.size()
        )));
    }
    let (total, first): (usize, usize) = (split.iter().sum(), split[..rank].iter().sum());
    let dev = Device::Cpu;
    let mut rng = Rng::new(17);
    let x = rng
        .randn(&[total, 3, 4, 5], DType::F64, &dev)?
        .affine(2.0, 0.5)?;
    let dy = rng.randn(&[total, 3, 4, 5], DType::F64, &dev)?;
    let layer = |sync: bool| -> wsbcn_train::Result<(BatchNorm, VarMap)> {
        let varmap = VarMap::new();
        let vb = seeded_var_builder(&varmap, 1, DType::F64, &dev);
        let bn = if sync {
            sync_batch_norm(3, 1e-5, 0.1, vb)?
        } else {
            batch_norm(3, 1e-5, 0.1, vb)?
        };
        Ok((bn, varmap))
    };
    let (whole_bn, whole_vars) = layer(false)?;
    let whole = bn_pass(&whole_bn, &whole_vars, &x, &dy)?;
    let (mine_x, mine_dy) = (
        x.narrow(0, first, split[rank])?,
        dy.narrow(0, first, split[rank])?,
    );
    let (sync_bn, sync_vars) = layer(true)?;
    let mut synced = bn_pass(&sync_bn, &sync_vars, &mine_x, &mine_dy)?;
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
    let worst = |ours: &[Tensor; 6]| -> candle_core::Result<Vec<f64>> {
        (0..6)
            .map(|i| {
                let reference = if i < 2 {
                    whole[i].narrow(0, first, split[rank])?
                } else {
                    whole[i].clone()
                };
                (&ours[i] - reference)?.abs()?.max_all()?.to_scalar::<f64>()
            })
            .collect()
    };
    for (name, d) in names.iter().zip(worst(&synced)?) {
        if d > 1e-10 {
            return Err(wsbcn_train::Error::Invalid(format!(
                "rank {rank}: synchronized BN's {name} differs from BN on the whole batch by {d}"
            )));
        }
    }
    if world.size() > 1 {
        let (local_bn, local_vars) = layer(false)?;
        let local = bn_pass(&local_bn, &local_vars, &mine_x, &mine_dy)?;
        if worst(&local)?[0] < 1e-6 {
            return Err(wsbcn_train::Error::Invalid(format!(
                "rank {rank}: BN on this rank's part alone matches the whole batch: the check \
                 cannot tell synchronized statistics from local ones"
            )));
        }
    }
    println!("rank {rank}: synchronized BN equals BN on the whole batch");
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    main_with("wsbcn-dp-check", || run(args))
}
