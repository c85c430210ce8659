//! Normalization layers: finite-difference gradients in train and eval mode
//! on 4D and 5D input, and the train/eval semantics of the running state.

use candle_core::{DType, Device, ModuleT, Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use wsbcn_nn::{batch_norm, estimated_batch_norm, LayerFactory, MovingSpeed, Norm, NormConfig};
use wsbcn_testkit::{check_grads, max_abs_diff, probe_loss, Rng};

const DEV: Device = Device::Cpu;

/// Gives every variable of `vm` random values (variances positive) so that
/// no gradient is trivially zero or symmetric.
fn randomize(vm: &VarMap, rng: &mut Rng) -> Result<()> {
    for (name, var) in vm.data().lock().unwrap().iter() {
        let r = rng.randn(var.dims(), DType::F64, &DEV)?;
        let v = if name.ends_with("running_var") {
            (r.abs()? + 0.5)?
        } else if name.ends_with("weight") {
            (r.affine(0.3, 1.0))?
        } else {
            r.affine(0.5, 0.0)?
        };
        var.set(&v)?;
    }
    Ok(())
}

fn factory(spec: &str, groups: usize) -> LayerFactory {
    let cfg = NormConfig {
        spec: spec.into(),
        groups,
        moving_speed: 0.0,
        ..NormConfig::default()
    };
    LayerFactory::new(&cfg).unwrap()
}

fn build(spec: &str, channels: usize) -> Result<(VarMap, Norm)> {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &DEV);
    let norm = factory(spec, 2).norm(channels, vb.pp("norm"))?;
    Ok((vm, norm))
}

#[test]
fn every_norm_has_correct_gradients_in_train_and_eval() -> Result<()> {
    let mut rng = Rng::new(11);
    for spec in ["bn", "gn", "ln", "in", "bcn", "bcn-est", "none"] {
        for shape in [vec![2, 4, 3, 3], vec![2, 4, 2, 3, 2]] {
            for train in [true, false] {
                let (vm, norm) = build(spec, 4)?;
                randomize(&vm, &mut rng)?;
                let x = Var::from_tensor(&rng.randn(&shape, DType::F64, &DEV)?.affine(2.0, 0.5)?)?;
                let loss = || probe_loss(&norm.forward_t(x.as_tensor(), train)?, 99);
                let data = vm.data().lock().unwrap().clone();
                let mut vars: Vec<(&str, &Var)> = vec![("x", &x)];
                let mut state = vec![];
                for (name, var) in data.iter() {
                    if name.contains("running") {
                        state.push(var.clone());
                    } else {
                        vars.push((name.as_str(), var));
                    }
                }
                check_grads(loss, &vars, 1e-5, 1e-6, 50)
                    .map_err(|e| e.context(format!("{spec} {shape:?} train={train}")))?;
                // Running statistics and estimates never get a gradient.
                let grads = loss()?.backward()?;
                for s in &state {
                    assert!(
                        grads.get(s.as_tensor()).is_none(),
                        "{spec}: running state got a gradient"
                    );
                }
            }
        }
    }
    Ok(())
}

#[test]
fn estimated_bn_gradients_treat_estimates_as_constants() -> Result<()> {
    let mut rng = Rng::new(12);
    for shape in [vec![1, 3, 4, 4], vec![1, 3, 2, 3, 3]] {
        for train in [true, false] {
            let vm = VarMap::new();
            let vb = VarBuilder::from_varmap(&vm, DType::F64, &DEV);
            let bn = estimated_batch_norm(3, 1e-5, MovingSpeed::new(0.0), vb.pp("ebn"))?;
            randomize(&vm, &mut rng)?;
            let x = Var::from_tensor(&rng.randn(&shape, DType::F64, &DEV)?)?;
            let loss = || probe_loss(&bn.forward_t(x.as_tensor(), train)?, 5);
            let w = vm.data().lock().unwrap()["ebn.weight"].clone();
            let b = vm.data().lock().unwrap()["ebn.bias"].clone();
            check_grads(
                loss,
                &[("x", &x), ("weight", &w), ("bias", &b)],
                1e-5,
                1e-6,
                50,
            )?;
        }
    }
    Ok(())
}

#[test]
fn estimated_bn_updates_then_uses_and_its_gradient_holds_the_new_estimates_constant() -> Result<()>
{
    // With r > 0 a training forward first moves the estimates towards the
    // batch, then normalizes with the moved ones, which carry no gradient:
    // its output and gradients are those of an evaluation forward (which
    // uses the estimates unchanged) right after it, and those match finite
    // differences.
    let mut rng = Rng::new(13);
    for shape in [vec![2, 3, 4, 4], vec![1, 3, 2, 3, 3]] {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F64, &DEV);
        let bn = estimated_batch_norm(3, 1e-5, MovingSpeed::new(0.3), vb.pp("ebn"))?;
        randomize(&vm, &mut rng)?;
        let x = Var::from_tensor(&rng.randn(&shape, DType::F64, &DEV)?)?;
        let w = vm.data().lock().unwrap()["ebn.weight"].clone();
        let before: Vec<f64> = bn.estimated_mean().to_vec1()?;
        let y_train = bn.forward_t(x.as_tensor(), true)?;
        let after: Vec<f64> = bn.estimated_mean().to_vec1()?;
        assert!(
            before.iter().zip(&after).all(|(a, b)| a != b),
            "the estimates moved"
        );
        let y_eval = bn.forward_t(x.as_tensor(), false)?;
        assert!(
            max_abs_diff(&y_train, &y_eval)? < 1e-12,
            "normalized with the moved estimates"
        );
        let g_train = probe_loss(&y_train, 6)?.backward()?;
        let g_eval = probe_loss(&y_eval, 6)?.backward()?;
        for v in [x.as_tensor(), w.as_tensor()] {
            let (a, b) = (g_train.get(v).unwrap(), g_eval.get(v).unwrap());
            assert!(max_abs_diff(a, b)? < 1e-12);
        }
        let loss = || probe_loss(&bn.forward_t(x.as_tensor(), false)?, 6);
        check_grads(loss, &[("x", &x), ("weight", &w)], 1e-5, 1e-6, 50)?;
    }
    Ok(())
}

fn per_channel_stats(x: &Tensor) -> Result<(Vec<f64>, Vec<f64>)> {
    // (N, C, ...) -> per-channel mean and biased variance over N and space.
    let (n, c) = (x.dim(0)?, x.dim(1)?);
    let v: Vec<Vec<Vec<f64>>> = x.reshape((n, c, ()))?.to_vec3()?;
    let mut mean = vec![0.0; c];
    let mut var = vec![0.0; c];
    for ch in 0..c {
        let vals: Vec<f64> = v.iter().flat_map(|s| s[ch].iter().copied()).collect();
        let m = vals.iter().sum::<f64>() / vals.len() as f64;
        mean[ch] = m;
        var[ch] = vals.iter().map(|a| (a - m).powi(2)).sum::<f64>() / vals.len() as f64;
    }
    Ok((mean, var))
}

#[test]
fn bn_updates_running_stats_with_momentum_and_uses_them_in_eval() -> Result<()> {
    let mut rng = Rng::new(13);
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &DEV);
    let bn = batch_norm(3, 1e-5, 0.25, vb.pp("bn"))?;
    let (mut rm, mut rv) = (vec![0.0; 3], vec![1.0; 3]);
    for step in 0..3 {
        let x = rng
            .randn(&[2, 3, 2, 2, 3], DType::F64, &DEV)?
            .affine(1.5, step as f64)?;
        let y = bn.forward_t(&x, true)?;
        let (m, v) = per_channel_stats(&x)?;
        let count = 24.0;
        for c in 0..3 {
            rm[c] = 0.75 * rm[c] + 0.25 * m[c];
            rv[c] = 0.75 * rv[c] + 0.25 * v[c] * count / (count - 1.0);
        }
        // Training output uses the batch statistics: per channel mean 0, var ~1.
        let (ym, yv) = per_channel_stats(&y)?;
        for c in 0..3 {
            assert!(ym[c].abs() < 1e-10 && (yv[c] - v[c] / (v[c] + 1e-5)).abs() < 1e-10);
        }
    }
    let got_m: Vec<f64> = bn.running_mean().to_vec1()?;
    let got_v: Vec<f64> = bn.running_var().to_vec1()?;
    for c in 0..3 {
        assert!((got_m[c] - rm[c]).abs() < 1e-12 && (got_v[c] - rv[c]).abs() < 1e-12);
    }
    // Eval: (x - running_mean) / sqrt(running_var + eps), state unchanged.
    let x = rng.randn(&[1, 3, 2, 2], DType::F64, &DEV)?;
    let y: Vec<Vec<Vec<f64>>> = bn.forward_t(&x, false)?.reshape((1, 3, 4))?.to_vec3()?;
    let xs: Vec<Vec<Vec<f64>>> = x.reshape((1, 3, 4))?.to_vec3()?;
    for c in 0..3 {
        for i in 0..4 {
            let want = (xs[0][c][i] - rm[c]) / (rv[c] + 1e-5).sqrt();
            assert!((y[0][c][i] - want).abs() < 1e-12);
        }
    }
    assert_eq!(bn.running_mean().to_vec1::<f64>()?, got_m);
    Ok(())
}

#[test]
fn bn_on_5d_input_pools_time_with_space() -> Result<()> {
    let x = Rng::new(14).randn(&[2, 4, 3, 5, 2], DType::F64, &DEV)?;
    let (_, a) = build("bn", 4)?;
    let (_, b) = build("bn", 4)?;
    let y5 = a.forward_t(&x, true)?;
    let y4 = b.forward_t(&x.reshape((2, 4, 15, 2))?, true)?;
    assert!(max_abs_diff(&y5.reshape((2, 4, 15, 2))?, &y4)? < 1e-12);
    Ok(())
}

#[test]
fn estimated_bn_follows_the_update_rule_and_freezes_at_r_zero() -> Result<()> {
    let mut rng = Rng::new(15);
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &DEV);
    let speed = MovingSpeed::new(0.0);
    let bn = estimated_batch_norm(2, 1e-5, speed.clone(), vb.pp("ebn"))?;
    let (mut mu, mut var) = (vec![0.0; 2], vec![1.0; 2]);
    for (step, r) in [0.5, 0.0, 0.2, 0.05, 0.0, 1.0].into_iter().enumerate() {
        speed.set(r)?;
        let x = rng
            .randn(&[1, 2, 3, 3], DType::F64, &DEV)?
            .affine(2.0, step as f64 - 1.0)?;
        let before: Vec<f64> = bn.estimated_mean().to_vec1()?;
        let y: Vec<Vec<Vec<f64>>> = bn.forward_t(&x, true)?.reshape((1, 2, 9))?.to_vec3()?;
        let xs: Vec<Vec<Vec<f64>>> = x.reshape((1, 2, 9))?.to_vec3()?;
        for c in 0..2 {
            let mb = xs[0][c].iter().sum::<f64>() / 9.0;
            let vb = xs[0][c].iter().map(|a| (a - mu[c]).powi(2)).sum::<f64>() / 9.0;
            mu[c] = (1.0 - r) * mu[c] + r * mb;
            var[c] = (1.0 - r) * var[c] + r * vb;
            for i in 0..9 {
                let want = (xs[0][c][i] - mu[c]) / (var[c] + 1e-5).sqrt();
                assert!((y[0][c][i] - want).abs() < 1e-12, "step {step}");
            }
        }
        let after: Vec<f64> = bn.estimated_mean().to_vec1()?;
        if r == 0.0 {
            assert_eq!(before, after, "r = 0 must leave the estimates unchanged");
        }
        let got_v: Vec<f64> = bn.estimated_var().to_vec1()?;
        for c in 0..2 {
            assert!((after[c] - mu[c]).abs() < 1e-12 && (got_v[c] - var[c]).abs() < 1e-12);
        }
    }
    // Eval never moves the estimates, whatever r is.
    speed.set(0.9)?;
    let before: Vec<f64> = bn.estimated_var().to_vec1()?;
    bn.forward_t(&rng.randn(&[1, 2, 3, 3], DType::F64, &DEV)?, false)?;
    assert_eq!(before, bn.estimated_var().to_vec1::<f64>()?);
    Ok(())
}

#[test]
fn bn_with_one_value_per_channel_is_an_error_naming_the_layer() -> Result<()> {
    for spec in ["bn", "bcn"] {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &DEV);
        let norm = factory(spec, 2).norm(4, vb.pp("decode_head.image_pool.bn"))?;
        let x = Tensor::ones((1, 4, 1, 1), DType::F32, &DEV)?;
        let err = norm.forward_t(&x, true).unwrap_err().to_string();
        assert!(
            err.contains("decode_head.image_pool.bn")
                && err.contains("more than 1 value per channel"),
            "{spec}: {err}"
        );
        // Evaluation uses running statistics and is fine.
        let y = norm.forward_t(&x, false)?;
        assert!(y
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .all(|v| v.is_finite()));
    }
    // Group-wise and estimated norms are defined at batch 1 on a 1x1 map.
    for spec in ["gn", "bcn-est", "ln"] {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &DEV);
        let norm = factory(spec, 2).norm(4, vb.pp("n"))?;
        let x = Tensor::new(&[1f32, 2., 3., 4.], &DEV)?.reshape((1, 4, 1, 1))?;
        let y = norm.forward_t(&x, true)?;
        assert!(
            y.flatten_all()?
                .to_vec1::<f32>()?
                .iter()
                .all(|v| v.is_finite()),
            "{spec}"
        );
    }
    Ok(())
}

#[test]
fn shape_mismatches_name_the_layer_and_both_shapes() -> Result<()> {
    for spec in ["bn", "gn", "ln", "in", "bcn", "bcn-est"] {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &DEV);
        let norm = factory(spec, 2).norm(4, vb.pp("layer3.0.bn1"))?;
        for bad in [vec![2, 4, 5], vec![2, 6, 3, 3]] {
            let x = Tensor::zeros(bad.as_slice(), DType::F32, &DEV)?;
            let err = norm.forward_t(&x, true).unwrap_err().to_string();
            assert!(
                err.contains("layer3.0.bn1")
                    && err.contains(&format!("{bad:?}"))
                    && err.contains("(N, 4, H, W)"),
                "{spec}: {err}"
            );
        }
    }
    Ok(())
}

/// Asserts that each tensor of a fused path is within `tol` (relative to
/// the largest magnitude, at least 1) of the composite path's, by name.
fn assert_paths_agree(
    names: &[&str],
    fused: &[Tensor],
    composite: &[Tensor],
    tol: f64,
    context: &str,
) -> Result<()> {
    assert_eq!(
        (names.len(), fused.len()),
        (composite.len(), composite.len())
    );
    for (what, (a, e)) in names.iter().zip(fused.iter().zip(composite)) {
        let scale = e
            .abs()?
            .max_all()?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
        let diff = max_abs_diff(a, e)?;
        assert!(
            diff <= tol * scale.max(1.0),
            "{context}: {what} differs by {diff}"
        );
    }
    Ok(())
}

/// The fused CPU group norm equals the composite one from candle ops, value
/// and gradients (x, weight, bias), in f64 and f32.
#[test]
fn fused_group_norm_matches_the_composite() -> Result<()> {
    use wsbcn_nn::{group_norm_affine, group_norm_affine_composite};
    let mut rng = Rng::new(5);
    for (dtype, tol) in [(DType::F64, 1e-10), (DType::F32, 2e-4)] {
        for (shape, groups) in [([2, 8, 37], 4), ([1, 6, 5], 6), ([3, 4, 10], 1)] {
            let c = shape[1];
            let x = Var::from_tensor(&rng.randn(&shape, dtype, &DEV)?.affine(3.0, 1.0)?)?;
            let w = Var::from_tensor(&rng.randn(&[c], dtype, &DEV)?.affine(0.5, 1.0)?)?;
            let b = Var::from_tensor(&rng.randn(&[c], dtype, &DEV)?)?;
            let probe = rng.randn(&shape, dtype, &DEV)?;
            let mut results = vec![];
            for fused in [true, false] {
                let (xt, wt, bt) = (x.as_tensor(), w.as_tensor(), b.as_tensor());
                let y = if fused {
                    group_norm_affine(xt, groups, wt, bt, 1e-5)
                } else {
                    group_norm_affine_composite(xt, groups, wt, bt, 1e-5)
                }
                .map_err(candle_core::Error::wrap)?;
                let grads = (&y * &probe)?.sum_all()?.backward()?;
                let g = |v: &Var| grads.get(v.as_tensor()).cloned().expect("gradient");
                results.push([y, g(&x), g(&w), g(&b)]);
            }
            assert_paths_agree(
                &["y", "dx", "dw", "db"],
                &results[0],
                &results[1],
                tol,
                &format!("{dtype:?} {shape:?} groups {groups}"),
            )?;
        }
    }
    Ok(())
}

/// A norm layer's forward, on one of its two paths.
type Layer = Box<dyn Fn(&Tensor) -> Result<Tensor>>;

/// The fused layer's output, or the composite one's.
fn pick(
    fused: bool,
    fused_out: impl FnOnce() -> Result<Tensor>,
    composite: impl FnOnce() -> wsbcn_nn::Result<Tensor>,
) -> Result<Tensor> {
    if fused {
        fused_out()
    } else {
        composite().map_err(candle_core::Error::wrap)
    }
}

/// The fused CPU BatchNorm and estimated BN equal their candle-op
/// composites: outputs, gradients (x, weight, bias) and the running state
/// after a training step, in train and eval mode, on 4D and 5D input, in f64
/// and f32.
#[test]
fn fused_batch_norms_match_their_composites() -> Result<()> {
    let mut rng = Rng::new(6);
    for (dtype, tol) in [(DType::F64, 1e-10), (DType::F32, 2e-4)] {
        for shape in [vec![2, 5, 3, 7], vec![1, 4, 2, 3, 3], vec![3, 2, 1, 2]] {
            let c = shape[1];
            let x = Var::from_tensor(&rng.randn(&shape, dtype, &DEV)?.affine(3.0, 1.0)?)?;
            let probe = rng.randn(&shape, dtype, &DEV)?;
            // Same parameters and state for both paths of each layer kind.
            let init: Vec<(String, Tensor)> = ["weight", "bias", "running_mean", "running_var"]
                .iter()
                .map(|n| {
                    let r = rng.randn(&[c], dtype, &DEV)?;
                    let v = match *n {
                        "running_var" => (r.abs()? + 0.5)?,
                        "weight" => r.affine(0.3, 1.0)?,
                        _ => r.affine(0.5, 0.0)?,
                    };
                    Ok((n.to_string(), v))
                })
                .collect::<Result<_>>()?;
            for kind in ["bn", "estimated"] {
                for train in [true, false] {
                    let mut results = vec![];
                    for fused in [true, false] {
                        let vm = VarMap::new();
                        let vb = VarBuilder::from_varmap(&vm, dtype, &DEV);
                        let layer: Layer = if kind == "bn" {
                            let bn = batch_norm(c, 1e-5, 0.3, vb.pp("n"))?;
                            Box::new(move |x: &Tensor| {
                                pick(
                                    fused,
                                    || bn.forward_t(x, train),
                                    || bn.forward_composite(x, train),
                                )
                            })
                        } else {
                            let bn =
                                estimated_batch_norm(c, 1e-5, MovingSpeed::new(0.2), vb.pp("n"))?;
                            Box::new(move |x: &Tensor| {
                                pick(
                                    fused,
                                    || bn.forward_t(x, train),
                                    || bn.forward_composite(x, train),
                                )
                            })
                        };
                        for (n, v) in &init {
                            vm.data().lock().unwrap()[&format!("n.{n}")].set(v)?;
                        }
                        let y = layer(x.as_tensor())?;
                        let grads = (&y * &probe)?.sum_all()?.backward()?;
                        let data = vm.data().lock().unwrap().clone();
                        let g = |t: &Tensor| grads.get(t).cloned().expect("gradient");
                        results.push([
                            y,
                            g(x.as_tensor()),
                            g(data["n.weight"].as_tensor()),
                            g(data["n.bias"].as_tensor()),
                            data["n.running_mean"].as_tensor().clone(),
                            data["n.running_var"].as_tensor().clone(),
                        ]);
                    }
                    assert_paths_agree(
                        &["y", "dx", "dw", "db", "running_mean", "running_var"],
                        &results[0],
                        &results[1],
                        tol,
                        &format!("{kind} {dtype:?} {shape:?} train={train}"),
                    )?;
                }
            }
        }
    }
    Ok(())
}
