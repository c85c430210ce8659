//! Losses, optimizer and schedules against PyTorch
//! (`crates/testkit/fixtures/train_reference.safetensors`, from
//! `crates/testkit/fixtures/make_train_reference.py`), and finite differences.

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarMap;
use wsbcn_testkit::{check_grads, max_abs_diff, Fixture, Rng};
use wsbcn_train::optim::{accumulate, scale};
use wsbcn_train::{
    clip_grad_norm, cross_entropy, global_norm, param_groups, pixel_cross_entropy, Decay,
    MovingSpeedSchedule, ScheduleConfig, Sgd, SgdConfig,
};

const DEV: Device = Device::Cpu;

fn close(what: &str, a: &Tensor, b: &Tensor, tol: f64) -> Result<()> {
    let err = max_abs_diff(&a.reshape(b.shape())?, b)?;
    assert!(err < tol, "{what}: {err:e}");
    Ok(())
}

#[test]
fn losses_match_pytorch() -> Result<()> {
    let fx = Fixture::train();
    type Loss = dyn Fn(&Tensor, &Tensor, Option<&Tensor>) -> wsbcn_train::Result<Tensor>;
    let pixel: &Loss = &|x, t, w| pixel_cross_entropy(x, t, 255, w);
    let cls: &Loss = &|x, t, _| cross_entropy(x, t, 0.0);
    let smooth: &Loss = &|x, t, _| cross_entropy(x, t, 0.1);
    for (p, f, weighted) in [
        ("pixel_ce", pixel, false),
        ("pixel_ce_w", pixel, true),
        ("cls_ce", cls, false),
        ("cls_ce_ls", smooth, false),
    ] {
        let x = Var::from_tensor(fx.get(&format!("{p}.x")))?;
        let w = weighted.then(|| fx.get(&format!("{p}.weight")).clone());
        let y = f(x.as_tensor(), fx.get(&format!("{p}.target")), w.as_ref()).unwrap();
        close(&format!("{p}.y"), &y, fx.get(&format!("{p}.y")), 1e-12)?;
        let g = (y * fx.get(&format!("{p}.r")))?.sum_all()?.backward()?;
        close(
            &format!("{p}.grad"),
            g.get(x.as_tensor()).unwrap(),
            fx.get(&format!("{p}.grad_x")),
            1e-12,
        )?;
    }
    Ok(())
}

#[test]
fn losses_have_correct_gradients_and_handle_all_ignored() -> Result<()> {
    let mut rng = Rng::new(41);
    let x = Var::from_tensor(&rng.randn(&[2, 3, 2, 3], DType::F64, &DEV)?)?;
    let t = Tensor::new(
        &[[[0u32, 2, 255], [1, 1, 0]], [[255, 255, 2], [0, 1, 2]]],
        &DEV,
    )?;
    let w = Tensor::new(&[0.3f64, 1.0, 2.0], &DEV)?;
    let loss = || Ok(pixel_cross_entropy(x.as_tensor(), &t, 255, Some(&w)).unwrap());
    check_grads(loss, &[("logits", &x)], 1e-6, 1e-6, 100)?;
    let z = Var::from_tensor(&rng.randn(&[3, 5], DType::F64, &DEV)?)?;
    let labels = Tensor::new(&[4u32, 0, 2], &DEV)?;
    let loss = || Ok(cross_entropy(z.as_tensor(), &labels, 0.2).unwrap());
    check_grads(loss, &[("logits", &z)], 1e-6, 1e-6, 100)?;

    let all_ignored = Tensor::full(255u32, (2, 2, 3), &DEV)?;
    let l = pixel_cross_entropy(x.as_tensor(), &all_ignored, 255, None).unwrap();
    assert_eq!(l.to_scalar::<f64>()?, 0.0);
    let g = l.backward()?;
    let gx: Vec<f64> = g.get(x.as_tensor()).unwrap().flatten_all()?.to_vec1()?;
    assert!(gx.iter().all(|v| *v == 0.0));

    let bad = Tensor::new(&[[[0u32, 7, 255], [1, 1, 0]], [[0, 0, 2], [0, 1, 2]]], &DEV)?;
    let err = pixel_cross_entropy(x.as_tensor(), &bad, 255, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("target class 7 is outside 0..3"), "{err}");
    Ok(())
}

fn param(name: &str, var: &Var) -> wsbcn_train::optim::Param {
    wsbcn_train::optim::Param {
        name: name.into(),
        var: var.clone(),
    }
}

#[test]
fn sgd_matches_pytorch_with_groups_momentum_and_nesterov() -> Result<()> {
    // loss = mean(((A w + bias) * head - b)^2), PyTorch's three groups:
    // w (decay 1e-2), bias (no decay), head (decay 1e-2, lr 0.05 = 10x).
    let fx = Fixture::train();
    let (a, b) = (fx.get("sgd.A"), fx.get("sgd.b"));
    for (tag, nesterov) in [("nesterov", true), ("momentum", false)] {
        let mk = |n: &str| Var::from_tensor(fx.get(&format!("sgd.{n}")));
        let (w, bias, head) = (mk("w0")?, mk("bias0")?, mk("head0")?);
        let cfg = SgdConfig {
            lr: 0.005,
            momentum: 0.9,
            nesterov,
            ..SgdConfig::default()
        };
        let group = |p, lr_mult, weight_decay| wsbcn_train::ParamGroup {
            params: vec![p],
            lr_mult,
            weight_decay,
        };
        let groups = vec![
            group(param("w", &w), 1.0, 1e-2),
            group(param("bias", &bias), 1.0, 0.0),
            group(param("head", &head), 10.0, 1e-2),
        ];
        let mut sgd = Sgd::new(groups, &cfg);
        for step in 0..5 {
            let pred = (a.matmul(&w.as_tensor().unsqueeze(1)?)?.squeeze(1)? + bias.as_tensor())?;
            let loss = ((pred * head.as_tensor())? - b)?.sqr()?.mean_all()?;
            let p = format!("sgd.{tag}.{step}");
            close(
                &format!("{p}.loss"),
                &loss,
                fx.get(&format!("{p}.loss")),
                1e-10,
            )?;
            let grads = sgd.grads(&loss.backward()?);
            sgd.step(&grads, cfg.lr).unwrap();
            close(
                &format!("{p}.w"),
                w.as_tensor(),
                fx.get(&format!("{p}.w")),
                1e-12,
            )?;
            close(
                &format!("{p}.bias"),
                bias.as_tensor(),
                fx.get(&format!("{p}.bias")),
                1e-12,
            )?;
            close(
                &format!("{p}.head"),
                head.as_tensor(),
                fx.get(&format!("{p}.head")),
                1e-12,
            )?;
        }
    }
    Ok(())
}

#[test]
fn param_groups_skip_state_and_split_decay_and_head() -> Result<()> {
    let vm = VarMap::new();
    {
        let mut d = vm.data().lock().unwrap();
        for (n, shape) in [
            ("backbone.conv1.weight", vec![4, 3, 3, 3]),
            ("backbone.bn1.weight", vec![4]),
            ("backbone.bn1.running_mean", vec![4]),
            ("backbone.bn1.running_var", vec![4]),
            ("classifier.weight", vec![2, 4, 1, 1]),
            ("classifier.bias", vec![2]),
        ] {
            d.insert(n.into(), Var::zeros(shape, DType::F32, &DEV)?);
        }
    }
    let cfg = SgdConfig {
        weight_decay: 1e-4,
        head_prefixes: vec!["classifier".into()],
        head_lr_mult: 10.0,
        ..SgdConfig::default()
    };
    let groups = param_groups(&vm, &cfg);
    let mut seen = vec![];
    for g in &groups {
        for p in &g.params {
            seen.push((p.name.clone(), g.lr_mult, g.weight_decay));
        }
    }
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        vec![
            ("backbone.bn1.weight".to_string(), 1.0, 0.0),
            ("backbone.conv1.weight".to_string(), 1.0, 1e-4),
            ("classifier.bias".to_string(), 10.0, 0.0),
            ("classifier.weight".to_string(), 10.0, 1e-4),
        ]
    );
    Ok(())
}

#[test]
fn poly_schedule_matches_pytorch_and_the_others_their_formulas() -> Result<()> {
    let fx = Fixture::train();
    let want: Vec<f64> = fx.get("poly.lr").to_vec1()?;
    let poly = ScheduleConfig {
        decay: Decay::Poly {
            power: 0.9,
            min_lr: 0.0,
        },
        warmup_iters: 0,
        warmup_ratio: 0.1,
    };
    for (t, w) in want.iter().enumerate() {
        let got = poly.lr(0.007, t as u64, 20);
        assert!((got - w).abs() < 1e-15, "step {t}: {got} vs {w}");
    }
    let step = ScheduleConfig {
        decay: Decay::Step {
            step_size: 3,
            gamma: 0.5,
        },
        ..poly.clone()
    };
    assert_eq!(step.lr(1.0, 2, 10), 1.0);
    assert_eq!(step.lr(1.0, 7, 10), 0.25);
    let multi = ScheduleConfig {
        decay: Decay::MultiStep {
            milestones: vec![4, 6],
            gamma: 0.1,
        },
        ..poly.clone()
    };
    assert!(
        (multi.lr(1.0, 5, 10) - 0.1).abs() < 1e-15 && (multi.lr(1.0, 6, 10) - 0.01).abs() < 1e-15
    );
    let cos = ScheduleConfig {
        decay: Decay::Cosine { min_lr: 0.1 },
        ..poly.clone()
    };
    assert!((cos.lr(1.0, 5, 10) - 0.55).abs() < 1e-12 && (cos.lr(1.0, 10, 10) - 0.1).abs() < 1e-12);
    let warm = ScheduleConfig {
        decay: Decay::Constant,
        warmup_iters: 4,
        warmup_ratio: 0.2,
    };
    assert!((warm.lr(1.0, 0, 10) - 0.2).abs() < 1e-15);
    assert!((warm.lr(1.0, 2, 10) - 0.6).abs() < 1e-15);
    assert_eq!(warm.lr(1.0, 4, 10), 1.0);
    assert_eq!(MovingSpeedSchedule::default().r(0.5), 0.0);
    let ten = MovingSpeedSchedule::LrProportional {
        factor: 10.0,
        batch_ratio: 1.0,
    };
    assert_eq!(ten.r(0.007), 0.07);
    assert_eq!(ten.r(0.5), 1.0);
    // At 16 times the batch and rate, one update moves the estimates as
    // far as 16 updates of the reference batch: 1 - (1 - 0.1)^16.
    let r16 = ten.at_batch_ratio(16.0).r(0.16);
    assert!((r16 - 0.814_697_981_114_818_6).abs() < 1e-12, "{r16}");
    assert!(((1.0 - r16) - (1.0 - ten.r(0.01)).powi(16)).abs() < 1e-12);
    assert_eq!(MovingSpeedSchedule::Constant { r: 0.3 }.r(0.5), 0.3);
    Ok(())
}

#[test]
fn clipping_and_accumulation() -> Result<()> {
    let mut grads = wsbcn_train::Grads::new();
    grads.insert("a".into(), Tensor::new(&[3.0f64, 0.0], &DEV)?);
    grads.insert("b".into(), Tensor::new(&[[0.0f64, 4.0]], &DEV)?);
    assert_eq!(global_norm(&grads)?, 5.0);
    let before = clip_grad_norm(&mut grads, 1.0)?;
    assert_eq!(before, 5.0);
    assert!((global_norm(&grads)? - 1.0).abs() < 1e-6);

    // Accumulating two micro-batches of one and halving equals the gradient
    // of the mean loss over the batch of two, for a model without batch
    // statistics.
    let w = Var::from_tensor(&Tensor::new(&[0.5f64, -1.0], &DEV)?)?;
    let xs = [
        Tensor::new(&[1.0f64, 2.0], &DEV)?,
        Tensor::new(&[-3.0f64, 0.5], &DEV)?,
    ];
    let loss_of = |x: &Tensor| (x * w.as_tensor())?.sum_all()?.tanh();
    let mut total = wsbcn_train::Grads::new();
    for x in &xs {
        let g = loss_of(x)?.backward()?;
        let mut one = wsbcn_train::Grads::new();
        one.insert("w".into(), g.get(w.as_tensor()).unwrap().clone());
        accumulate(&mut total, one).unwrap();
    }
    scale(&mut total, 0.5).unwrap();
    let joint = ((loss_of(&xs[0])? + loss_of(&xs[1])?)? * 0.5)?.backward()?;
    close(
        "accumulated",
        &total["w"],
        joint.get(w.as_tensor()).unwrap(),
        1e-15,
    )?;
    Ok(())
}
