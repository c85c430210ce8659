//! Forward outputs and gradients against PyTorch's official definitions,
//! from `crates/testkit/fixtures/nn_reference.safetensors` (written by
//! `crates/testkit/fixtures/make_nn_reference.py`, which says how to regenerate it).

use candle_core::{DType, Device, Module, ModuleT, Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use wsbcn_nn::{
    conv, estimated_batch_norm, ConvConfig, ConvGeometry, ConvOp, LayerFactory, MovingSpeed,
    NormConfig, WeightMode,
};
use wsbcn_testkit::{max_abs_diff, Fixture};

const DEV: Device = Device::Cpu;
const TOL: f64 = 1e-10;

fn assert_close(what: &str, got: &Tensor, want: &Tensor) -> Result<()> {
    let got = got.reshape(want.shape())?;
    let err = max_abs_diff(&got, want)?;
    assert!(err < TOL, "{what}: max abs diff {err:e}");
    Ok(())
}

fn set(vm: &VarMap, name: &str, value: &Tensor) -> Result<Var> {
    let var = vm.data().lock().unwrap().get(name).cloned();
    let var = var.unwrap_or_else(|| panic!("model has no variable `{name}`"));
    var.set(&value.reshape(var.shape())?)?;
    Ok(var)
}

fn check_conv<const D: usize>(fx: &Fixture, case: &str, geometry: ConvGeometry<D>) -> Result<()>
where
    ConvGeometry<D>: ConvOp,
{
    for (tag, mode) in WeightMode::ALL {
        let p = format!("{case}.{tag}.");
        let w = fx.get(&format!("{p}weight"));
        let kernel: [usize; D] = std::array::from_fn(|a| w.dims()[a + 2]);
        let (cout, cin) = (w.dim(0)?, w.dim(1)? * geometry.groups);
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F64, &DEV);
        let cfg = ConvConfig {
            geometry,
            mode,
            ..ConvConfig::new(kernel)
        };
        let layer = conv(cin, cout, cfg, vb.pp("c"))?;
        let wv = set(&vm, "c.weight", w)?;
        let bv = set(&vm, "c.bias", fx.get(&format!("{p}bias")))?;
        let x = Var::from_tensor(fx.get(&format!("{p}x")))?;
        let y = layer.forward(x.as_tensor())?;
        assert_close(&format!("{p}y"), &y, fx.get(&format!("{p}y")))?;
        let grads = (y * fx.get(&format!("{p}r")))?.sum_all()?.backward()?;
        for (name, var) in [("grad_x", &x), ("grad_weight", &wv), ("grad_bias", &bv)] {
            let g = grads.get(var.as_tensor()).expect("gradient");
            assert_close(&format!("{p}{name}"), g, fx.get(&format!("{p}{name}")))?;
        }
    }
    Ok(())
}

#[test]
fn ws_and_plain_convs_match_pytorch() -> Result<()> {
    let fx = Fixture::nn();
    let geo2 = |s, p, d, g| ConvGeometry::<2> {
        stride: s,
        padding: p,
        dilation: d,
        groups: g,
    };
    let geo3 = |s, p, d, g| ConvGeometry::<3> {
        stride: s,
        padding: p,
        dilation: d,
        groups: g,
    };
    // The same table as CONVS in make_nn_reference.py.
    check_conv(&fx, "conv2d", geo2([2, 2], [1, 1], [1, 1], 2))?;
    check_conv(&fx, "conv2d_dil", geo2([1, 1], [2, 2], [2, 2], 1))?;
    check_conv(&fx, "conv3d", geo3([1, 2, 2], [1, 1, 1], [2, 1, 1], 1))?;
    check_conv(&fx, "conv3d_dw", geo3([2, 1, 1], [1, 0, 0], [1, 1, 1], 4))?;
    Ok(())
}

#[test]
fn norms_match_pytorch_in_train_and_eval() -> Result<()> {
    let fx = Fixture::nn();
    let mut checked = 0;
    for kind in ["bn", "gn", "ln", "in", "bcn", "bcn-est"] {
        for tag in ["4d", "5d"] {
            for mode in ["train", "eval"] {
                let p = format!("{kind}.{tag}.{mode}.");
                let cfg = NormConfig {
                    spec: kind.into(),
                    groups: 2,
                    moving_speed: 0.1,
                    ..NormConfig::default()
                };
                let vm = VarMap::new();
                let vb = VarBuilder::from_varmap(&vm, DType::F64, &DEV);
                let x = Var::from_tensor(fx.get(&format!("{p}x")))?;
                let norm = LayerFactory::new(&cfg)?.norm(x.dim(1)?, vb.pp("m"))?;
                let mut params = vec![];
                for (name, value) in fx.with_prefix(&format!("{p}param.")) {
                    params.push((name.clone(), set(&vm, &format!("m.{name}"), &value)?));
                }
                for (name, value) in fx.with_prefix(&format!("{p}state.")) {
                    set(&vm, &format!("m.{name}"), &value)?;
                }
                let y = norm.forward_t(x.as_tensor(), mode == "train")?;
                assert_close(&format!("{p}y"), &y, fx.get(&format!("{p}y")))?;
                let grads = (y * fx.get(&format!("{p}r")))?.sum_all()?.backward()?;
                let gx = grads.get(x.as_tensor()).expect("input gradient");
                assert_close(&format!("{p}grad_x"), gx, fx.get(&format!("{p}grad_x")))?;
                for (name, var) in &params {
                    let g = grads.get(var.as_tensor()).expect("parameter gradient");
                    assert_close(
                        &format!("{p}grad.{name}"),
                        g,
                        fx.get(&format!("{p}grad.{name}")),
                    )?;
                }
                for (name, want) in fx.with_prefix(&format!("{p}state_after.")) {
                    let got = vm.data().lock().unwrap()[&format!("m.{name}")]
                        .as_tensor()
                        .clone();
                    assert_close(&format!("{p}state_after.{name}"), &got, &want)?;
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 24);
    Ok(())
}

#[test]
fn estimated_bn_matches_pytorch_over_steps_with_changing_r() -> Result<()> {
    let fx = Fixture::nn();
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &DEV);
    let speed = MovingSpeed::new(0.0);
    let bn = estimated_batch_norm(3, 1e-5, speed.clone(), vb.pp("m"))?;
    let w = set(&vm, "m.weight", fx.get("ebn_steps.param.weight"))?;
    set(&vm, "m.bias", fx.get("ebn_steps.param.bias"))?;
    set(
        &vm,
        "m.running_mean",
        fx.get("ebn_steps.state.running_mean"),
    )?;
    set(&vm, "m.running_var", fx.get("ebn_steps.state.running_var"))?;
    let rs: Vec<f64> = fx.get("ebn_steps.r").to_vec1()?;
    assert!(rs.len() >= 4 && rs.contains(&0.0));
    for (i, r) in rs.into_iter().enumerate() {
        speed.set(r)?;
        let p = format!("ebn_steps.{i}.");
        let x = Var::from_tensor(fx.get(&format!("{p}x")))?;
        let y = bn.forward_t(x.as_tensor(), true)?;
        assert_close(&format!("{p}y"), &y, fx.get(&format!("{p}y")))?;
        assert_close(
            &format!("{p}mean"),
            bn.estimated_mean(),
            fx.get(&format!("{p}running_mean")),
        )?;
        assert_close(
            &format!("{p}var"),
            bn.estimated_var(),
            fx.get(&format!("{p}running_var")),
        )?;
        let grads = (y * fx.get(&format!("{p}r")))?.sum_all()?.backward()?;
        assert_close(
            &format!("{p}grad_x"),
            grads.get(x.as_tensor()).unwrap(),
            fx.get(&format!("{p}grad_x")),
        )?;
        assert_close(
            &format!("{p}grad_w"),
            grads.get(w.as_tensor()).unwrap(),
            fx.get(&format!("{p}grad_weight")),
        )?;
    }
    Ok(())
}
