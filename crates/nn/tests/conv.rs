//! Convolution: the 2D/3D op against the direct definition, finite-difference
//! gradients of plain and WS convs, fold(), and the WS gradient projection.

use candle_core::{DType, Device, Module, Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use wsbcn_kernels::ConvBackend;
use wsbcn_nn::{
    conv, conv2d, conv2d_with, conv3d_with, standardize, standardize_composite, ConvConfig,
    ConvGeometry, Diagnostics, LayerFactory, WeightInit, WeightMode,
};
use wsbcn_testkit::{check_grads, direct_conv3d, max_abs_diff, probe_loss, Rng};

const DEV: Device = Device::Cpu;

/// One convolution case: input and kernel shapes (rank 4 or 5) and the
/// per-axis stride, padding, dilation, and groups.
struct Case {
    x: Vec<usize>,
    w: Vec<usize>,
    stride: Vec<usize>,
    padding: Vec<usize>,
    dilation: Vec<usize>,
    groups: usize,
}

fn case(x: &[usize], w: &[usize], s: &[usize], p: &[usize], d: &[usize], groups: usize) -> Case {
    Case {
        x: x.to_vec(),
        w: w.to_vec(),
        stride: s.to_vec(),
        padding: p.to_vec(),
        dilation: d.to_vec(),
        groups,
    }
}

fn geometry<const D: usize>(c: &Case) -> ConvGeometry<D> {
    let arr = |v: &[usize]| std::array::from_fn(|i| v[i]);
    ConvGeometry {
        stride: arr(&c.stride),
        padding: arr(&c.padding),
        dilation: arr(&c.dilation),
        groups: c.groups,
    }
}

impl Case {
    /// The convolution under test, on one backend.
    fn conv(&self, x: &Tensor, w: &Tensor, backend: ConvBackend) -> wsbcn_nn::Result<Tensor> {
        if self.stride.len() == 2 {
            conv2d_with(backend, x, w, &geometry(self))
        } else {
            conv3d_with(backend, x, w, &geometry(self))
        }
    }

    /// The direct definition; a 2D case gets a unit time axis.
    fn direct(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        if self.stride.len() == 3 {
            let arr = |v: &[usize]| [v[0], v[1], v[2]];
            return direct_conv3d(
                x,
                w,
                arr(&self.stride),
                arr(&self.padding),
                arr(&self.dilation),
                self.groups,
            );
        }
        let lift = |v: &[usize], t| [t, v[0], v[1]];
        direct_conv3d(
            &x.unsqueeze(2)?,
            &w.unsqueeze(2)?,
            lift(&self.stride, 1),
            lift(&self.padding, 0),
            lift(&self.dilation, 1),
            self.groups,
        )?
        .squeeze(2)
    }

    fn tensors(&self, rng: &mut Rng, dtype: DType) -> Result<(Var, Var)> {
        Ok((
            Var::from_tensor(&rng.randn(&self.x, dtype, &DEV)?)?,
            Var::from_tensor(&rng.randn(&self.w, dtype, &DEV)?)?,
        ))
    }
}

/// 3D and 2D cases over every stride/padding/dilation/groups combination the
/// models use, and asymmetric ones.
fn cases() -> Vec<Case> {
    vec![
        case(
            &[2, 3, 5, 6, 7],
            &[4, 3, 3, 3, 3],
            &[1, 1, 1],
            &[1, 1, 1],
            &[1, 1, 1],
            1,
        ),
        case(
            &[1, 4, 6, 7, 6],
            &[6, 2, 3, 3, 3],
            &[2, 2, 1],
            &[1, 0, 1],
            &[1, 1, 1],
            2,
        ),
        case(
            &[2, 2, 7, 8, 8],
            &[3, 2, 2, 3, 3],
            &[1, 2, 2],
            &[1, 2, 2],
            &[2, 2, 2],
            1,
        ),
        case(
            &[1, 3, 4, 9, 9],
            &[3, 3, 1, 3, 3],
            &[1, 2, 2],
            &[0, 1, 1],
            &[1, 1, 1],
            1,
        ),
        case(
            &[1, 3, 5, 5, 5],
            &[3, 3, 3, 1, 1],
            &[2, 1, 1],
            &[1, 0, 0],
            &[1, 1, 1],
            1,
        ),
        case(
            &[1, 4, 4, 7, 9],
            &[4, 1, 1, 3, 3],
            &[1, 1, 2],
            &[0, 1, 2],
            &[1, 2, 1],
            4,
        ),
        case(
            &[2, 2, 3, 6, 5],
            &[2, 2, 1, 1, 1],
            &[1, 1, 1],
            &[0, 0, 0],
            &[1, 1, 1],
            1,
        ),
        case(&[2, 3, 7, 7], &[4, 3, 3, 3], &[1, 1], &[1, 1], &[1, 1], 1),
        case(&[1, 4, 9, 8], &[4, 2, 3, 3], &[2, 2], &[1, 1], &[1, 1], 2),
        case(&[1, 2, 9, 9], &[3, 2, 3, 3], &[1, 1], &[2, 2], &[2, 2], 1),
        case(&[1, 2, 8, 7], &[2, 2, 3, 2], &[2, 2], &[1, 0], &[1, 1], 1),
        case(&[1, 3, 9, 8], &[3, 1, 3, 3], &[2, 1], &[1, 2], &[1, 2], 3),
        case(&[2, 2, 5, 6], &[3, 2, 1, 1], &[1, 1], &[0, 0], &[1, 1], 1),
        case(&[1, 2, 11, 10], &[2, 2, 3, 3], &[3, 3], &[1, 1], &[1, 1], 1),
        // ASPP on a small map: dilation and padding wider than the input,
        // so the outer taps read only padding.
        case(&[1, 2, 5, 4], &[3, 2, 3, 3], &[1, 1], &[6, 6], &[6, 6], 1),
        case(
            &[1, 2, 3, 4, 5],
            &[2, 2, 3, 3, 3],
            &[1, 1, 1],
            &[4, 7, 5],
            &[4, 7, 5],
            1,
        ),
        // Two that oneDNN runs in channels-last layouts (`onednn.rs`,
        // `Plan::build`): R3D-10's 8-channel convolution on 4x16x16 (the
        // weight gradient) and an ASPP branch at rate 6 on a 4x4 map.
        case(
            &[1, 8, 4, 16, 16],
            &[8, 8, 3, 3, 3],
            &[1, 1, 1],
            &[1, 1, 1],
            &[1, 1, 1],
            1,
        ),
        case(
            &[2, 64, 4, 4],
            &[32, 64, 3, 3],
            &[1, 1],
            &[6, 6],
            &[6, 6],
            1,
        ),
    ]
}

// oneDNN runs f32 only (f64 calls take the GEMM op), so its f32 results
// are held to the direct definition and to the f64 reference gradients. The
// tests need `libdnnl.so.2` (Debian package libdnnl2, installed by
// .ci/setup): without it the oneDNN calls fail, naming the library.

#[test]
fn conv_matches_direct_definition_on_every_backend() -> Result<()> {
    let mut rng = Rng::new(1);
    for (dtype, tol) in [(DType::F64, 1e-10), (DType::F32, 1e-4)] {
        for c in cases() {
            let (x, w) = c.tensors(&mut rng, dtype)?;
            let want = c.direct(x.as_tensor(), w.as_tensor())?;
            for backend in ConvBackend::ALL {
                let y = c.conv(x.as_tensor(), w.as_tensor(), backend)?;
                let err = max_abs_diff(&y, &want)?;
                assert!(
                    err < tol,
                    "{dtype:?} x{:?} w{:?} {backend:?}: {err}",
                    c.x,
                    c.w
                );
            }
        }
    }
    Ok(())
}

#[test]
fn every_backend_gives_the_reference_gradients() -> Result<()> {
    // The reference: the GEMM op in f64, held to finite differences below.
    let mut rng = Rng::new(30);
    for c in cases() {
        let (x, w) = c.tensors(&mut rng, DType::F64)?;
        let reference =
            probe_loss(&c.conv(x.as_tensor(), w.as_tensor(), ConvBackend::Gemm)?, 1)?.backward()?;
        for (dtype, tol) in [(DType::F64, 1e-10), (DType::F32, 1e-3)] {
            let xd = Var::from_tensor(&x.to_dtype(dtype)?)?;
            let wd = Var::from_tensor(&w.to_dtype(dtype)?)?;
            for backend in ConvBackend::ALL {
                let y = c.conv(xd.as_tensor(), wd.as_tensor(), backend)?;
                let grads = probe_loss(&y.to_dtype(DType::F64)?, 1)?.backward()?;
                for (v, vd) in [(&x, &xd), (&w, &wd)] {
                    let got = grads.get(vd.as_tensor()).unwrap().to_dtype(DType::F64)?;
                    let err = max_abs_diff(&got, reference.get(v.as_tensor()).unwrap())?;
                    assert!(
                        err < tol,
                        "{dtype:?} {backend:?} x{:?} w{:?}: gradient differs by {err}",
                        c.x,
                        c.w
                    );
                }
            }
        }
    }
    Ok(())
}

#[test]
fn untracked_operands_get_no_gradient_and_the_other_one_is_unchanged() -> Result<()> {
    // A network's first convolution sees images that need no gradient; the
    // CPU op then skips that pass, and the weight's gradient must not
    // change (likewise for a fixed kernel).
    let mut rng = Rng::new(31);
    for c in cases() {
        let (x, w) = c.tensors(&mut rng, DType::F32)?;
        for backend in ConvBackend::ALL {
            let both =
                probe_loss(&c.conv(x.as_tensor(), w.as_tensor(), backend)?, 1)?.backward()?;
            // (the tracked operand, the untracked one, the conv's x and w)
            let (xd, wd) = (x.as_tensor().detach(), w.as_tensor().detach());
            for (kept, dropped, xt, wt) in [
                (w.as_tensor(), &xd, &xd, w.as_tensor()),
                (x.as_tensor(), &wd, x.as_tensor(), &wd),
            ] {
                let grads = probe_loss(&c.conv(xt, wt, backend)?, 1)?.backward()?;
                // candle's own convolution computes it anyway.
                if backend != ConvBackend::Candle {
                    assert!(grads.get(dropped).is_none(), "{backend:?} x{:?}", c.x);
                }
                let got = grads.get(kept).unwrap();
                let err = max_abs_diff(got, both.get(kept).unwrap())?;
                assert!(err == 0.0, "{backend:?} x{:?} w{:?}: {err}", c.x, c.w);
            }
        }
    }
    Ok(())
}

#[test]
fn conv_gradients_match_finite_differences() -> Result<()> {
    let mut rng = Rng::new(3);
    for (i, c) in cases().into_iter().enumerate() {
        let (x, w) = c.tensors(&mut rng, DType::F64)?;
        let loss = || {
            probe_loss(
                &c.conv(x.as_tensor(), w.as_tensor(), ConvBackend::Gemm)?,
                10 + i as u64,
            )
        };
        check_grads(loss, &[("x", &x), ("w", &w)], 1e-5, 1e-6, 40)
            .map_err(|e| e.context(format!("case {i}")))?;
    }
    Ok(())
}

#[test]
fn conv_backend_names_parse_and_unknown_ones_are_errors() {
    for b in ConvBackend::ALL {
        assert_eq!(ConvBackend::from_name(b.name()).unwrap(), b);
    }
    let err = ConvBackend::from_name("cudnn").unwrap_err().to_string();
    assert!(
        err.contains("\"cudnn\"") && err.contains("onednn, gemm or candle"),
        "{err}"
    );
}

const WS_MODES: [WeightMode; 3] = [WeightMode::Ws, WeightMode::WsUnbiased, WeightMode::WsStdEps];

#[test]
fn fused_and_composite_ws_agree_in_value_and_gradient() -> Result<()> {
    let mut rng = Rng::new(40);
    for (dtype, tol) in [(DType::F64, 1e-10), (DType::F32, 1e-4)] {
        for mode in WS_MODES {
            for shape in [[8, 3, 3, 3], [4, 2, 1, 1]] {
                let w = Var::from_tensor(&rng.randn(&shape, dtype, &DEV)?)?;
                let g = rng.randn(&shape, dtype, &DEV)?;
                let fused = standardize(w.as_tensor(), mode, 1e-5)?;
                let gf = (&fused * &g)?.sum_all()?.backward()?;
                let (composite, _) = standardize_composite(w.as_tensor(), mode, 1e-5)?;
                let gc = (&composite * &g)?.sum_all()?.backward()?;
                assert!(
                    max_abs_diff(&fused, &composite)? < tol,
                    "{mode:?} {dtype:?}"
                );
                let (a, b) = (
                    gf.get(w.as_tensor()).unwrap(),
                    gc.get(w.as_tensor()).unwrap(),
                );
                assert!(
                    max_abs_diff(a, b)? < tol,
                    "{mode:?} {dtype:?} {shape:?}: gradients differ"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn ws_matches_formulas() -> Result<()> {
    let w = Rng::new(4).randn(&[3, 2, 3, 3], DType::F64, &DEV)?;
    let rows: Vec<Vec<f64>> = w.reshape((3, 18))?.to_vec2()?;
    let eps = 1e-5;
    for mode in WS_MODES {
        let w_hat = standardize(&w, mode, eps)?;
        assert!(w_hat.is_contiguous());
        let (composite, _) = standardize_composite(&w, mode, eps)?;
        assert!(max_abs_diff(&w_hat, &composite)? < 1e-12, "{mode:?}");
        let got: Vec<Vec<f64>> = w_hat.reshape((3, 18))?.to_vec2()?;
        for (row, got) in rows.iter().zip(&got) {
            let n = row.len() as f64;
            let mu = row.iter().sum::<f64>() / n;
            let ss: f64 = row.iter().map(|v| (v - mu).powi(2)).sum();
            let denom = match mode {
                WeightMode::Ws => (ss / n + eps).sqrt(),
                WeightMode::WsUnbiased => (ss / (n - 1.0) + eps).sqrt(),
                _ => (ss / (n - 1.0)).sqrt() + eps,
            };
            for (v, g) in row.iter().zip(got) {
                assert!(((v - mu) / denom - g).abs() < 1e-12, "{mode:?}");
            }
        }
    }
    Ok(())
}

fn ws_layer<const D: usize>(
    vm: &VarMap,
    cin: usize,
    cout: usize,
    kernel: [usize; D],
    geometry: ConvGeometry<D>,
    mode: WeightMode,
) -> Result<wsbcn_nn::Conv<D>>
where
    ConvGeometry<D>: wsbcn_nn::ConvOp,
{
    let vb = VarBuilder::from_varmap(vm, DType::F64, &DEV);
    let cfg = ConvConfig {
        geometry,
        mode,
        ..ConvConfig::new(kernel)
    };
    Ok(conv(cin, cout, cfg, vb.pp("conv"))?)
}

fn var(vm: &VarMap, name: &str) -> Var {
    vm.data().lock().unwrap()[name].clone()
}

#[test]
fn ws_conv_gradients_match_finite_differences() -> Result<()> {
    let mut rng = Rng::new(5);
    for mode in WS_MODES {
        let vm = VarMap::new();
        let geo = ConvGeometry {
            stride: [2, 1],
            padding: [1, 1],
            dilation: [1, 2],
            groups: 2,
        };
        let layer = ws_layer(&vm, 4, 6, [3, 3], geo, mode)?;
        let x = Var::from_tensor(&rng.randn(&[2, 4, 7, 8], DType::F64, &DEV)?)?;
        let loss = || probe_loss(&layer.forward(x.as_tensor())?, 6);
        let (w, b) = (var(&vm, "conv.weight"), var(&vm, "conv.bias"));
        check_grads(
            loss,
            &[("x", &x), ("weight", &w), ("bias", &b)],
            1e-5,
            1e-6,
            60,
        )?;

        let vm = VarMap::new();
        let geo = ConvGeometry {
            stride: [1, 2, 2],
            padding: [1, 1, 1],
            dilation: [2, 1, 1],
            groups: 1,
        };
        let layer = ws_layer(&vm, 3, 4, [3, 3, 3], geo, mode)?;
        let x = Var::from_tensor(&rng.randn(&[1, 3, 6, 6, 6], DType::F64, &DEV)?)?;
        let loss = || probe_loss(&layer.forward(x.as_tensor())?, 7);
        let w = var(&vm, "conv.weight");
        check_grads(loss, &[("x", &x), ("weight", &w)], 1e-5, 1e-6, 60)?;
    }
    Ok(())
}

#[test]
fn fold_gives_the_same_output_as_ws() -> Result<()> {
    let mut rng = Rng::new(6);
    for mode in WS_MODES {
        for dtype in [DType::F32, DType::F64] {
            let vm = VarMap::new();
            let vb = VarBuilder::from_varmap(&vm, dtype, &DEV);
            let geo = ConvGeometry::uniform(1, 1, 1);
            let cfg = ConvConfig {
                kernel: [3, 3, 3],
                geometry: geo,
                bias: true,
                mode,
                ws_eps: 1e-5,
                init: WeightInit::default(),
            };
            let layer = conv(8, 8, cfg, vb.pp("c"))?;
            let folded = layer.fold()?;
            assert_eq!(folded.mode(), WeightMode::Plain);
            let x = rng.randn(&[2, 8, 4, 6, 6], dtype, &DEV)?;
            let err = max_abs_diff(&layer.forward(&x)?, &folded.forward(&x)?)?;
            assert!(err < 1e-5, "{mode:?} {dtype:?}: {err}");
        }
    }
    Ok(())
}

#[test]
fn ws_gradient_ratio_is_the_projection_bound() -> Result<()> {
    // dL/dW = (1/sigma)(g - mean(g) - <W_hat, g>/I W_hat) for the biased
    // variant: an orthogonal projection of g/sigma, so the ratio is <= 1.
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &DEV);
    let diagnostics = Diagnostics::default();
    let cfg = ConvConfig {
        kernel: [3, 3],
        geometry: ConvGeometry::uniform(1, 1, 1),
        bias: false,
        mode: WeightMode::Ws,
        ws_eps: 0.0,
        init: WeightInit::default(),
    };
    let layer = conv(4, 5, cfg, vb.pp("c"))?.with_diagnostics(diagnostics.clone());
    let x = Rng::new(7).randn(&[2, 4, 6, 6], DType::F64, &DEV)?;
    diagnostics.set_enabled(true);
    let y = layer.forward(&x)?;
    let grads = probe_loss(&y.relu()?, 8)?.backward()?;
    let ratios = diagnostics.ws_grad_ratios(&grads)?;
    assert_eq!(ratios.len(), 1);
    let r = ratios[0].ratio;

    // The same ratio by hand from dL/dW_hat: project each row explicitly.
    let w = layer.weight();
    let (w_hat, sigma) = standardize_composite(w, WeightMode::Ws, 0.0)?;
    let w_hat_var = Var::from_tensor(&w_hat.detach())?;
    let y2 = conv2d(&x, w_hat_var.as_tensor(), &ConvGeometry::uniform(1, 1, 1))?;
    let g: Vec<Vec<f64>> = probe_loss(&y2.relu()?, 8)?
        .backward()?
        .get(w_hat_var.as_tensor())
        .unwrap()
        .reshape((5, 36))?
        .to_vec2()?;
    let wh: Vec<Vec<f64>> = w_hat.reshape((5, 36))?.to_vec2()?;
    let sig: Vec<f64> = sigma.flatten_all()?.to_vec1()?;
    let (mut full, mut proj) = (0.0, 0.0);
    for i in 0..5 {
        let n = 36.0;
        let mean_g = g[i].iter().sum::<f64>() / n;
        let dot: f64 = g[i].iter().zip(&wh[i]).map(|(a, b)| a * b).sum::<f64>() / n;
        for j in 0..36 {
            let d = (g[i][j] - mean_g - dot * wh[i][j]) / sig[i];
            full += d * d;
            proj += (g[i][j] / sig[i]).powi(2);
        }
    }
    let want = (full / proj).sqrt();
    assert!((r - want).abs() < 1e-9, "ratio {r} vs hand {want}");
    assert!(r <= 1.0 + 1e-12 && r > 0.0);
    Ok(())
}

#[test]
fn conv_rejects_bad_shapes_naming_the_layer() -> Result<()> {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &DEV);
    let layer = conv(4, 8, ConvConfig::new([3, 3]), vb.pp("backbone.conv1"))?;
    let err = layer
        .forward(&Tensor::zeros((1, 3, 8, 8), DType::F32, &DEV)?)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("backbone.conv1") && err.contains("[1, 3, 8, 8]"),
        "{err}"
    );
    let err = layer
        .forward(&Tensor::zeros((4, 8, 8), DType::F32, &DEV)?)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("backbone.conv1") && err.contains("[4, 8, 8]"),
        "{err}"
    );
    let bad = ConvConfig {
        geometry: ConvGeometry::default().with_groups(3),
        ..ConvConfig::new([3, 3])
    };
    let err = conv(4, 8, bad, vb.pp("g")).unwrap_err().to_string();
    assert!(
        err.contains("groups (3) must divide in_channels (4)"),
        "{err}"
    );
    // A fan-in of 1 (one input channel, a 1x1 kernel) is an error in every
    // WS variant, when the layer is built and when a kernel is
    // standardized.
    for mode in [WeightMode::Ws, WeightMode::WsUnbiased, WeightMode::WsStdEps] {
        let cfg_1x1 = ConvConfig {
            mode,
            ..ConvConfig::new([1, 1])
        };
        let err = conv(1, 4, cfg_1x1, vb.pp(mode.name()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs a fan-in of at least 2, got 1"), "{err}");
        let w = Tensor::ones((4, 1, 1, 1), DType::F64, &DEV)?;
        let err = standardize(&w, mode, 1e-5).unwrap_err().to_string();
        assert!(err.contains("fan-in"), "{mode:?}: {err}");
    }
    Ok(())
}

#[test]
fn folding_keeps_each_ws_kernel_for_one_epoch() -> Result<()> {
    // A WS conv from a factory: under its fold guard it convolves with the
    // kernel standardized at the epoch's first call, as a folded layer
    // does; a new epoch sees weights changed in between.
    let f = LayerFactory::from_spec("gn+ws").map_err(candle_core::Error::wrap)?;
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &DEV);
    let geo = ConvGeometry::centered([3, 3], [1, 1], [1, 1]);
    let layer = f
        .conv::<2>(4, 6, [3, 3], geo, vb.pp("c"))
        .map_err(candle_core::Error::wrap)?;
    let x = Rng::new(9).randn(&[2, 4, 5, 5], DType::F32, &DEV)?;
    let w = vm.data().lock().unwrap()["c.weight"].clone();
    let plain = layer.forward(&x)?;
    let same = |a: &Tensor, b: &Tensor| max_abs_diff(a, b).map(|d| d == 0.0);
    {
        let _outer = f.fold_ws();
        assert!(
            same(&layer.forward(&x)?, &plain)?,
            "folded = standardized each call"
        );
        assert!(same(&layer.fold()?.forward(&x)?, &plain)?);
        // Weights changed inside the epoch: the kept kernel is used.
        w.set(&w.as_tensor().affine(2.0, 0.1)?)?;
        {
            let _inner = f.fold_ws();
        }
        assert!(
            same(&layer.forward(&x)?, &plain)?,
            "a nested guard ends nothing"
        );
    }
    // Outside a guard, and in a new epoch, the new weights count.
    let changed = layer.forward(&x)?;
    assert!(!same(&changed, &plain)?);
    let _again = f.fold_ws();
    assert!(same(&layer.forward(&x)?, &changed)?);
    Ok(())
}
