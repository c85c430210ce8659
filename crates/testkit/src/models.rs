//! Model checks shared by the segmentation and video tests: the norm specs
//! every model must build with, the variable lists of PyTorch models (in
//! `fixtures/`: torchvision's, and the WS/BCN authors' DeepLabv3), and
//! parameter counts.

use candle_core::{DType, Device};

/// Every norm spec a model must build and train with.
pub const NORM_SPECS: [&str; 10] = [
    "bn",
    "gn",
    "ln",
    "in",
    "bcn",
    "bcn-est",
    "none",
    "gn+ws",
    "bcn+ws",
    "bcn-est+ws",
];

/// The lines of a text fixture `fixtures/<file>` that end in a shape,
/// `word ... d0,d1,...`, as (the words before it, the shape); `#` lines are
/// comments.
fn shape_lines(file: &str) -> Vec<(Vec<String>, Vec<usize>)> {
    let path = format!("{}/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let mut words: Vec<String> = l.split_whitespace().map(str::to_string).collect();
            let dims = words.pop().unwrap_or_else(|| panic!("{path}: empty line"));
            let shape = dims.split(',').map(|d| d.parse().unwrap()).collect();
            (words, shape)
        })
        .collect()
}

/// Variable names and shapes of a PyTorch model, from `fixtures/<file>`
/// (written by `fixtures/make_torchvision_names.py` or
/// `fixtures/make_paper_deeplab_names.py`: `kind name d0,d1,...` lines).
pub fn pytorch_variables(file: &str) -> std::collections::BTreeMap<String, Vec<usize>> {
    shape_lines(file)
        .into_iter()
        .map(|(words, shape)| (words[1].clone(), shape))
        .collect()
}

/// Named output shapes, in order, from `fixtures/<file>` (`name
/// d0,d1,...` lines, e.g. `make_i3d_shapes.py`'s stage shapes).
pub fn fixture_shapes(file: &str) -> Vec<(String, Vec<usize>)> {
    shape_lines(file)
        .into_iter()
        .map(|(words, shape)| (words[0].clone(), shape))
        .collect()
}

/// A model made by `make` on a fresh f32 CPU `VarMap`, with a factory for
/// `spec` (GN and BCN with `groups` groups).
pub fn build_model<M, E: std::fmt::Debug>(
    spec: &str,
    groups: usize,
    make: impl FnOnce(&wsbcn_nn::LayerFactory, candle_nn::VarBuilder) -> std::result::Result<M, E>,
) -> (candle_nn::VarMap, M) {
    let (vm, _, model) = build_with_factory(spec, groups, make);
    (vm, model)
}

/// [`build_model`], also returning the factory (its diagnostics).
fn build_with_factory<M, E: std::fmt::Debug>(
    spec: &str,
    groups: usize,
    make: impl FnOnce(&wsbcn_nn::LayerFactory, candle_nn::VarBuilder) -> std::result::Result<M, E>,
) -> (candle_nn::VarMap, wsbcn_nn::LayerFactory, M) {
    let vm = candle_nn::VarMap::new();
    // Seeded, so that tests that train the model are deterministic.
    let vb = wsbcn_nn::seeded_var_builder(&vm, 0, DType::F32, &Device::Cpu);
    let f = wsbcn_nn::LayerFactory::new(&wsbcn_nn::NormConfig {
        spec: spec.into(),
        groups,
        ..wsbcn_nn::NormConfig::default()
    })
    .unwrap();
    let model = make(&f, vb).unwrap();
    (vm, f, model)
}

/// Asserts the WS coverage of a model `make` builds with spec `gn+ws`:
/// every conv weight of its `VarMap` (`*.weight` of rank 3 or more) is
/// standardized in a training step (its WS trace is in the factory's
/// diagnostics after `loss` is differentiated) except the convs named in
/// `plain`, the final classifiers, which exist and are not.
pub fn assert_ws_coverage<M, E: std::fmt::Debug>(
    make: impl FnOnce(&wsbcn_nn::LayerFactory, candle_nn::VarBuilder) -> std::result::Result<M, E>,
    loss: impl FnOnce(&M) -> candle_core::Result<candle_core::Tensor>,
    plain: &[&str],
) {
    use std::collections::BTreeSet;
    let (vm, f, model) = build_with_factory("gn+ws", 4, make);
    f.diagnostics().set_enabled(true);
    let grads = loss(&model).unwrap().backward().unwrap();
    let ws: BTreeSet<String> = f
        .diagnostics()
        .ws_grad_ratios(&grads)
        .unwrap()
        .into_iter()
        .map(|r| r.layer)
        .collect();
    let convs: BTreeSet<String> = vm
        .data()
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, v)| v.rank() >= 3)
        .filter_map(|(n, _)| n.strip_suffix(".weight").map(str::to_string))
        .collect();
    let plain: BTreeSet<String> = plain.iter().map(|p| p.to_string()).collect();
    assert!(
        plain.is_subset(&convs),
        "{plain:?} not among the convs {convs:?}"
    );
    let want: BTreeSet<String> = convs.difference(&plain).cloned().collect();
    assert!(want.len() >= 2, "too few convs: {convs:?}");
    assert_eq!(ws, want, "WS convs against every conv but the classifiers");
}

/// Every variable of `vm`, by name, with its shape.
pub fn variable_shapes(vm: &candle_nn::VarMap) -> std::collections::BTreeMap<String, Vec<usize>> {
    let data = vm.data().lock().unwrap();
    data.iter()
        .map(|(n, v)| (n.clone(), v.dims().to_vec()))
        .collect()
}

/// Asserts that `vm` holds exactly the variables (names and shapes) of the
/// PyTorch model listed in `fixtures/<file>`, and that the optimizer
/// trains `params` values, that model's parameter count.
pub fn assert_pytorch_layout(vm: &candle_nn::VarMap, file: &str, params: usize) {
    let want = pytorch_variables(file);
    assert_eq!(variable_shapes(vm), want, "{file}: variables");
    assert_eq!(
        trainable_count(vm),
        params,
        "{file}: parameter count (PyTorch's)"
    );
}

/// Parameters in the weights of convolutions and linear layers (every
/// variable of rank 2 or more): what must not change with the norm.
pub fn weight_parameters(vm: &candle_nn::VarMap) -> usize {
    vm.all_vars()
        .iter()
        .filter(|v| v.rank() >= 2)
        .map(|v| v.elem_count())
        .sum()
}

/// How many values the optimizer trains (running statistics excluded).
pub fn trainable_count(vm: &candle_nn::VarMap) -> usize {
    let cfg = wsbcn_train::SgdConfig::default();
    wsbcn_train::param_groups(vm, &cfg)
        .iter()
        .flat_map(|g| g.params.iter())
        .map(|p| p.var.elem_count())
        .sum()
}

/// A checkpoint with the names and shapes (every value 0) of an ImageNet
/// ResNet as its authors save it, made from the torchvision variable list
/// `file` (the names under `prefix`, which is dropped) with a 1000-class
/// `fc`, its norms as `norm` says: `"bn"` torchvision's BatchNorm; `"gn"`
/// the WS authors' GN+WS (`nn.GroupNorm`: no running statistics); `"bcn"`
/// the BCN authors' BCN+WS (their `imagenet/models/layers.py`: the batch
/// part `self.pbn`, a BatchNorm2d; the group affines
/// `Parameter(torch.ones(1, num_groups, 1))` with 32 groups). The ws-resnet
/// map is written from the same reading of that code, so a test with
/// these names checks the recipes' maps and skips against the models'
/// names, not the reading itself.
pub fn imagenet_checkpoint(
    file: &str,
    prefix: &str,
    norm: &str,
) -> std::collections::BTreeMap<String, candle_core::Tensor> {
    use candle_core::Tensor;
    let vars = pytorch_variables(file);
    let zeros = |d: &[usize]| Tensor::zeros(d, DType::F32, &Device::Cpu).unwrap();
    let norms: Vec<String> = vars
        .keys()
        .filter_map(|n| n.strip_suffix(".running_mean").map(str::to_string))
        .collect();
    let is_norm = |n: &str| {
        norms.iter().any(|p| {
            n.strip_prefix(p.as_str())
                .is_some_and(|r| r.starts_with('.'))
        })
    };
    let mut out = std::collections::BTreeMap::new();
    for (name, dims) in &vars {
        let Some(name) = name.strip_prefix(prefix) else {
            continue;
        };
        if !is_norm(&format!("{prefix}{name}")) {
            out.insert(name.to_string(), zeros(dims));
        }
    }
    for n in &norms {
        let Some(n) = n.strip_prefix(prefix) else {
            continue;
        };
        let c = vars[&format!("{prefix}{n}.running_mean")].clone();
        let stats = ["weight", "bias", "running_mean", "running_var"];
        match norm {
            "bn" => stats.iter().for_each(|v| {
                out.insert(format!("{n}.{v}"), zeros(&c));
            }),
            "gn" => ["weight", "bias"].iter().for_each(|v| {
                out.insert(format!("{n}.{v}"), zeros(&c));
            }),
            "bcn" => {
                for v in ["weight", "bias"] {
                    out.insert(format!("{n}.{v}"), zeros(&[1, 32, 1]));
                }
                for v in stats {
                    out.insert(format!("{n}.pbn.{v}"), zeros(&c));
                }
            }
            other => panic!("imagenet_checkpoint: norm {other}"),
        }
    }
    out.insert(
        "fc.weight".into(),
        zeros(&[1000, out["layer4.2.conv3.weight"].dim(0).unwrap()]),
    );
    out.insert("fc.bias".into(), zeros(&[1000]));
    out
}

/// The `[model.pretrained]` table that a config file shows commented out
/// (`# [model.pretrained]`, then `# key = value` lines), as the `--set`
/// override `model.pretrained={...}`; `None` where the file shows none.
pub fn commented_pretrained(path: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text
        .lines()
        .skip_while(|l| l.trim() != "# [model.pretrained]");
    lines.next()?;
    let body: Vec<&str> = lines
        .map_while(|l| l.strip_prefix("# ").filter(|l| l.contains(" = ")))
        .collect();
    let table: toml::Table = toml::from_str(&body.join("\n"))
        .unwrap_or_else(|e| panic!("{}: the commented table: {e}", path.display()));
    let fields: Vec<String> = table.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    Some(format!("model.pretrained={{{}}}", fields.join(", ")))
}
