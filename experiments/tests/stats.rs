//! The comparison protocol and its statistics without training: intervals
//! and Welch verdicts against hand-computed values, the report's verdict
//! and claim rules on hand-made rows ("n = 1, no interval", "not
//! resolved", "no verdict" for a cell that has not converged), and the
//! schedule invariant of the equal-sample protocol on the shipped
//! comparisons.

use std::path::Path;
use wsbcn_experiments::cell_run::cell_config;
use wsbcn_experiments::report::{
    cell_gain, claims, gain_converged, judge, match_outcome, verdicts, Judgement, Row,
    MATCH_MARGIN, PLATEAU,
};
use wsbcn_experiments::stats::{Summary, Verdict, Welch};
use wsbcn_experiments::Comparison;
use wsbcn_train::{load_config, DeviceSpec, TrainConfig};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn intervals_equal_hand_computed_student_t_intervals() {
    // mean 0.43, s = sqrt(0.0013 / 2), t_{0.975, 2} = 4.302652729749464
    // (tables): half-width 4.3027 * 0.036056 / sqrt(3) = 0.0895669.
    let s = Summary::of(&[0.40, 0.42, 0.47]);
    assert!(close(s.mean, 0.43, 1e-12), "{s:?}");
    assert!(close(s.sd, 0.036_055_512_754_639_87, 1e-12), "{s:?}");
    assert!(
        close(s.half_width.unwrap(), 0.089_566_858_950_295_95, 1e-9),
        "{s:?}"
    );
    assert_eq!(s.text(), "0.4300 ± 0.0896 (n = 3)");
    // One seed: no interval, never "± 0".
    let one = Summary::of(&[0.5]);
    assert_eq!(one.half_width, None);
    assert_eq!(one.text(), "0.5000 (n = 1, no interval)");
    assert!(!one.text().contains('±'));
}

#[test]
fn welch_tests_equal_hand_computed_values() {
    // Equal variances and sizes: df = 4, t = 0.1 / sqrt(0.0008 / 3) =
    // 6.1237; p by integrating Student's density (0.0036022), 95% interval
    // half-width t_{0.975, 4} se = 2.7764451051977987 * 0.0163299.
    let w = Welch::test(&[0.40, 0.42, 0.44], &[0.30, 0.32, 0.34]).unwrap();
    assert!(close(w.diff, 0.1, 1e-12), "{w:?}");
    assert!(close(w.df, 4.0, 1e-9), "{w:?}");
    assert!(close(w.p, 0.003_602_232_609, 1e-8), "{w:?}");
    assert!(close(w.half_width, 0.045_339_158_710_550_47, 1e-9), "{w:?}");
    assert_eq!(w.verdict(), Verdict::Better);
    assert_eq!(w.text(), "+0.1000 [+0.0547, +0.1453], Welch p = 0.004");
    let back = Welch::test(&[0.30, 0.32, 0.34], &[0.40, 0.42, 0.44]).unwrap();
    assert_eq!(back.verdict(), Verdict::Worse);
    // Unequal variances: Welch-Satterthwaite df = 2.3059, t = 5.5549,
    // p = 0.022289 (hand integration at fractional df).
    let w = Welch::test(&[0.40, 0.42, 0.47], &[0.30, 0.31, 0.32]).unwrap();
    assert!(close(w.df, 2.305_882_352_941_177_6, 1e-9), "{w:?}");
    assert!(close(w.p, 0.022_289_198_27, 1e-7), "{w:?}");
    assert_eq!(w.verdict(), Verdict::Better);
    // A difference of 0.02 against spreads of 0.05: t = 0.49, p = 0.650.
    let w = Welch::test(&[0.40, 0.45, 0.50], &[0.38, 0.43, 0.48]).unwrap();
    assert!(close(w.p, 0.649_860_243_3, 1e-7), "{w:?}");
    assert_eq!(w.verdict(), Verdict::NotResolved);
    // One seed a side: no test.
    assert!(Welch::test(&[0.4], &[0.3, 0.31]).is_none());
}

fn row(variant: &str, norm: &str, batch: usize, finals: &[f64], last_gain: f64) -> Row {
    Row {
        task: "segmentation".into(),
        variant: variant.into(),
        label: variant.to_uppercase(),
        batch,
        metric: "miou".into(),
        finals: finals.to_vec(),
        unfinished: 0,
        // Every seed with the same gain: an interval of width 0.
        last_gain: Some(Summary::of(&vec![last_gain; finals.len()])),
        values_per_channel: Some(batch as f64 * 64.0),
        wall_s: 1.0,
        samples_per_s: 1.0,
        norm: norm.into(),
    }
}

#[test]
fn a_cell_is_not_converged_only_when_its_seeds_show_it_clearly_rising() {
    // Seeds' last gains 0.036, 0.017 and -0.014 (BN at batch 1 in a quick
    // run): mean 0.013, s = sqrt(0.001274 / 2) = 0.025239, interval
    // 0.013 +- 4.302653 * 0.025239 / sqrt(3) = 0.013 +- 0.062696, which
    // reaches below 0.01: one seed jumped, the cell is not shown rising.
    let noisy = cell_gain(&[Some(0.036), Some(0.017), Some(-0.014)]).unwrap();
    assert!(close(noisy.mean, 0.013, 1e-12), "{noisy:?}");
    assert!(
        close(noisy.half_width.unwrap(), 0.062_696, 1e-6),
        "{noisy:?}"
    );
    assert!(noisy.mean > PLATEAU && gain_converged(&noisy));
    // 0.030, 0.025, 0.035: 0.030 +- 4.302653 * 0.005 / sqrt(3) = 0.030 +-
    // 0.012421, wholly above 0.01: still rising, not converged.
    let rising = cell_gain(&[Some(0.030), Some(0.025), Some(0.035)]).unwrap();
    assert!(
        close(rising.half_width.unwrap(), 0.012_421, 1e-6),
        "{rising:?}"
    );
    assert!(!gain_converged(&rising));
    // One seed: no interval, its gain against 0.01.
    assert!(!gain_converged(&cell_gain(&[Some(0.012)]).unwrap()));
    assert!(gain_converged(&cell_gain(&[Some(0.008)]).unwrap()));
    // A seed with a single evaluation, or no seed: no gain, not converged.
    assert_eq!(cell_gain(&[Some(0.0), None]), None);
    assert_eq!(cell_gain(&[]), None);
}

#[test]
fn matching_is_a_non_inferiority_test_with_the_stated_margin() {
    assert_eq!(MATCH_MARGIN, 0.02);
    let big = [0.72, 0.73, 0.74];
    // Equal spreads (s = 0.01, n = 3): se = sqrt(2 * 0.0001 / 3) =
    // 0.0081650, df = 4, half-width 2.776445 * se = 0.022670.
    let outcome = |a: &[f64], diff: f64, want: &str| {
        let w = Welch::test(a, &big).unwrap();
        assert!(close(w.diff, diff, 1e-12), "{w:?}");
        assert!(close(w.half_width, 0.022_670, 1e-6), "{w:?}");
        assert_eq!(match_outcome(&w), want, "{w:?}");
    };
    // +0.01 [-0.0127, +0.0327]: within the margin.
    outcome(&[0.73, 0.74, 0.75], 0.01, "reproduces");
    // -0.01 [-0.0327, +0.0127]: reaches across -0.02.
    outcome(&[0.71, 0.72, 0.73], -0.01, "not resolved");
    // -0.05 [-0.0727, -0.0273]: wholly below.
    outcome(&[0.67, 0.68, 0.69], -0.05, "does not reproduce");
    // No spread on either side: no interval, no decision.
    let flat = Welch::test(&[0.7, 0.7], &[0.7, 0.7]).unwrap();
    assert_eq!(match_outcome(&flat), "not resolved");
}

#[test]
fn verdicts_are_drawn_only_from_converged_cells_and_say_not_resolved() {
    let big = row("bn-large", "bn", 16, &[0.40, 0.41, 0.42], 0.0);
    let better = row("gn-ws", "gn+ws", 1, &[0.50, 0.51, 0.52], 0.005);
    let unclear = row("gn", "gn", 1, &[0.38, 0.43, 0.45], 0.0);
    let rising = row("bcn", "bcn-est+ws", 1, &[0.60, 0.61, 0.62], PLATEAU + 0.001);
    let single = row("bn", "bn", 1, &[0.30], 0.0);
    assert!(matches!(
        judge(&better, &big),
        Judgement::Verdict(Verdict::Better, _)
    ));
    assert_eq!(judge(&unclear, &big).word(), "not resolved");
    // Far above, but still rising: no verdict.
    assert!(matches!(judge(&rising, &big), Judgement::NoVerdict(_)));
    // One seed: not resolved, whatever the gap.
    assert_eq!(judge(&single, &big).word(), "not resolved");
    let lines = verdicts(&[
        big.clone(),
        single.clone(),
        unclear.clone(),
        better.clone(),
        rising.clone(),
    ]);
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(
        lines[0].contains("0.3000 (n = 1, no interval)"),
        "{}",
        lines[0]
    );
    assert!(lines[0].ends_with("**not resolved**."), "{}", lines[0]);
    assert!(lines[2].contains("**better**"), "{}", lines[2]);
    assert!(lines[3].contains("not converged"), "{}", lines[3]);
}

#[test]
fn the_claims_paragraph_answers_each_claim_from_a_test() {
    let big = row("bn-large", "bn", 16, &[0.40, 0.41, 0.42], 0.0);
    let bn = row("bn", "bn", 1, &[0.30, 0.31, 0.32], 0.0);
    let gn = row("gn", "gn", 1, &[0.40, 0.42, 0.44], 0.0);
    let gn_ws = row("gn-ws", "gn+ws", 1, &[0.50, 0.51, 0.52], 0.0);
    let bcn = row("bcn", "bcn-est+ws", 1, &[0.39, 0.41, 0.43], 0.0);
    let p = claims(&[big.clone(), bn, gn, gn_ws, bcn.clone()]).remove(0);
    let part = |tag: &str, next: &str| {
        let start = p.find(tag).unwrap();
        let end = p.find(next).unwrap_or(p.len());
        p[start..end].to_string()
    };
    assert!(part("(a)", "(b)").contains("reproduces"), "{p}");
    let b = part("(b)", "(c)");
    assert!(b.contains("GN-WS: reproduces"), "{b}");
    // 0.41 +- 0.02 against 0.41 +- 0.01: no difference, but the interval
    // (about +-0.04) reaches below -0.02: no match shown either.
    assert!(
        b.contains("BCN: not resolved (the difference's 95% interval reaches across -0.02)"),
        "{b}"
    );
    assert!(b.contains("not resolved by Welch's test alone"), "{b}");
    assert!(part("(c)", "\u{0}").contains(": reproduces"), "{p}");
    // BN that does not degrade: said so, with the values per channel.
    let flat = row("bn", "bn", 1, &[0.40, 0.42, 0.41], 0.0);
    let p = claims(&[big, flat, bcn]).remove(0);
    assert!(
        p.contains("(a) BN at micro-batches is worse than BN at a large batch: not resolved"),
        "{p}"
    );
    assert!(p.contains("at least 64 values per channel"), "{p}");
    assert!(p.contains("(c) WS improves GN: cannot be answered"), "{p}");
}

fn lr_sum(train: &TrainConfig) -> f64 {
    (0..train.steps)
        .map(|t| train.schedule.lr(train.optim.lr, t, train.steps))
        .sum()
}

#[test]
fn every_batch_of_a_shipped_comparison_averages_bn_statistics_over_the_same_samples() {
    // The protocol (README, `Budget::momentum_batch`): a sample seen s
    // samples ago weighs (1 - m_B)^(s / B) in the running statistics of a
    // cell of norm batch B, the same in every cell, and the batch the base
    // momentum is for keeps it.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    for name in ["quick.toml", "batch_sweep.toml"] {
        let file = dir.join(name);
        let cmp: Comparison = load_config(&file, &[]).unwrap();
        let reference = cmp
            .budget
            .as_ref()
            .and_then(|b| b.momentum_batch)
            .expect("the shipped comparisons set budget.momentum_batch");
        // The same comparison without the rule gives each cell's base momentum.
        let mut plain = cmp.clone();
        if let Some(b) = plain.budget.as_mut() {
            b.momentum_batch = None;
        }
        let momentum = |cmp: &Comparison, c: &wsbcn_experiments::Cell| {
            cell_config(cmp, &file, c).unwrap().norm().momentum
        };
        for task in 0..cmp.tasks.len() {
            let mut per_sample = vec![];
            for c in cmp.cells().into_iter().filter(|c| c.task == task) {
                let (m, base) = (momentum(&cmp, &c), momentum(&plain, &c));
                if c.batch == reference {
                    assert_eq!(m, base, "{name}: {}", cmp.cell_name(&c));
                }
                per_sample.push((
                    cmp.cell_name(&c),
                    c.batch,
                    (1.0 - m).powf(1.0 / c.batch as f64),
                ));
            }
            let batches: std::collections::BTreeSet<usize> =
                per_sample.iter().map(|s| s.1).collect();
            assert!(batches.len() >= 2, "{name}: two batch sizes at least");
            for (cell, _, decay) in &per_sample {
                assert!(
                    (decay - per_sample[0].2).abs() < 1e-12,
                    "{name}: {cell} keeps {decay} per sample: {per_sample:?}"
                );
            }
        }
    }
}

#[test]
fn every_batch_of_a_shipped_comparison_integrates_the_same_learning_rate() {
    // The protocol (README, `Budget`): with lr linear in the batch and
    // every schedule length a fraction of the run, sum_t lr_t is the same
    // for every batch size of a comparison, warmup included.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    for name in ["quick.toml", "batch_sweep.toml"] {
        let file = dir.join(name);
        let cmp: Comparison = load_config(&file, &[]).unwrap();
        assert!(cmp.budget.is_some(), "{name} has an equal-sample budget");
        for task in 0..cmp.tasks.len() {
            let sums: Vec<(String, usize, f64, u64)> = cmp
                .cells()
                .into_iter()
                .filter(|c| c.task == task && c.seed == cmp.seeds[0])
                .map(|c| {
                    let train = cell_config(&cmp, &file, &c).unwrap().train().clone();
                    (
                        cmp.cell_name(&c),
                        c.batch,
                        lr_sum(&train),
                        train.schedule.warmup_iters,
                    )
                })
                .collect();
            let batches: std::collections::BTreeSet<usize> = sums.iter().map(|s| s.1).collect();
            assert!(batches.len() >= 2, "{name}: two batch sizes at least");
            let first = sums[0].2;
            for (cell, _, sum, _) in &sums {
                assert!(
                    (sum / first - 1.0).abs() < 0.01,
                    "{name}: {cell} integrates lr to {sum}, {} to {first}: {sums:?}",
                    sums[0].0
                );
            }
        }
    }
}

#[test]
fn a_small_voc_built_by_an_older_version_is_an_error_naming_its_list() {
    use wsbcn_experiments::data::{check_val_count, SMALL_VOC_VAL};
    let dir = std::env::temp_dir().join(format!("wsbcn-valcount-{}", std::process::id()));
    let lists = dir.join("VOCdevkit/VOC2012/ImageSets/Segmentation");
    std::fs::create_dir_all(&lists).unwrap();
    std::fs::create_dir_all(dir.join("VOCdevkit/VOC2012/SegmentationClass")).unwrap();
    let ids = |n: usize| (0..n).map(|i| format!("val_{i:05}\n")).collect::<String>();
    std::fs::write(lists.join("val.txt"), ids(500)).unwrap();
    let err = check_val_count(&dir, SMALL_VOC_VAL)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("val.txt")
            && err.contains("lists 500 validation images where this version builds 5000"),
        "{err}"
    );
    std::fs::write(lists.join("val.txt"), ids(SMALL_VOC_VAL)).unwrap();
    check_val_count(&dir, SMALL_VOC_VAL).unwrap();
    std::fs::remove_file(lists.join("val.txt")).unwrap();
    assert!(check_val_count(&dir, SMALL_VOC_VAL).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_comparison_device_reaches_every_cell_and_otherwise_each_task_keeps_its_own() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/quick.toml");
    let devices = |cmp: &Comparison| -> Vec<DeviceSpec> {
        cmp.cells()
            .iter()
            .map(|c| cell_config(cmp, &file, c).unwrap().device())
            .collect()
    };
    let cmp: Comparison = load_config(&file, &[]).unwrap();
    let cpu = devices(&cmp);
    assert!(
        cpu.len() >= 4 && cpu.iter().all(|d| *d == DeviceSpec::Cpu),
        "{cpu:?}"
    );
    // An unset device leaves the recorded comparison as it was.
    assert!(!wsbcn_train::to_toml(&cmp).unwrap().contains("device"));
    let all: Comparison = load_config(&file, &["device=\"cuda:1\"".into()]).unwrap();
    let all = devices(&all);
    assert!(all.iter().all(|d| *d == DeviceSpec::Cuda(1)), "{all:?}");
    // Without a comparison device, a task config's own `device` holds.
    let mut own = cmp.clone();
    own.tasks[0].set.push("device=\"cuda:2\"".into());
    let own = devices(&own);
    assert!(own.contains(&DeviceSpec::Cuda(2)) && own.contains(&DeviceSpec::Cpu));
}

#[test]
fn a_variant_can_take_more_seeds_from_the_one_list_and_bad_counts_name_their_key() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/quick.toml");
    let mut cmp: Comparison = load_config(&file, &[]).unwrap();
    cmp.seeds = vec![7, 3, 9, 11];
    cmp.seeds_per_cell = Some(2);
    for v in &mut cmp.variants {
        v.seeds_per_cell = None;
        v.task_seeds_per_cell.clear();
    }
    cmp.variants[1].seeds_per_cell = Some(4);
    let seeds_in = |cmp: &Comparison, v: usize| -> Vec<(usize, usize, u64)> {
        cmp.cells()
            .into_iter()
            .filter(|c| c.variant == v)
            .map(|c| (c.task, c.batch, c.seed))
            .collect()
    };
    let seeds = |v: usize| seeds_in(&cmp, v);
    let batch = |v: usize| {
        cmp.variants[v]
            .batch_sizes
            .clone()
            .unwrap_or(cmp.batch_sizes.clone())[0]
    };
    for task in 0..cmp.tasks.len() {
        let (b0, b1) = (batch(0), batch(1));
        let of = |v, b| -> Vec<u64> {
            seeds(v)
                .into_iter()
                .filter(|s| s.0 == task && s.1 == b)
                .map(|s| s.2)
                .collect()
        };
        assert_eq!(of(0, b0), vec![7, 3]);
        assert_eq!(of(1, b1), vec![7, 3, 9, 11]);
    }
    // Unset: every seed of the list, as before the option existed.
    cmp.seeds_per_cell = None;
    assert_eq!(seeds_in(&cmp, 2).len(), 4 * cmp.tasks.len());
    let key = |cmp: &Comparison| wsbcn_train::Validate::validate(cmp).unwrap_err().0;
    let mut bad = cmp.clone();
    bad.variants[2].seeds_per_cell = Some(5);
    assert_eq!(
        key(&bad),
        format!("variants.{}.seeds_per_cell", bad.variants[2].name)
    );
    let mut bad = cmp.clone();
    bad.seeds_per_cell = Some(0);
    assert_eq!(key(&bad), "seeds_per_cell");
    let mut bad = cmp.clone();
    bad.seeds = vec![1, 2, 1];
    assert_eq!(key(&bad), "seeds");
    // A variant's count for one task takes precedence on that task only.
    let mut per_task = cmp.clone();
    per_task.seeds_per_cell = Some(2);
    let last = per_task.tasks.len() - 1;
    let name = per_task.tasks[last].name.clone();
    per_task.variants[1]
        .task_seeds_per_cell
        .insert(name.clone(), 3);
    for task in 0..per_task.tasks.len() {
        let of: Vec<u64> = per_task
            .cells()
            .into_iter()
            .filter(|c| c.variant == 1 && c.task == task)
            .map(|c| c.seed)
            .collect();
        let want: &[u64] = if task == last {
            &[7, 3, 9]
        } else {
            &[7, 3, 9, 11]
        };
        assert_eq!(of, want, "task {task}");
    }
    let v = per_task.variants[1].name.clone();
    let mut bad = per_task.clone();
    bad.variants[1].task_seeds_per_cell.insert(name.clone(), 5);
    assert_eq!(
        key(&bad),
        format!("variants.{v}.task_seeds_per_cell.{name}")
    );
    let mut bad = per_task.clone();
    bad.variants[1]
        .task_seeds_per_cell
        .insert("no-such-task".into(), 1);
    assert_eq!(key(&bad), format!("variants.{v}.task_seeds_per_cell"));
}
