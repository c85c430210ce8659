//! Weights from PyTorch: the checkpoint containers of
//! `fixtures/make_pth_fixtures.py`, in the zip and the legacy format, read
//! without Python to the exact values, views into shared storages
//! included; other files refused with their names;
//! 2D kernels inflated over time and squeezed affines fitted; every
//! missing, unexpected or mismatched variable named.

use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarBuilder, VarMap};
use std::collections::BTreeMap;
use std::path::PathBuf;
use wsbcn_train::pretrained::{match_weights, Fit};
use wsbcn_train::{load_pretrained, read_weights, PretrainedConfig, WeightMap};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testkit/fixtures/pth")
        .join(name)
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn pytorch_checkpoints_read_in_every_container() {
    let w: Vec<f64> = (0..6).map(|i| i as f64 / 4.0).collect();
    for file in [
        "state_dict.pth",
        "checkpoint.pth.tar",
        "model_key.pt",
        "legacy.pth",
        "legacy_checkpoint.pth.tar",
    ] {
        let t = read_weights(&fixture(file)).unwrap();
        assert_eq!(t["layer.weight"].dims(), [2, 3], "{file}");
        assert_eq!(values(&t["layer.weight"]), w, "{file}");
        assert_eq!(values(&t["layer.bias"]), [-1.0, 0.0, 1.0], "{file}");
        if file != "model_key.pt" {
            // Views at an offset into one shared storage.
            assert_eq!(
                values(&t["view.tail"]),
                [4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
                "{file}"
            );
            assert_eq!(values(&t["view.head"]), [0.0, 1.0], "{file}");
            // Column-major and channels-last storages, in logical order.
            let wt = &t["layer.weight_t"];
            assert_eq!(wt.dims(), [3, 2], "{file}");
            assert_eq!(
                values(wt),
                values(&t["layer.weight"].t().unwrap()),
                "{file}"
            );
            let conv = &t["conv.weight"];
            assert_eq!(conv.dims(), [2, 3, 2, 2], "{file}");
            assert_eq!(
                values(conv),
                (0..24).map(f64::from).collect::<Vec<_>>(),
                "{file}"
            );
        }
    }
    // The counter comes through (and is left out when matching), the
    // `module.` prefix does not; the legacy checkpoint's optimizer state
    // (storages outside the state dict) is read past.
    for file in ["checkpoint.pth.tar", "legacy_checkpoint.pth.tar"] {
        let t = read_weights(&fixture(file)).unwrap();
        assert_eq!(
            t.keys().collect::<Vec<_>>(),
            [
                "bn.num_batches_tracked",
                "conv.weight",
                "layer.bias",
                "layer.weight",
                "layer.weight_t",
                "view.head",
                "view.tail"
            ],
            "{file}"
        );
        assert_eq!(values(&t["bn.num_batches_tracked"]), [12.0], "{file}");
    }
    let t = read_weights(&fixture("model_key.pt")).unwrap();
    assert_eq!(t["layer.weight"].dtype(), DType::F64);
    assert_eq!(t["layer.bias"].dtype(), DType::F16);
    assert_eq!(t["layer.half"].dtype(), DType::BF16);
    assert_eq!(values(&t["layer.half"]), [0.5, 1.5]);
}

#[test]
fn other_files_are_refused_by_name() {
    let dir = std::env::temp_dir().join(format!("wsbcn-pth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.pth");
    std::fs::write(&junk, b"not weights at all").unwrap();
    let err = read_weights(&junk).unwrap_err().to_string();
    assert!(err.contains("junk.pth") && err.contains("neither"), "{err}");
    // A pickle that is not a checkpoint, and a legacy checkpoint cut short.
    let pickle = dir.join("list.pkl");
    std::fs::write(&pickle, b"\x80\x02]q\x00.").unwrap();
    let err = read_weights(&pickle).unwrap_err().to_string();
    assert!(err.contains("list.pkl") && err.contains("neither"), "{err}");
    // The tar format of PyTorch before 0.4.
    let mut tar = vec![0u8; 1024];
    tar[257..262].copy_from_slice(b"ustar");
    let old = dir.join("old.pth");
    std::fs::write(&old, &tar).unwrap();
    let err = read_weights(&old).unwrap_err().to_string();
    assert!(
        err.contains("old.pth") && err.contains("tar format"),
        "{err}"
    );
    // A safetensors file whose header length starts with the byte 0x80 of
    // a pickle (a 384-byte header) is still safetensors.
    let mut header = br#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#.to_vec();
    header.resize(384, b' ');
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    assert_eq!(file[0], 0x80);
    file.extend(header);
    file.extend(2.5f32.to_le_bytes());
    let st = dir.join("padded.safetensors");
    std::fs::write(&st, &file).unwrap();
    assert_eq!(values(&read_weights(&st).unwrap()["a"]), [2.5]);
    let legacy = std::fs::read(fixture("legacy.pth")).unwrap();
    let cut = dir.join("cut.pth");
    std::fs::write(&cut, &legacy[..legacy.len() - 8]).unwrap();
    let err = read_weights(&cut).unwrap_err().to_string();
    assert!(err.contains("cut.pth") && err.contains("storage"), "{err}");
    let missing = dir.join("absent.pth");
    let err = read_weights(&missing).unwrap_err().to_string();
    assert!(err.contains("absent.pth"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A VarMap with variables of these shapes, all zeros.
fn model(vars: &[(&str, &[usize])]) -> VarMap {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    for (name, dims) in vars {
        vb.get_with_hints(*dims, name, Init::Const(0.0)).unwrap();
    }
    vm
}

#[test]
fn kernels_inflate_over_time_and_affines_squeeze() {
    // A 2D kernel (O, I, kh, kw) into (O, I, T, kh, kw): every frame w / T;
    // into (O, I, 1, kh, kw): w itself. The BCN authors' (1, G, 1)
    // affine into (G).
    let w2 = Tensor::arange(0f32, 2.0 * 3.0 * 3.0 * 3.0, &Device::Cpu)
        .unwrap()
        .reshape((2, 3, 3, 3))
        .unwrap();
    let g = Tensor::new(&[[[1f32], [2.0], [3.0], [4.0]]], &Device::Cpu).unwrap();
    let weights = BTreeMap::from([
        ("conv1.weight".to_string(), w2.clone()),
        ("layer1.0.conv1.weight".to_string(), w2.clone()),
        ("layer1.0.bn1.weight".to_string(), g),
    ]);
    let vm = model(&[
        ("conv1.weight", &[2, 3, 5, 3, 3]),
        ("layer1.0.conv1.weight", &[2, 3, 1, 3, 3]),
        ("layer1.0.bn1.weight", &[4]),
    ]);
    let m = match_weights(&weights, &vm, WeightMap::TorchvisionResnet, "", &[]);
    assert!(m.problems.is_empty(), "{:?}", m.problems);
    assert_eq!(m.count(Fit::Inflated), 2);
    assert_eq!(m.count(Fit::Reshaped), 1);
    let (i3d, _) = &m.tensors["conv1.weight"];
    // Divided in f32 as PyTorch does.
    let fifth: Vec<f64> = (0..54).map(|i| (i as f32 / 5.0) as f64).collect();
    for t in 0..5 {
        let frame = i3d.narrow(2, t, 1).unwrap().squeeze(2).unwrap();
        assert_eq!(values(&frame), fifth, "frame {t}");
    }
    let (one_frame, _) = &m.tensors["layer1.0.conv1.weight"];
    assert_eq!(values(one_frame), values(&w2));
    assert_eq!(
        values(&m.tensors["layer1.0.bn1.weight"].0),
        [1.0, 2.0, 3.0, 4.0]
    );
}

#[test]
fn transposed_kernels_do_not_fit_and_skips_stop_at_dots() {
    let weights = BTreeMap::from([
        (
            "conv.weight".to_string(),
            Tensor::zeros((4, 2, 1, 3), DType::F32, &Device::Cpu).unwrap(),
        ),
        (
            "fc_cls.weight".to_string(),
            Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
        ),
        (
            "x.pbn.weight".to_string(),
            Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
        ),
        (
            "x.bn.weight".to_string(),
            Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
        ),
    ]);
    let vm = model(&[
        ("conv.weight", &[4, 2, 3, 1]),
        ("fc_cls.weight", &[3]),
        ("x.bn.weight", &[3]),
    ]);
    let m = match_weights(&weights, &vm, WeightMap::WsResnet, "", &["fc".into()]);
    assert_eq!(
        m.problems,
        [
            "ambiguous: `x.bn.weight` and `x.pbn.weight` both become `x.bn.weight`",
            "mismatched: `conv.weight` has shape [4, 2, 1, 3], the model's `conv.weight` [4, 2, 3, 1]",
        ]
    );
    assert!(m.skipped.is_empty(), "`fc` skips `fc_cls`: {:?}", m.skipped);
    assert!(m.tensors.contains_key("fc_cls.weight"));
}

#[test]
fn every_problem_is_named_and_nothing_loads_then() {
    // The authors' BCN norm: `pbn` is wsbcn's `bn`, under `backbone.`.
    let weights = BTreeMap::from([
        (
            "bn1.pbn.running_mean".to_string(),
            Tensor::ones(4, DType::F32, &Device::Cpu).unwrap(),
        ),
        (
            "bn1.pbn.num_batches_tracked".to_string(),
            Tensor::new(3i64, &Device::Cpu).unwrap(),
        ),
        (
            "conv1.weight".to_string(),
            Tensor::ones((4, 3, 3, 3), DType::F32, &Device::Cpu).unwrap(),
        ),
        (
            "fc.weight".to_string(),
            Tensor::ones((10, 4), DType::F32, &Device::Cpu).unwrap(),
        ),
        (
            "extra.weight".to_string(),
            Tensor::ones(2, DType::F32, &Device::Cpu).unwrap(),
        ),
    ]);
    let vm = model(&[
        ("backbone.bn1.bn.running_mean", &[4]),
        ("backbone.conv1.weight", &[4, 3, 5, 5]),
        ("backbone.layer1.0.conv1.weight", &[4, 4, 1, 1]),
        ("classifier.weight", &[2, 4]),
    ]);
    let m = match_weights(
        &weights,
        &vm,
        WeightMap::WsResnet,
        "backbone.",
        &["backbone.fc".into(), "classifier".into()],
    );
    assert_eq!(m.skipped, ["classifier.weight"]);
    assert_eq!(
        m.problems,
        [
            "unexpected: `extra.weight` (as `backbone.extra.weight`) is not in the model",
            "mismatched: `conv1.weight` has shape [4, 3, 3, 3], the model's `backbone.conv1.weight` [4, 3, 5, 5]",
            "missing: `backbone.layer1.0.conv1.weight` is not in the checkpoint",
        ]
    );
    assert_eq!(
        values(&m.tensors["backbone.bn1.bn.running_mean"].0),
        [1.0; 4]
    );
    // Loading refuses with the same list and leaves the model as it was.
    let dir = std::env::temp_dir().join(format!("wsbcn-match-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("authors.safetensors");
    candle_core::safetensors::save(&weights.clone().into_iter().collect(), &path).unwrap();
    let cfg = PretrainedConfig {
        file: path,
        map: WeightMap::WsResnet,
        skip: vec!["backbone.fc".into(), "classifier".into()],
    };
    let err = load_pretrained(&cfg, &vm, "backbone.")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("authors.safetensors")
            && err.contains("ws-resnet")
            && err.contains("3 problems"),
        "{err}"
    );
    for p in &m.problems {
        assert!(err.contains(p.as_str()), "{p}: {err}");
    }
    let data = vm.data().lock().unwrap();
    assert_eq!(
        values(data["backbone.bn1.bn.running_mean"].as_tensor()),
        [0.0; 4]
    );
    drop(data);
    let _ = std::fs::remove_dir_all(&dir);
}
