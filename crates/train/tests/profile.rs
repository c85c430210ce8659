//! The step profile (`train --profile`) counts exactly the op calls of the
//! profiled steps: per step, one forward and one gradient call of each
//! convolution, norm and standardized kernel of the toy model, nothing
//! from the warm-up steps or from an evaluation between steps, and its
//! rows add up to the steps' wall time. In its own test binary: the op
//! counters are process-wide.

use std::sync::Arc;
use wsbcn_kernels::profile::{Direction, Kind};
use wsbcn_testkit::toy::{Bars, ToyTask};
use wsbcn_train::step_profile::WARMUP_STEPS;
use wsbcn_train::{Loader, LoaderConfig, TrainConfig, Trainer};

#[test]
fn profile_counts_each_op_of_the_profiled_steps_once() {
    let dir = std::env::temp_dir().join(format!("wsbcn-profile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let steps = 12;
    let cfg = TrainConfig {
        steps,
        // An evaluation and a checkpoint between profiled steps.
        eval_interval: 8,
        checkpoint_interval: 8,
        data: LoaderConfig {
            batch_size: 2,
            workers: 1,
            queue_depth: 2,
            shuffle: true,
        },
        ..TrainConfig::default()
    };
    // GN+WS: two factory convs, each standardized and followed by a fused
    // GroupNorm, and a plain 1x1 head conv.
    let mut task = ToyTask::new("gn+ws", 1).unwrap();
    let loader = Loader::new(Arc::new(Bars { n: 64, seed: 2 }), cfg.data.clone(), 0).unwrap();
    let summary = Trainer::new(cfg, &dir)
        .plain_progress(true)
        .profile(true)
        .run(&mut task, &loader)
        .unwrap();
    let profile = summary.profile.expect("the profile of a profiled run");
    let counted = steps - WARMUP_STEPS;
    assert_eq!(profile.steps(), counted);
    let k = profile.kernels();
    for (kind, per_step) in [
        (Kind::Conv, 3),
        (Kind::Norm, 2),
        (Kind::Ws, 2),
        (Kind::ActivationPool, 0),
        (Kind::Loss, 0),
    ] {
        for dir in [Direction::Forward, Direction::Backward] {
            let slot = k.get(dir, kind);
            assert_eq!(
                slot.calls,
                per_step * counted,
                "{kind:?} {dir:?}: {} calls in {counted} steps",
                slot.calls
            );
            assert_eq!(slot.seconds > 0.0, per_step > 0, "{kind:?} {dir:?}");
        }
    }
    // The rows split the steps: each is a part of the whole, and the table
    // (written next to the run log) ends with their sum.
    let rows = profile.rows();
    let total: f64 = rows.iter().map(|r| r.1).sum();
    for (label, s, _) in &rows {
        assert!(*s >= 0.0 && *s <= total, "{label}: {s} s of {total} s");
    }
    let table = std::fs::read_to_string(dir.join("profile.md")).unwrap();
    assert!(table.starts_with(&format!("{counted} steps profiled")));
    assert_eq!(
        table.lines().filter(|l| l.starts_with("| ")).count(),
        rows.len() + 2
    );
    let _ = std::fs::remove_dir_all(&dir);
}
