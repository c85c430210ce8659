//! Spatial ops of the layers crate: bilinear resize, max pooling with
//! padding, adaptive and global average pooling. Values and gradients
//! against PyTorch (`crates/testkit/fixtures/train_reference.safetensors`, written by
//! `crates/testkit/fixtures/make_train_reference.py`) and finite differences.

use candle_core::{DType, Device, Result, Tensor, Var};
use wsbcn_nn::{adaptive_avg_pool, global_avg_pool, max_pool, resize_bilinear};
use wsbcn_testkit::{check_grads, max_abs_diff, probe_loss, Fixture, Rng};

const DEV: Device = Device::Cpu;

/// Replays a fixture case `prefix` through `f`: output and input gradient.
fn replay(
    fx: &Fixture,
    prefix: &str,
    f: impl Fn(&Tensor) -> wsbcn_nn::Result<Tensor>,
) -> Result<()> {
    let x = Var::from_tensor(fx.get(&format!("{prefix}.x")))?;
    let y = f(x.as_tensor())?;
    let err = max_abs_diff(&y, fx.get(&format!("{prefix}.y")))?;
    assert!(err < 1e-10, "{prefix}.y: {err:e}");
    let grads = (y * fx.get(&format!("{prefix}.r")))?
        .sum_all()?
        .backward()?;
    let err = max_abs_diff(
        grads.get(x.as_tensor()).unwrap(),
        fx.get(&format!("{prefix}.grad_x")),
    )?;
    assert!(err < 1e-10, "{prefix}.grad_x: {err:e}");
    Ok(())
}

#[test]
fn resize_matches_pytorch_in_both_modes() -> Result<()> {
    let fx = Fixture::train();
    for i in 0..4 {
        for (tag, ac) in [("ac", true), ("noac", false)] {
            let p = format!("resize.{i}.{tag}");
            let size: Vec<i64> = fx.get(&format!("{p}.size")).to_vec1()?;
            replay(&fx, &p, |x| {
                resize_bilinear(x, (size[0] as usize, size[1] as usize), ac)
            })?;
        }
    }
    Ok(())
}

#[test]
fn pooling_matches_pytorch() -> Result<()> {
    let fx = Fixture::train();
    replay(&fx, "maxpool2d", |x| max_pool(x, [3, 3], [2, 2], [1, 1]))?;
    replay(&fx, "maxpool3d_a", |x| {
        max_pool(x, [1, 3, 3], [1, 2, 2], [0, 1, 1])
    })?;
    replay(&fx, "maxpool3d_b", |x| {
        max_pool(x, [3, 3, 3], [2, 2, 2], [1, 1, 1])
    })?;
    replay(&fx, "adaptive2d", |x| adaptive_avg_pool(x, [3, 4]))?;
    replay(&fx, "adaptive3d", |x| adaptive_avg_pool(x, [2, 3, 3]))?;
    Ok(())
}

type SpatialOp = dyn Fn(&Tensor) -> wsbcn_nn::Result<Tensor>;

#[test]
fn spatial_ops_have_correct_gradients() -> Result<()> {
    let mut rng = Rng::new(31);
    let x4 = Var::from_tensor(&rng.randn(&[1, 2, 5, 6], DType::F64, &DEV)?)?;
    let x5 = Var::from_tensor(&rng.randn(&[1, 2, 3, 5, 4], DType::F64, &DEV)?)?;
    let cases: Vec<(&str, &Var, Box<SpatialOp>)> = vec![
        (
            "resize up ac",
            &x4,
            Box::new(|x| resize_bilinear(x, (9, 7), true)),
        ),
        (
            "resize down",
            &x4,
            Box::new(|x| resize_bilinear(x, (3, 4), false)),
        ),
        (
            "max 2d",
            &x4,
            Box::new(|x| max_pool(x, [3, 3], [2, 2], [1, 1])),
        ),
        (
            "max 3d",
            &x5,
            Box::new(|x| max_pool(x, [3, 2, 3], [1, 2, 2], [1, 0, 1])),
        ),
        (
            "adaptive 3d",
            &x5,
            Box::new(|x| adaptive_avg_pool(x, [2, 2, 3])),
        ),
        ("global", &x5, Box::new(global_avg_pool)),
    ];
    for (name, x, f) in cases {
        let loss = || probe_loss(&f(x.as_tensor())?, 3);
        check_grads(loss, &[("x", x)], 1e-6, 1e-6, 60).map_err(|e| e.context(name))?;
    }
    Ok(())
}

#[test]
fn max_pool_propagates_nan_and_sends_ties_to_the_first_maximum() -> Result<()> {
    // Two 2x2 windows: [1 NaN; 5 NaN] and [3 3; 3 2].
    let nan = f32::NAN;
    let x = Var::from_tensor(&Tensor::from_vec(
        vec![1f32, nan, 3.0, 3.0, 5.0, nan, 3.0, 2.0],
        (1, 1, 2, 4),
        &DEV,
    )?)?;
    let y = max_pool(x.as_tensor(), [2, 2], [2, 2], [0, 0])?;
    let yv: Vec<f32> = y.flatten_all()?.to_vec1()?;
    assert!(
        yv[0].is_nan(),
        "a NaN in the window gives NaN, got {}",
        yv[0]
    );
    assert_eq!(yv[1], 3.0);
    let grads = y.sum_all()?.backward()?;
    let dx: Vec<f32> = grads.get(x.as_tensor()).unwrap().flatten_all()?.to_vec1()?;
    // The whole gradient of the NaN window goes to one of its NaNs; the tie
    // in the second window goes to its first 3 (PyTorch's rule).
    assert_eq!(dx[1] + dx[5], 1.0, "{dx:?}");
    assert_eq!([dx[0], dx[4]], [0.0, 0.0], "{dx:?}");
    assert_eq!([dx[2], dx[3], dx[6], dx[7]], [1.0, 0.0, 0.0, 0.0], "{dx:?}");
    Ok(())
}

#[test]
fn global_pool_keeps_axes_and_bad_geometry_is_an_error() -> Result<()> {
    let x = Tensor::arange(0f32, 24., &DEV)?.reshape((1, 2, 3, 4))?;
    let y = global_avg_pool(&x)?;
    assert_eq!(y.dims(), [1, 2, 1, 1]);
    assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, vec![5.5, 17.5]);
    let err = max_pool(&x, [3, 3], [2, 2], [2, 2])
        .unwrap_err()
        .to_string();
    assert!(err.contains("padding"), "{err}");
    let err = resize_bilinear(&x.flatten_all()?, (2, 2), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("resize_bilinear") && err.contains("[24]"),
        "{err}"
    );
    Ok(())
}

/// The fused ReLU equals candle's, value and gradient, in f64 and f32, and
/// passes no gradient where `x <= 0` (PyTorch's convention at 0).
#[test]
fn fused_relu_matches_candle_and_masks_gradients() -> Result<()> {
    let mut rng = Rng::new(3);
    for dtype in [DType::F64, DType::F32] {
        let x = Var::from_tensor(&rng.randn(&[2, 3, 70, 90], dtype, &DEV)?)?;
        let probe = rng.randn(&[2, 3, 70, 90], dtype, &DEV)?;
        let y = wsbcn_nn::relu(x.as_tensor()).map_err(candle_core::Error::wrap)?;
        let grads = (&y * &probe)?.sum_all()?.backward()?;
        let dx = grads.get(x.as_tensor()).expect("gradient");
        assert_eq!(max_abs_diff(&y, &x.as_tensor().relu()?)?, 0.0);
        let mask = x.as_tensor().gt(0.0)?.to_dtype(dtype)?;
        assert_eq!(max_abs_diff(dx, &(&probe * &mask)?)?, 0.0);
    }
    let x = Var::from_tensor(&Tensor::new(&[-1.0f64, 0.0, 2.0], &DEV)?)?;
    let y = wsbcn_nn::relu(x.as_tensor()).map_err(candle_core::Error::wrap)?;
    let dx = y
        .sum_all()?
        .backward()?
        .get(x.as_tensor())
        .unwrap()
        .to_vec1::<f64>()?;
    assert_eq!(dx, [0.0, 0.0, 1.0]);
    Ok(())
}
