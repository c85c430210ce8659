//! Data-parallel training on MPI (`--features mpi`): jobs of 2 ranks of
//! `wsbcn-dp-check` (the engine's toy task through the real trainer and
//! `main_with`) launched with Open MPI's `mpirun`, each under a timeout so
//! that a hang fails the test.

use candle_core::{DType, Device};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use wsbcn_testkit::files::fresh_dir;
use wsbcn_testkit::toy::ToyTask;
use wsbcn_tests::{tiny_fashion_ssv2, tiny_fashion_voc};
use wsbcn_train::checkpoint::{latest_checkpoint, load_checkpoint, restore_model};
use wsbcn_train::{RunLog, Task};

const BIN: &str = env!("CARGO_BIN_EXE_wsbcn-dp-check");
const TIMEOUT: Duration = Duration::from_secs(120);

/// `mpirun -np ranks BIN args`, with the settings Open MPI needs as root in
/// a container on few cores: run as root, more ranks than cores, no
/// binding, shared memory without the kernel's cross-memory attach.
fn mpirun(ranks: usize, args: &[&str]) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["--oversubscribe", "--bind-to", "none", "-np"])
        .arg(ranks.to_string())
        .arg(BIN)
        .args(args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_btl", "self,vader")
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none");
    c
}

/// The binary without a launcher: one rank.
fn alone(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args);
    c
}

/// Waits for `child` at most `limit`; kills it and fails the test if it
/// is still running then (a hang). Returns its status and stderr.
fn finish(mut child: Child, limit: Duration) -> (ExitStatus, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut err).expect("stderr");
            }
            return (status, err);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the job still ran after {limit:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `cmd`, which must fail within `limit`; returns its stderr.
fn run_failing(mut cmd: Command, limit: Duration) -> String {
    let child = cmd.stderr(Stdio::piped()).stdout(Stdio::null()).spawn();
    let (status, err) = finish(child.expect("start the job"), limit);
    assert!(!status.success(), "the job did not fail:\n{err}");
    err
}

/// Runs `cmd` to its end (under the timeout) and returns its stderr; fails
/// when it fails.
fn run_ok(mut cmd: Command) -> String {
    let child = cmd.stderr(Stdio::piped()).stdout(Stdio::null()).spawn();
    let (status, err) = finish(child.expect("start the job"), TIMEOUT);
    assert!(status.success(), "the job failed ({status}):\n{err}");
    err
}

fn dir(name: &str) -> PathBuf {
    fresh_dir("dp", name)
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn args<'a>(dir: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["--dir", dir.to_str().expect("utf-8 path")];
    a.extend_from_slice(extra);
    a
}

fn losses(dir: &Path) -> Vec<f64> {
    RunLog::read(&dir.join("run/run.h5"))
        .expect("run log")
        .scalar("loss")
        .expect("losses")
        .to_vec()
}

/// The newest checkpoint's model, restored into a fresh toy task.
fn final_model(dir: &Path) -> ToyTask {
    final_model_of(dir, "gn+ws")
}

/// [`final_model`] of a toy task built with `spec`.
fn final_model_of(dir: &Path, spec: &str) -> ToyTask {
    let ckpt = latest_checkpoint(&dir.join("run/checkpoints"))
        .expect("list")
        .expect("a checkpoint");
    let task = ToyTask::with_dtype(spec, 3, DType::F64).expect("toy task");
    restore_model(
        &load_checkpoint(&ckpt, &Device::Cpu).expect("load"),
        task.varmap(),
    )
    .expect("restore");
    task
}

fn vars(task: &ToyTask) -> Vec<(String, Vec<f64>)> {
    let data = task.varmap().data().lock().expect("lock");
    let mut v: Vec<(String, Vec<f64>)> = data
        .iter()
        .map(|(n, t)| {
            let flat = t.as_tensor().flatten_all().expect("flat");
            (n.clone(), flat.to_vec1::<f64>().expect("f64"))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Point (a): two ranks of 2 samples per step train exactly as one process
/// of 4 on the same samples (the loader gives rank r the r-th half of the
/// one-process batch), and end with the same weights on both ranks.
#[test]
fn two_ranks_train_as_one_process_on_their_samples_joined() {
    let (one, two) = (dir("one"), dir("two"));
    run_ok(alone(&args(&one, &["--batch", "4", "--steps", "3"])));
    run_ok(mpirun(2, &args(&two, &["--batch", "2", "--steps", "3"])));
    let (l1, l2) = (losses(&one), losses(&two));
    assert_eq!(l1.len(), 3);
    let worst = max_abs_diff(&l1, &l2);
    assert!(worst < 1e-10, "losses {l1:?} against {l2:?}");
    for ((name, a), (_, b)) in vars(&final_model(&one))
        .iter()
        .zip(vars(&final_model(&two)))
    {
        let d = max_abs_diff(a, &b);
        assert!(d < 1e-10, "{name} differs by {d}");
    }
    let rank0 = std::fs::read(two.join("rank0.safetensors")).expect("rank 0 model");
    let rank1 = std::fs::read(two.join("rank1.safetensors")).expect("rank 1 model");
    assert!(rank0 == rank1, "the ranks end with different weights");
    // A check that can fail: one process of 2 samples per step sees half
    // the data and differs.
    let half = dir("half");
    run_ok(alone(&args(&half, &["--batch", "2", "--steps", "3"])));
    assert!(max_abs_diff(&losses(&half)[1..], &l2[1..]) > 1e-6);
}

/// Point (b) through the trainer: 2 ranks of 2 samples with synchronized
/// BN train as one process of 4 with BN (losses, weights and running
/// statistics to 1e-10); with plain BN the 2 ranks differ from it.
#[test]
fn sync_bn_training_on_two_ranks_equals_bn_on_one_process() {
    let (one, sync, plain) = (dir("bn-one"), dir("sync-two"), dir("bn-two"));
    let steps = ["--steps", "3"];
    run_ok(alone(&args(
        &one,
        &[&["--batch", "4", "--spec", "bn"][..], &steps].concat(),
    )));
    let two = |d: &Path, spec: &'static str| {
        run_ok(mpirun(
            2,
            &args(d, &[&["--batch", "2", "--spec", spec][..], &steps].concat()),
        ));
    };
    two(&sync, "sync-bn");
    two(&plain, "bn");
    let l1 = losses(&one);
    assert!(max_abs_diff(&l1, &losses(&sync)) < 1e-10);
    assert!(max_abs_diff(&l1, &losses(&plain)) > 1e-6);
    let (a, b) = (final_model_of(&one, "bn"), final_model_of(&sync, "sync-bn"));
    for ((name, x), (_, y)) in vars(&a).iter().zip(vars(&b)) {
        let d = max_abs_diff(x, &y);
        assert!(d < 1e-10, "{name} differs by {d}");
    }
    assert!(vars(&a).iter().any(|(n, _)| n.ends_with("running_var")));
}

/// Point (e): a 2-rank run stopped after 3 steps and resumed gives the
/// losses of an uninterrupted one, bit for bit; resuming it as one process
/// is an error that names the world sizes.
#[test]
fn an_interrupted_two_rank_run_resumes_to_the_same_losses() {
    let (whole, split) = (dir("whole"), dir("split"));
    let common = ["--batch", "2", "--steps", "6", "--checkpoint-every", "2"];
    run_ok(mpirun(2, &args(&whole, &common)));
    let mut first = common.to_vec();
    first.extend(["--stop-after", "3"]);
    run_ok(mpirun(2, &args(&split, &first)));
    assert_eq!(losses(&split).len(), 3);
    let err = run_ok(mpirun(2, &args(&split, &common)));
    assert!(err.contains("resuming from step 3"), "{err}");
    assert_eq!(losses(&whole), losses(&split));
    let err = run_failing(
        alone(&args(&split, &["--batch", "2", "--steps", "8"])),
        TIMEOUT,
    );
    assert!(
        err.contains("written by a run on 2 rank(s), this one has 1"),
        "{err}"
    );
}

/// Point (d): a rank killed mid-run ends the whole job with a failing
/// status within 60 s, and the newest checkpoint still loads.
#[test]
fn a_killed_rank_ends_the_job_and_the_last_checkpoint_loads() {
    let d = dir("killed");
    let a = [
        "--batch",
        "2",
        "--steps",
        "100000",
        "--checkpoint-every",
        "3",
        "--sleep-ms",
        "20",
    ];
    let child = mpirun(2, &args(&d, &a))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start");
    let start = Instant::now();
    let ckpts = d.join("run/checkpoints");
    while latest_checkpoint(&ckpts).ok().flatten().is_none() || !d.join("rank1.pid").exists() {
        assert!(start.elapsed() < TIMEOUT, "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = std::fs::read_to_string(d.join("rank1.pid")).expect("pid");
    let killed = Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let at = Instant::now();
    let (status, _) = finish(child, Duration::from_secs(60));
    assert!(!status.success(), "the job exited 0 after a rank died");
    assert!(at.elapsed() < Duration::from_secs(60));
    let model = vars(&final_model(&d));
    assert!(model.iter().all(|(_, v)| v.iter().all(|x| x.is_finite())));
}

/// A rank that fails on its own (its loss is NaN) ends the job, and the
/// error names it.
#[test]
fn a_failing_rank_ends_the_job_and_is_named() {
    let d = dir("failing");
    let a = ["--batch", "2", "--steps", "100", "--nan-on-rank", "1"];
    let err = run_failing(mpirun(2, &args(&d, &a)), Duration::from_secs(60));
    assert!(
        err.contains("wsbcn-dp-check: rank 1 of 2: training diverged at step 0"),
        "{err}"
    );
}

/// Point (b): synchronized BN on 2 ranks equals BN on the joined batch
/// (output, gradients, running statistics; f64, 1e-10), with equal and with
/// unequal samples per rank, and in one process it is BN. The binary also
/// checks that BN on a rank's part alone does not pass.
#[test]
fn sync_bn_on_two_ranks_equals_bn_on_the_joined_batch() {
    let d = dir("sync-bn");
    for split in ["2,2", "1,3"] {
        let err = run_ok(mpirun(2, &args(&d, &["--sync-bn", split])));
        assert!(!err.contains("differs"), "{err}");
    }
    run_ok(alone(&args(&d, &["--sync-bn", "4"])));
    // An f16 layer takes the path of a GPU tensor: staged through the host.
    run_ok(mpirun(2, &args(&d, &["--sync-bn", "1,3", "--half"])));
}

/// Point (c) of estimated BN on several ranks: by default one update step
/// gives the estimates (and output) of the joined batch's statistics on
/// every rank; with local estimates, those of the rank's own part.
#[test]
fn estimated_bn_on_two_ranks_averages_or_keeps_local_statistics() {
    let d = dir("est-bn");
    for split in ["2,2", "1,3"] {
        for local in [false, true] {
            let mut a = args(&d, &["--est-bn", split]);
            if local {
                a.push("--local");
            }
            run_ok(mpirun(2, &a));
        }
    }
    run_ok(alone(&args(&d, &["--est-bn", "4"])));
}

/// Point 2's sharded evaluation: two ranks, each scoring its shard of the
/// validation split, end with the metrics of one process on the whole
/// split (segmentation: summed confusion matrices, exactly; video: the
/// joined score lists), on both ranks.
#[test]
fn sharded_evaluation_gives_the_whole_splits_metrics_on_every_rank() {
    let d = dir("eval");
    let (voc, ssv2) = (tiny_fashion_voc(&d), tiny_fashion_ssv2(&d));
    let eval = [
        "--eval-voc",
        voc.to_str().unwrap(),
        "--eval-ssv2",
        ssv2.to_str().unwrap(),
    ];
    let one = dir("eval-one");
    run_ok(alone(&args(&one, &eval)));
    run_ok(mpirun(2, &args(&d, &eval)));
    let read = |p: PathBuf| std::fs::read_to_string(p).expect("metrics");
    let whole = read(one.join("eval-rank0.txt"));
    assert!(whole.contains("miou") && whole.contains("top1"), "{whole}");
    assert_eq!(read(d.join("eval-rank0.txt")), whole);
    assert_eq!(read(d.join("eval-rank1.txt")), whole);
}
