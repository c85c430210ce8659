//! The video task: metrics against hand-computed values, the clip
//! transforms' exact geometry, every shipped config, and the confusion
//! figure.

use rand::{rngs::StdRng, SeedableRng};
use std::path::{Path, PathBuf};
use wsbcn_video::clip_transform::{test_clips, train_clip, ClipAugment};
use wsbcn_video::task::{video_metrics, VideoConfig};
use wsbcn_video::video_model::{Arch, VideoModel};
use wsbcn_video::Frames;

fn fresh_dir(name: &str) -> PathBuf {
    wsbcn_testkit::fresh_dir("vtask", name)
}

#[test]
fn metrics_equal_a_hand_computation() {
    // 3 classes; scores per video and the true label.
    let scored = vec![
        (vec![0.7, 0.2, 0.1], 0), // right
        (vec![0.1, 0.3, 0.6], 1), // wrong (2), right in top 2
        (vec![0.2, 0.5, 0.3], 1), // right
        (vec![0.5, 0.4, 0.1], 2), // wrong (0)
    ];
    let m = video_metrics(&scored, 3, 1);
    assert_eq!(m.top1, 0.5);
    assert_eq!(m.top5, 1.0);
    // Per class: 0 -> 1/1, 1 -> 1/2, 2 -> 0/1.
    assert!((m.mean_class_accuracy - 0.5).abs() < 1e-12);
    assert_eq!(m.confusion, [[1, 0, 0], [0, 1, 1], [1, 0, 0]]);
    assert_eq!(m.skipped, 1);
}

/// Two frames of `w x h` where pixel `(x, y)` of frame `f` has value
/// `(x + 2 y + 50 f) mod 256` in every channel.
fn ramp(w: usize, h: usize) -> Frames {
    let mut data = Vec::new();
    for f in 0..2 {
        for y in 0..h {
            for x in 0..w {
                data.extend([((x + 2 * y + 50 * f) % 256) as u8; 3]);
            }
        }
    }
    Frames {
        width: w,
        height: h,
        count: 2,
        data,
    }
}

fn plain_aug(crop: usize) -> ClipAugment {
    ClipAugment {
        crop,
        scales: vec![1.0],
        flip: true,
        flip_label_map: vec![[0, 1]],
        mean: [0.0; 3],
        std: [1.0 / 255.0; 3],
    }
}

#[test]
fn test_crops_take_the_exact_pixels_of_their_region() {
    // 64x48 frames: short side 48, crop side 0.875 * 48 = 42 -> output 42:
    // one output pixel per source pixel, no interpolation.
    let frames = ramp(64, 48);
    let aug = plain_aug(42);
    let clips = test_clips(&frames, 3, &aug, 3).unwrap();
    assert_eq!(clips.len(), 3);
    let (y0, xs) = (3usize, [0usize, 11, 22]); // (48 - 42) / 2; left, centre, right
    for (clip, x0) in clips.iter().zip(xs) {
        assert_eq!((clip.t, clip.side, clip.label), (2, 42, 3));
        for f in 0..2 {
            for (y, x) in [(0, 0), (5, 17), (41, 41)] {
                let want = ((x0 + x + 2 * (y0 + y) + 50 * f) % 256) as f32;
                for c in 0..3 {
                    let got = clip.data[((c * 2 + f) * 42 + y) * 42 + x];
                    assert!(
                        (got - want).abs() < 1e-3,
                        "crop at {x0}: ({x},{y}) {got} vs {want}"
                    );
                }
            }
        }
    }
    assert!(test_clips(&frames, 0, &aug, 2).is_err());
}

#[test]
fn training_crops_flip_the_frames_and_swap_mapped_labels() {
    let frames = ramp(32, 32);
    let aug = plain_aug(32);
    let mut rng = StdRng::seed_from_u64(0);
    let (mut flipped, mut kept) = (0, 0);
    for _ in 0..40 {
        let clip = train_clip(&frames, 0, &aug, &mut rng);
        // Scale 1 of a square frame: the whole frame, mirrored or not.
        let px = |x: usize| clip.data[(4 * 32) + x];
        if clip.label == 1 {
            flipped += 1;
            assert_eq!((px(0), px(31)), (31.0 + 8.0, 8.0), "mirrored row");
        } else {
            kept += 1;
            assert_eq!((px(0), px(31)), (8.0, 39.0));
        }
        // Unmapped labels stay.
        assert_eq!(train_clip(&frames, 2, &aug, &mut rng).label, 2);
    }
    assert!(flipped > 5 && kept > 5, "{flipped} flipped, {kept} kept");
}

#[test]
fn every_video_config_loads_with_the_norm_its_name_says() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/video");
    let mut names = vec![];
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let cfg: VideoConfig = wsbcn_train::load_config(&path, &[])
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let (variant, classes, arch) = [
                ("fashion_ssv2_r3d10_", 9, Arch::R3d),
                ("fashion_ssv2_", 9, Arch::R2plus1d),
                ("ssv2_tsm_r50_", 174, Arch::Tsm),
                ("kinetics400_r2plus1d18_", 400, Arch::R2plus1d),
            ]
            .into_iter()
            .find_map(|(prefix, c, a)| name.strip_prefix(prefix).map(|v| (v, c, a)))
            .unwrap_or_else(|| panic!("{name}: an unknown recipe"));
            assert_eq!(cfg.model.arch, arch, "{name}");
            let spec = variant.replace("_ws", "+ws").replace("_est", "-est");
            assert_eq!(cfg.norm.spec, spec, "{name}");
            assert_eq!(cfg.model.num_classes, classes, "{name}");
            names.push(name);
        }
    }
    assert_eq!(names.len(), 17, "{names:?}");
}

#[test]
fn the_confusion_figure_is_a_png_and_an_svg_naming_classes_and_counts() {
    let d = fresh_dir("confusion");
    let classes: Vec<String> = ["left to right", "right to left", "rotating"]
        .map(String::from)
        .to_vec();
    // Two videos of class 0 called 1, one of class 2 called 0.
    let scored = [
        (vec![0.9, 0.1, 0.0], 0),
        (vec![0.8, 0.1, 0.1], 0),
        (vec![0.2, 0.7, 0.1], 0),
        (vec![0.1, 0.6, 0.3], 0),
        (vec![0.1, 0.8, 0.1], 1),
        (vec![0.6, 0.1, 0.3], 2),
        (vec![0.1, 0.1, 0.8], 2),
    ];
    let m = video_metrics(&scored, 3, 0);
    assert_eq!(m.confusion, [vec![2, 2, 0], vec![0, 1, 0], vec![1, 0, 1]]);
    let fig = wsbcn_plot::ConfusionFigure {
        title: "test".into(),
        classes: &classes,
        counts: &m.confusion,
    };
    let [png, svg] = wsbcn_plot::save(&fig, &d.join("confusion")).unwrap();
    let img = image::open(&png).unwrap();
    use wsbcn_plot::Figure;
    assert_eq!((img.width(), img.height()), fig.size());
    let svg = std::fs::read_to_string(svg).unwrap();
    for name in &classes {
        assert!(svg.contains(name.as_str()), "{name}");
    }
    // The counts are printed in their cells (three cells hold a 1, two a
    // 2), and the columns are labelled 0, 1, 2 once each.
    let texts = |v: &str| svg.matches(&format!(">\n{v}\n</text>")).count();
    assert_eq!((texts("1"), texts("2"), texts("0")), (4, 3, 1), "{svg}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_full_scale_recipes_name_checkpoints_their_maps_fit() {
    use candle_core::{DType, Device, Tensor};
    use candle_nn::{VarBuilder, VarMap};
    use wsbcn_testkit::models::{commented_pretrained, imagenet_checkpoint, pytorch_variables};
    use wsbcn_train::pretrained::match_weights;
    use wsbcn_train::WeightMap;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/video");
    // TSM from ImageNet ResNet-50s; R(2+1)D from torchvision's Kinetics model.
    let kinetics: std::collections::BTreeMap<String, Tensor> =
        pytorch_variables("torchvision_video_r2plus1d_18.txt")
            .into_iter()
            .map(|(n, d)| (n, Tensor::zeros(d, DType::F32, &Device::Cpu).unwrap()))
            .collect();
    let resnet50 =
        |norm| imagenet_checkpoint("torchvision_deeplabv3_resnet50.txt", "backbone.", norm);
    for (file, ckpt, map) in [
        (
            "ssv2_tsm_r50_bn",
            resnet50("bn"),
            WeightMap::TorchvisionResnet,
        ),
        ("ssv2_tsm_r50_gn_ws", resnet50("gn"), WeightMap::WsResnet),
        ("ssv2_tsm_r50_bcn_ws", resnet50("bcn"), WeightMap::WsResnet),
        (
            "ssv2_tsm_r50_bcn_est_ws",
            resnet50("bcn"),
            WeightMap::WsResnet,
        ),
        ("kinetics400_r2plus1d18_bn", kinetics, WeightMap::None),
    ] {
        let path = dir.join(format!("{file}.toml"));
        let set = commented_pretrained(&path).unwrap_or_else(|| panic!("{file}: no checkpoint"));
        let cfg: VideoConfig = wsbcn_train::load_config(&path, &[set]).unwrap();
        let p = cfg.model.pretrained.as_ref().unwrap();
        assert_eq!(p.map, map, "{file}");
        let f = wsbcn_nn::LayerFactory::new(&cfg.norm).unwrap();
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        VideoModel::new(&cfg.model, &f, vb).unwrap();
        let m = match_weights(&ckpt, &vm, p.map, "", &p.skip);
        assert!(m.problems.is_empty(), "{file}: {:#?}", m.problems);
        assert!(m.skipped.iter().all(|n| n.starts_with("fc.")), "{file}");
        assert_eq!(m.tensors.len() + m.skipped.len(), vm.all_vars().len());
    }
    for file in ["ssv2_tsm_r50_gn", "kinetics400_r2plus1d18_gn_ws"] {
        assert!(
            commented_pretrained(&dir.join(format!("{file}.toml"))).is_none(),
            "{file}"
        );
    }
}
