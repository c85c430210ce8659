//! `wsbcn-data convert-weights`: a PyTorch 2D ResNet checkpoint converted
//! for a task config's TSM (a 2D network: every tensor as it was), and a
//! conversion that does not fit listing every problem and writing nothing.

use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn convert(out: &Path, config: &str, set: &[&str], extra: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wsbcn-data"));
    cmd.arg("convert-weights")
        .arg(repo().join("crates/testkit/fixtures/pytorch_models/resnet50_2d.pth"))
        .arg(out)
        .arg("--config")
        .arg(repo().join(config));
    for s in set {
        cmd.args(["--set", s]);
    }
    cmd.args(extra).output().unwrap()
}

#[test]
fn a_2d_resnet_converts_for_tsm_and_a_misfit_names_every_problem() {
    let dir = wsbcn_testkit::fresh_dir("data", "convert-weights");
    let out = dir.join("tsm.safetensors");
    let tsm = [
        "model.arch=\"tsm\"",
        "model.depth=50",
        "model.width=0.0625",
        "model.num_classes=10",
    ];
    let run = convert(
        &out,
        "configs/video/ssv2_tsm_r50_bn.toml",
        &tsm,
        &["--map", "torchvision-resnet"],
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("as they were, 0 inflated over time, 0 reshaped"),
        "{stdout}"
    );
    let src = wsbcn_train::read_weights(
        &repo().join("crates/testkit/fixtures/pytorch_models/resnet50_2d.pth"),
    )
    .unwrap();
    let got = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
    // Every weight but the counters, under the same name and shape.
    let weights = src
        .keys()
        .filter(|n| !n.ends_with("num_batches_tracked"))
        .count();
    assert_eq!(got.len(), weights);
    let w = &got["layer2.0.conv2.weight"];
    assert_eq!(w.dims(), [8, 8, 3, 3]);
    let want: &Tensor = &src["layer2.0.conv2.weight"];
    let d = wsbcn_testkit::max_abs_diff(w, want).unwrap();
    assert_eq!(d, 0.0);
    // Into DeepLabV3's torchvision head without skips: the ImageNet `fc`
    // has no place and the head is missing; every one is named, and no
    // file is written.
    let bad = dir.join("deeplab.safetensors");
    // DeepLabV3 with a ResNet-50 layout at the fixture's width.
    let deeplab = |skips: &[&str]| {
        let set = [
            "norm.spec=\"bn\"",
            "model.backbone.depth=50",
            "model.backbone.width=0.0625",
        ];
        let mut extra = vec!["--map", "torchvision-resnet"];
        for s in skips {
            extra.extend(["--skip", s]);
        }
        convert(
            &bad,
            "configs/seg/fashion_small_voc_gn_ws.toml",
            &set,
            &extra,
        )
    };
    let run = deeplab(&[]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        stderr.contains("unexpected: `fc.weight` (as `backbone.fc.weight`)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("missing: `classifier.4.weight`"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing written"), "{stderr}");
    assert!(!bad.exists());
    // With the skips it fits.
    let run = deeplab(&["backbone.fc", "classifier"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(bad.exists());
}
