//! The layer factory (spec parsing, construction errors), running state as
//! saved model state, and the elimination-singularity diagnostic.

use candle_core::{DType, Device, Module, ModuleT, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use wsbcn_nn::{
    singularity_fraction, ConvGeometry, LayerFactory, LayerSpec, NormConfig, NormKind,
    SingularityThresholds, WeightMode,
};
use wsbcn_testkit::{max_abs_diff, Rng};

const DEV: Device = Device::Cpu;

#[test]
fn specs_parse_in_either_order_and_print_back() {
    let cases = [
        ("bn", NormKind::Bn, WeightMode::Plain),
        ("gn+ws", NormKind::Gn, WeightMode::Ws),
        ("ws+gn", NormKind::Gn, WeightMode::Ws),
        ("bcn-est+ws", NormKind::BcnEst, WeightMode::Ws),
        ("BCN + ws-unbiased", NormKind::Bcn, WeightMode::WsUnbiased),
        ("ln+ws-std-eps", NormKind::Ln, WeightMode::WsStdEps),
        ("in", NormKind::In, WeightMode::Plain),
        ("none+ws", NormKind::None, WeightMode::Ws),
        ("plain", NormKind::None, WeightMode::Plain),
    ];
    for (s, norm, conv) in cases {
        let spec: LayerSpec = s.parse().unwrap();
        assert_eq!((spec.norm, spec.conv), (norm, conv), "{s}");
        let again: LayerSpec = spec.to_string().parse().unwrap();
        assert_eq!(again, spec);
    }
}

#[test]
fn bad_specs_and_group_counts_are_clear_errors() -> Result<()> {
    for (spec, needle) in [
        ("gn+wz", "unknown name `wz`"),
        ("batchnorm", "unknown name `batchnorm`"),
        ("gn+bn", "more than one normalization"),
        ("ws+ws-unbiased", "more than one conv weight mode"),
    ] {
        let err = LayerFactory::from_spec(spec).unwrap_err().to_string();
        assert!(err.contains(needle) && err.contains(spec), "{spec}: {err}");
    }
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &DEV);
    // The layers themselves refuse a group count that does not divide.
    let err = wsbcn_nn::group_norm(32, 48, 1e-5, vb.pp("stem.bn"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("stem.bn") && err.contains("num_groups (32) must divide num_channels (48)"),
        "{err}"
    );
    let err = wsbcn_nn::batch_channel_norm(
        32,
        16,
        1e-5,
        wsbcn_nn::BatchStatistics::Batch {
            momentum: 0.1,
            synchronized: false,
        },
        vb.pp("head.bn"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("head.bn") && err.contains("num_groups (32)") && err.contains("(16)"),
        "{err}"
    );
    // The factory picks, per layer, the largest divisor up to `groups`.
    for spec in ["gn", "bcn", "bcn-est+ws"] {
        let f = LayerFactory::from_spec(spec).unwrap(); // 32 groups
        assert_eq!([48, 16, 45, 64].map(|c| f.groups_for(c)), [24, 16, 15, 32]);
        f.norm(48, vb.pp(format!("{spec}.bn")))?;
    }
    let cfg = NormConfig {
        spec: "gn".into(),
        groups: 0,
        ..NormConfig::default()
    };
    assert!(LayerFactory::new(&cfg)
        .unwrap_err()
        .to_string()
        .contains("groups"));
    let cfg = NormConfig {
        spec: "bcn-est".into(),
        moving_speed: 1.5,
        ..NormConfig::default()
    };
    assert!(LayerFactory::new(&cfg)
        .unwrap_err()
        .to_string()
        .contains("1.5"));
    Ok(())
}

#[test]
fn factory_convs_follow_the_spec() -> Result<()> {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &DEV);
    let f = LayerFactory::from_spec("bcn-est+ws-unbiased")?;
    let c = f.conv(8, 16, [3, 3], ConvGeometry::uniform(1, 1, 1), vb.pp("a"))?;
    assert_eq!(c.mode(), WeightMode::WsUnbiased);
    assert!(c.bias().is_none(), "a conv followed by a norm has no bias");
    let f = LayerFactory::from_spec("none")?;
    let c = f.conv(8, 16, [1, 3, 3], ConvGeometry::default(), vb.pp("b"))?;
    assert_eq!(c.mode(), WeightMode::Plain);
    assert_eq!(c.weight().dims(), [16, 8, 1, 3, 3]);
    assert!(c.bias().is_some());
    Ok(())
}

#[test]
fn config_reads_from_toml_with_defaults() {
    let cfg: NormConfig =
        toml::from_str("spec = \"gn+ws\"\ngroups = 16\n[singularity]\npositive_mean = 0.05\n")
            .unwrap();
    assert_eq!(cfg.groups, 16);
    assert_eq!(cfg.eps, 1e-5);
    assert_eq!(cfg.singularity.positive_mean, 0.05);
    assert_eq!(cfg.singularity.std, 1e-2);
    let err = toml::from_str::<NormConfig>("spec = \"gn\"\ngroup = 16\n").unwrap_err();
    assert!(err.to_string().contains("group"), "{err}");
}

/// A little conv-norm-relu stack built from a factory.
struct Block {
    convs: Vec<wsbcn_nn::Conv2d>,
    norms: Vec<wsbcn_nn::Norm>,
}

impl Block {
    fn new(f: &LayerFactory, vb: VarBuilder) -> Result<Self> {
        let mut convs = vec![];
        let mut norms = vec![];
        for (i, (cin, cout)) in [(3, 8), (8, 8)].into_iter().enumerate() {
            let geo = ConvGeometry::uniform(1, 1, 1);
            convs.push(f.conv(cin, cout, [3, 3], geo, vb.pp(format!("conv{i}")))?);
            norms.push(f.norm(cout, vb.pp(format!("bn{i}")))?);
        }
        Ok(Self { convs, norms })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = x.clone();
        for (c, n) in self.convs.iter().zip(&self.norms) {
            x = n.forward_t(&c.forward(&x)?, train)?.relu()?;
        }
        Ok(x)
    }
}

#[test]
fn running_state_round_trips_through_safetensors() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("wsbcn-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut rng = Rng::new(21);
    for spec in ["bn+ws", "bcn-est+ws", "bcn"] {
        let cfg = NormConfig {
            spec: spec.into(),
            groups: 4,
            moving_speed: 0.3,
            ..NormConfig::default()
        };
        let f = LayerFactory::new(&cfg)?;
        let vm = VarMap::new();
        let block = Block::new(&f, VarBuilder::from_varmap(&vm, DType::F32, &DEV))?;
        for _ in 0..3 {
            block.forward_t(
                &rng.randn(&[2, 3, 6, 6], DType::F32, &DEV)?
                    .affine(3.0, 1.0)?,
                true,
            )?;
        }
        let names: Vec<String> = vm.data().lock().unwrap().keys().cloned().collect();
        assert!(
            names.iter().any(|n| n.ends_with("running_mean")),
            "{spec}: {names:?}"
        );
        let path = dir.join(format!("{spec}.safetensors"));
        vm.save(&path)?;

        let f2 = LayerFactory::new(&cfg)?;
        let mut vm2 = VarMap::new();
        let block2 = Block::new(&f2, VarBuilder::from_varmap(&vm2, DType::F32, &DEV))?;
        let x = rng.randn(&[1, 3, 6, 6], DType::F32, &DEV)?;
        let fresh = block2.forward_t(&x, false)?;
        vm2.load(&path)?;
        let want = block.forward_t(&x, false)?;
        let got = block2.forward_t(&x, false)?;
        assert_eq!(max_abs_diff(&want, &got)?, 0.0, "{spec}");
        // The trained running state differs from the initial one.
        assert!(max_abs_diff(&want, &fresh)? > 1e-3, "{spec}");
        // eval twice gives the same output: eval does not move the state.
        assert_eq!(max_abs_diff(&got, &block2.forward_t(&x, false)?)?, 0.0);
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn singularity_fraction_counts_dead_and_constant_channels() -> Result<()> {
    // 4 channels over (N=2, L=3): alive, all negative (dead ReLU), constant
    // positive (no spread), and barely positive.
    let y = Tensor::new(
        &[
            [
                [1.0f64, -1.0, 2.0],
                [-3.0, -1.0, -2.0],
                [0.5, 0.5, 0.5],
                [-1.0, 0.004, -2.0],
            ],
            [
                [0.0, 1.0, -2.0],
                [-1.0, -0.5, -4.0],
                [0.5, 0.5, 0.5],
                [-1.0, 0.002, -3.0],
            ],
        ],
        &DEV,
    )?;
    let t = SingularityThresholds {
        positive_mean: 0.01,
        std: 0.01,
    };
    assert_eq!(singularity_fraction(&y, &t)?, 0.75);
    let loose = SingularityThresholds {
        positive_mean: 1e-4,
        std: 0.01,
    };
    assert_eq!(singularity_fraction(&y, &loose)?, 0.5);
    Ok(())
}

#[test]
fn diagnostics_record_every_norm_layer_only_when_enabled() -> Result<()> {
    let cfg = NormConfig {
        spec: "gn+ws".into(),
        groups: 4,
        ..NormConfig::default()
    };
    let f = LayerFactory::new(&cfg)?;
    let vm = VarMap::new();
    let block = Block::new(&f, VarBuilder::from_varmap(&vm, DType::F32, &DEV))?;
    let x = Rng::new(22).randn(&[1, 3, 5, 5], DType::F32, &DEV)?;
    block.forward_t(&x, true)?;
    assert!(f.diagnostics().take_singularity().is_empty());
    f.diagnostics().set_enabled(true);
    let y = block.forward_t(&x, true)?;
    let records = f.diagnostics().take_singularity();
    let layers: Vec<&str> = records.iter().map(|r| r.layer.as_str()).collect();
    assert_eq!(layers, ["bn0", "bn1"]);
    assert!(records.iter().all(|r| (0.0..=1.0).contains(&r.fraction)));
    let grads = y.sum_all()?.backward()?;
    let ratios = f.diagnostics().ws_grad_ratios(&grads)?;
    assert_eq!(ratios.len(), 2);
    assert!(
        ratios
            .iter()
            .all(|r| r.ratio > 0.0 && r.ratio <= 1.0 + 1e-6),
        "{ratios:?}"
    );
    Ok(())
}

#[test]
fn seeded_initialisation_is_reproducible_and_follows_the_hints() -> Result<()> {
    let build = |seed| -> Result<VarMap> {
        let vm = VarMap::new();
        let vb = wsbcn_nn::seeded_var_builder(&vm, seed, DType::F32, &DEV);
        let f = LayerFactory::from_spec("bn+ws")?;
        Block::new(&f, vb)?;
        Ok(vm)
    };
    let (a, b, c) = (build(7)?, build(7)?, build(8)?);
    let get = |vm: &VarMap, n: &str| vm.data().lock().unwrap()[n].as_tensor().clone();
    let w = get(&a, "conv1.weight");
    assert_eq!(max_abs_diff(&w, &get(&b, "conv1.weight"))?, 0.0);
    assert!(max_abs_diff(&w, &get(&c, "conv1.weight"))? > 0.0);
    // Kaiming normal, fan-out, ReLU: std = sqrt(2 / (8 * 9)).
    let v: Vec<f32> = w.flatten_all()?.to_vec1()?;
    let std = (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
    let want = (2.0f32 / 72.0).sqrt();
    assert!((std / want - 1.0).abs() < 0.1, "std {std} vs {want}");
    assert_eq!(get(&a, "bn1.running_var").to_vec1::<f32>()?, vec![1.0; 8]);
    Ok(())
}
