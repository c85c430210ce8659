//! Segmentation data: the VOC loader on a VOCdevkit tree written here, its
//! errors, the training augmentation, evaluation (whole, sliding window,
//! batched), and every shipped config.

use image::{Rgb, RgbImage};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use wsbcn_seg::augment::{resize_label, resize_rgb, train_sample, AugmentConfig};
use wsbcn_seg::deeplab::Head;
use wsbcn_seg::palette::{read_label, voc_palette, write_label, LabelMap};
use wsbcn_seg::task::SegConfig;
use wsbcn_seg::voc::VocSplit;
use wsbcn_testkit::max_abs_diff;
use wsbcn_train::{load_config, WeightMap};

fn tmp(name: &str) -> PathBuf {
    wsbcn_testkit::fresh_dir("seg", name)
}

/// A 16x16 image of four flat 8x8 blocks and a label with classes 0, 3,
/// 20 and an ignore band.
fn item() -> (RgbImage, LabelMap) {
    let colors = [
        [200u8, 30, 30],
        [30, 200, 30],
        [30, 30, 200],
        [128, 128, 128],
    ];
    let img = RgbImage::from_fn(16, 16, |x, y| Rgb(colors[(y / 8 * 2 + x / 8) as usize]));
    let mut data = vec![0u8; 256];
    for (i, v) in data.iter_mut().enumerate() {
        let (x, y) = (i % 16, i / 16);
        *v = if y == 7 {
            255
        } else if x < 8 {
            3
        } else {
            20
        };
    }
    (
        img,
        LabelMap {
            width: 16,
            height: 16,
            data,
        },
    )
}

fn voc_tree(root: &Path, ids: &[&str]) {
    let voc = root.join("VOCdevkit/VOC2012");
    for d in [
        "JPEGImages",
        "SegmentationClass",
        "SegmentationClassAug",
        "ImageSets/Segmentation",
    ] {
        std::fs::create_dir_all(voc.join(d)).unwrap();
    }
    let (img, label) = item();
    for id in ids {
        img.save(voc.join(format!("JPEGImages/{id}.jpg"))).unwrap();
        write_label(&voc.join(format!("SegmentationClass/{id}.png")), &label).unwrap();
        image::GrayImage::from_raw(16, 16, label.data.clone())
            .unwrap()
            .save(voc.join(format!("SegmentationClassAug/{id}.png")))
            .unwrap();
    }
    std::fs::write(voc.join("ImageSets/Segmentation/train.txt"), ids.join("\n")).unwrap();
    std::fs::write(
        voc.join("ImageSets/Segmentation/train_aug.txt"),
        ids.join("\n"),
    )
    .unwrap();
}

#[test]
fn voc_loader_reads_labels_exactly_and_images_within_jpeg_rounding() {
    let root = tmp("voc");
    voc_tree(&root, &["2007_000032", "2007_000039"]);
    let (img, label) = item();
    for split in ["train", "train_aug"] {
        for r in [root.join("VOCdevkit"), root.join("VOCdevkit/VOC2012")] {
            let s = VocSplit::open(&r, split, 21).unwrap();
            assert_eq!(s.ids(), ["2007_000032", "2007_000039"]);
            let it = s.read(1).unwrap();
            assert_eq!(
                it.label, label,
                "{split}: labels must be the stored indices"
            );
            assert!(it.label.data.contains(&255));
            for (a, b) in it.image.pixels().zip(img.pixels()) {
                for c in 0..3 {
                    assert!((a[c] as i32 - b[c] as i32).abs() <= 2, "{a:?} vs {b:?}");
                }
            }
        }
    }
    // The palette PNG carries the VOC colour map.
    assert_eq!(voc_palette()[1], [128, 0, 0]);
    assert_eq!(voc_palette()[255], [224, 224, 192]);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn bad_voc_data_gives_errors_naming_the_file() {
    let root = tmp("bad");
    voc_tree(&root, &["a", "b", "c", "d", "e"]);
    let voc = root.join("VOCdevkit/VOC2012");
    std::fs::remove_file(voc.join("JPEGImages/a.jpg")).unwrap();
    std::fs::remove_file(voc.join("SegmentationClass/b.png")).unwrap();
    RgbImage::new(16, 16)
        .save(voc.join("SegmentationClass/c.png"))
        .unwrap();
    let small = LabelMap {
        width: 8,
        height: 16,
        data: vec![0; 128],
    };
    write_label(&voc.join("SegmentationClass/d.png"), &small).unwrap();
    let bad_class = LabelMap {
        width: 16,
        height: 16,
        data: vec![30; 256],
    };
    write_label(&voc.join("SegmentationClass/e.png"), &bad_class).unwrap();
    let s = VocSplit::open(&root.join("VOCdevkit"), "train", 21).unwrap();
    let cases = [
        ("a.jpg", "image missing"),
        ("b.png", "label missing"),
        ("c.png", "8-bit palette or greyscale PNG"),
        ("d.png", "label is 8x16, its image 16x16"),
        ("e.png", "class index 30 outside 0..21"),
    ];
    for (i, (file, msg)) in cases.iter().enumerate() {
        let err = s.read(i).unwrap_err().to_string();
        assert!(err.contains(file) && err.contains(msg), "{err}");
    }
    let err = VocSplit::open(&root.join("VOCdevkit"), "val", 21)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("val.txt") && err.contains("split list"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn palette_labels_round_trip_and_read_greyscale() {
    let dir = tmp("palette");
    let (_, label) = item();
    let p = dir.join("l.png");
    write_label(&p, &label).unwrap();
    assert_eq!(read_label(&p).unwrap(), label);
    let g = dir.join("g.png");
    image::GrayImage::from_raw(16, 16, label.data.clone())
        .unwrap()
        .save(&g)
        .unwrap();
    assert_eq!(read_label(&g).unwrap(), label);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn training_augmentation_crops_pads_and_is_seeded() {
    let (img, label) = item();
    let cfg = AugmentConfig {
        crop: 24,
        scale_min: 0.5,
        scale_max: 2.0,
        ..AugmentConfig::default()
    };
    let a = train_sample(&img, &label, &cfg, &mut StdRng::seed_from_u64(5));
    let b = train_sample(&img, &label, &cfg, &mut StdRng::seed_from_u64(5));
    assert_eq!(a, b);
    assert_eq!(
        (a.h, a.w, a.image.len(), a.label.len()),
        (24, 24, 3 * 576, 576)
    );
    // Labels stay in the source's set (nearest resize) plus the 255 padding.
    assert!(a.label.iter().all(|v| [0, 3, 20, 255].contains(v)));
    // Without scaling and with a larger crop: padding is 255 / 0.
    let pad = AugmentConfig {
        crop: 20,
        scale_min: 1.0,
        scale_max: 1.0,
        flip: false,
        ..AugmentConfig::default()
    };
    let s = train_sample(&img, &label, &pad, &mut StdRng::seed_from_u64(1));
    assert_eq!(s.label[19], 255);
    assert_eq!(s.image[19], 0.0);
    assert_eq!(s.label[0], 3);
    let mean_r = (200.0 / 255.0 - 0.485) / 0.229;
    assert!((s.image[0] - mean_r).abs() < 0.05);
    // Nearest resize: 2x upsampling repeats each label.
    let up = resize_label(&label, 32, 32);
    assert_eq!(up.data[0..2], [3, 3]);
    assert_eq!(up.data[32 * 14], 255);
}

/// The training resize is bilinear with pixel centres aligned (`(x + 0.5)
/// in / out - 0.5`) and, when shrinking, a filter widened by the factor (as
/// Pillow's): it keeps a constant, and a symmetric filter reproduces a
/// linear ramp wherever it does not reach the border.
#[test]
fn bilinear_resize_keeps_constants_and_interpolates_a_ramp() {
    let flat = image::RgbImage::from_pixel(7, 5, image::Rgb([10, 120, 250]));
    let r = resize_rgb(&flat, 19, 11);
    assert_eq!(r.len(), 3 * 19 * 11);
    assert!(r.chunks(3).all(|p| p == [10, 120, 250]));
    let ramp = image::RgbImage::from_fn(8, 2, |x, _| image::Rgb([(20 + 20 * x) as u8; 3]));
    let up = resize_rgb(&ramp, 16, 4);
    for x in 1..15 {
        let want = 20.0 + 20.0 * ((x as f64 + 0.5) / 2.0 - 0.5);
        assert!(
            (up[3 * x] as f64 - want).abs() <= 1.0,
            "up x={x}: {} against {want}",
            up[3 * x]
        );
    }
    let down = resize_rgb(&ramp, 4, 1);
    for x in 1..3 {
        let want = 20.0 + 20.0 * (2.0 * x as f64 + 0.5);
        assert!(
            (down[3 * x] as f64 - want).abs() <= 1.0,
            "down x={x}: {} against {want}",
            down[3 * x]
        );
    }
}

/// A small GN DeepLabV3 (ResNet-18 at quarter width, 21 classes) that
/// evaluates on the `train` list of the VOC tree under `root`.
fn tiny_eval_config(root: &Path) -> wsbcn_seg::task::SegConfig {
    use wsbcn_seg::deeplab::DeepLabConfig;
    use wsbcn_seg::resnet::ResNetConfig;
    use wsbcn_seg::task::SegConfig;
    let mut cfg = SegConfig {
        model: DeepLabConfig {
            backbone: ResNetConfig {
                depth: 18,
                width: 0.25,
                output_stride: 8,
                ..ResNetConfig::default()
            },
            aspp_channels: 16,
            aspp_rates: [1, 2, 3],
            ..DeepLabConfig::default()
        },
        ..SegConfig::default()
    };
    cfg.norm.spec = "gn".into();
    cfg.norm.groups = 4;
    cfg.data.root = root.join("VOCdevkit");
    cfg.data.val_split = "train".into();
    cfg
}

#[test]
fn sliding_window_with_one_window_equals_whole_image_evaluation() {
    use candle_core::{Device, Tensor};
    use wsbcn_seg::augment::SegSample;
    use wsbcn_seg::task::{EvalMode, SegTask};
    let root = tmp("slide");
    voc_tree(&root, &["a", "b"]);
    let mut cfg = tiny_eval_config(&root);
    let whole = SegTask::new(&cfg, &Device::Cpu).unwrap();
    cfg.data.eval = EvalMode::Slide {
        window: 16,
        stride: 16,
    };
    let slide = SegTask::new(&cfg, &Device::Cpu).unwrap();
    // Same seed, one window covering the image: the same logits.
    let (img, label) = item();
    let sample = wsbcn_seg::augment::eval_sample(&img, &label, &cfg.data.augment);
    let (a, b) = (
        whole.predict_logits(&sample).unwrap(),
        slide.predict_logits(&sample).unwrap(),
    );
    assert_eq!(a.dims(), [21, 16, 16]);
    let diff = max_abs_diff(&a, &b).unwrap();
    assert!(diff < 1e-5, "{diff}");
    // Overlapping windows (12 px every 5 on 16: offsets 0 and 4 a side):
    // each pixel is the mean of whole-image logits of the 12x12 crops that
    // cover it, computed here by hand.
    cfg.data.eval = EvalMode::Slide {
        window: 12,
        stride: 5,
    };
    let overlap = SegTask::new(&cfg, &Device::Cpu).unwrap();
    let (mut sum, mut count) = (vec![0f64; 21 * 256], vec![0f64; 256]);
    let img = &sample.image;
    for y0 in [0, 4] {
        for x0 in [0, 4] {
            let crop = SegSample {
                h: 12,
                w: 12,
                image: (0..3)
                    .flat_map(|ch| {
                        (0..12).flat_map(move |y| {
                            (0..12).map(move |x| img[(ch * 16 + y0 + y) * 16 + x0 + x])
                        })
                    })
                    .collect(),
                label: vec![0; 144],
            };
            let l: Vec<f32> = whole
                .predict_logits(&crop)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            for (i, v) in l.iter().enumerate() {
                let (c, y, x) = (i / 144, i / 12 % 12, i % 12);
                sum[(c * 16 + y0 + y) * 16 + x0 + x] += *v as f64;
                if c == 0 {
                    count[(y0 + y) * 16 + x0 + x] += 1.0;
                }
            }
        }
    }
    let want: Vec<f32> = (0..21 * 256)
        .map(|i| (sum[i] / count[i % 256]) as f32)
        .collect();
    let want = Tensor::from_vec(want, (21, 16, 16), &Device::Cpu).unwrap();
    let diff = max_abs_diff(&overlap.predict_logits(&sample).unwrap(), &want).unwrap();
    assert!(diff < 1e-5, "{diff}");
    let m = overlap.evaluate_split().unwrap();
    assert!((0.0..=1.0).contains(&m.pixel_accuracy) && m.iou.len() == 21);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn batched_evaluation_scores_every_image_as_one_image_per_pass_does() {
    use candle_core::Device;
    use wsbcn_seg::augment::eval_sample;
    use wsbcn_seg::metrics::ConfusionMatrix;
    use wsbcn_seg::task::{EvalMode, SegTask};
    let root = tmp("batched-eval");
    voc_tree(&root, &["a", "b", "c", "d"]);
    // Distinct images and labels: b inverted, c a 20x24 image, d shifted
    // colours; labels of classes the untrained model predicts (1, 4, 9, 17,
    // 18), so that a prediction scored against another image's label
    // changes the confusion matrix.
    let voc = root.join("VOCdevkit/VOC2012");
    let (img, _) = item();
    for (id, left, right) in [("a", 9, 17), ("b", 1, 4), ("d", 18, 9)] {
        let l = LabelMap {
            width: 16,
            height: 16,
            data: (0..256)
                .map(|i| if i % 16 < 8 { left } else { right })
                .collect(),
        };
        write_label(&voc.join(format!("SegmentationClass/{id}.png")), &l).unwrap();
    }
    let inverted = RgbImage::from_fn(16, 16, |x, y| {
        let p = img.get_pixel(x, y).0;
        Rgb([255 - p[0], 255 - p[1], 255 - p[2]])
    });
    inverted.save(voc.join("JPEGImages/b.jpg")).unwrap();
    let wide = RgbImage::from_fn(24, 20, |x, y| Rgb([(x * 10) as u8, (y * 12) as u8, 90]));
    wide.save(voc.join("JPEGImages/c.jpg")).unwrap();
    let wide_label = LabelMap {
        width: 24,
        height: 20,
        data: (0..480).map(|i| if i % 24 < 12 { 17 } else { 1 }).collect(),
    };
    write_label(&voc.join("SegmentationClass/c.png"), &wide_label).unwrap();
    let shifted = RgbImage::from_fn(16, 16, |x, y| {
        let p = img.get_pixel(x, y).0;
        Rgb([p[1], p[2], p[0]])
    });
    shifted.save(voc.join("JPEGImages/d.jpg")).unwrap();
    let mut cfg = tiny_eval_config(&root);
    let split = VocSplit::open(&cfg.data.root, "train", 21).unwrap();
    let samples: Vec<_> = (0..4)
        .map(|i| {
            let it = split.read(i).unwrap();
            eval_sample(&it.image, &it.label, &cfg.data.augment)
        })
        .collect();
    for eval in [
        EvalMode::Whole,
        EvalMode::Slide {
            window: 12,
            stride: 5,
        },
    ] {
        cfg.data.eval = eval;
        let task = SegTask::new(&cfg, &Device::Cpu).unwrap();
        // The three 16x16 images in one pass: each as on its own.
        let same: Vec<_> = [0, 1, 3].iter().map(|&i| samples[i].clone()).collect();
        let batch = task.predict_batch_logits(&same).unwrap();
        assert_eq!(batch.dims(), [3, 21, 16, 16]);
        for (i, s) in same.iter().enumerate() {
            let one = task.predict_logits(s).unwrap();
            let diff = max_abs_diff(&batch.get(i).unwrap(), &one).unwrap();
            assert!(diff < 1e-5, "{:?} sample {i}: {diff}", cfg.data.eval);
        }
        // Mixed sizes are refused, not silently cropped.
        assert!(task
            .predict_batch_logits(&[samples[0].clone(), samples[2].clone()])
            .is_err());
        // The split's metrics, whatever the pixels per pass (1: one image;
        // 512: two 16x16 images; 2^20: all of one size), equal one image
        // per pass.
        let mut cm = ConfusionMatrix::new(21);
        for s in &samples {
            cm.add(&s.label, &task.predict(s).unwrap()).unwrap();
        }
        let want = cm.metrics();
        for max in [1, 512, 1 << 20] {
            assert_eq!(task.evaluate_in_batches(max).unwrap(), want, "{max} pixels");
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn every_segmentation_config_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/seg");
    let mut names = vec![];
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let cfg: SegConfig =
                load_config(&path, &[]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let want = name.rsplit_once(if name.starts_with("voc") {
                "os16_"
            } else {
                "voc_"
            });
            let mut spec = want
                .unwrap()
                .1
                .replace("_ws", "+ws")
                .replace("_est", "-est");
            // The VOC recipes standardize as the authors' deeplab.py does.
            if name.starts_with("voc") && spec.ends_with("+ws") {
                spec += "-std-eps";
            }
            assert_eq!(cfg.norm.spec, spec, "{name}");
            // The VOC recipes are the WS/BCN authors' model.
            if name.starts_with("voc") {
                assert_eq!(cfg.model.head, Head::Paper, "{name}");
                assert_eq!(cfg.model.backbone.dilations().unwrap()[3], [1, 2, 2]);
            }
            names.push(name);
        }
    }
    assert_eq!(names.len(), 12, "{names:?}");
}

#[test]
fn the_voc_recipes_name_checkpoints_their_maps_fit() {
    use candle_nn::{VarBuilder, VarMap};
    use wsbcn_testkit::models::{commented_pretrained, imagenet_checkpoint};
    use wsbcn_train::pretrained::match_weights;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/seg");
    let recipe = |v: &str| dir.join(format!("voc_deeplabv3_r101_os16_{v}.toml"));
    // The checkpoints' names: torchvision's ResNet-101, or the WS/BCN
    // authors' with their norms.
    for (variant, norm, map) in [
        ("bn", "bn", WeightMap::TorchvisionResnet),
        ("gn_ws", "gn", WeightMap::WsResnet),
        ("bcn_ws", "bcn", WeightMap::WsResnet),
        ("bcn_est_ws", "bcn", WeightMap::WsResnet),
    ] {
        let path = recipe(variant);
        let set = commented_pretrained(&path).unwrap_or_else(|| panic!("{variant}: no checkpoint"));
        let cfg: SegConfig = load_config(&path, &[set]).unwrap();
        let p = cfg.model.pretrained.as_ref().unwrap();
        assert_eq!(p.map, map, "{variant}");
        let f = wsbcn_nn::LayerFactory::new(&cfg.norm).unwrap();
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, candle_core::DType::F32, &candle_core::Device::Cpu);
        wsbcn_seg::deeplab::DeepLabV3::new(&cfg.model, &f, vb).unwrap();
        let ckpt = imagenet_checkpoint("torchvision_deeplabv3_resnet101.txt", "backbone.", norm);
        let m = match_weights(&ckpt, &vm, p.map, cfg.model.backbone_prefix(), &p.skip);
        assert!(m.problems.is_empty(), "{variant}: {:#?}", m.problems);
        assert!(
            m.skipped.iter().all(|n| n.starts_with("aspp.")),
            "{variant}"
        );
        assert_eq!(m.tensors.len() + m.skipped.len(), vm.all_vars().len());
    }
    // No GN-only ImageNet ResNet-101 is published: the file says so.
    assert!(commented_pretrained(&recipe("gn")).is_none());
}

#[test]
fn a_fresh_run_starts_from_pretrained_weights_and_a_resumed_one_needs_none() {
    use candle_core::Device;
    use wsbcn_seg::task::{SegTask, Segmentation};
    use wsbcn_train::{PretrainedConfig, Task, Trainer};
    let root = tmp("pretrained-run");
    voc_tree(&root, &["a", "b"]);
    let mut cfg = tiny_eval_config(&root);
    cfg.data.train_split = "train".into();
    cfg.data.augment.crop = 16;
    cfg.train.steps = 2;
    cfg.train.eval_interval = 100;
    cfg.train.checkpoint_interval = 1;
    cfg.train.data.batch_size = 1;
    cfg.train.data.workers = 0;
    // So small a step that the weights stay where they started.
    cfg.train.optim.lr = 1e-20;
    cfg.train.optim.weight_decay = 0.0;
    // Weights of another seed, as a checkpoint from elsewhere.
    let mut other = cfg.clone();
    other.train.seed = 7;
    let source = SegTask::new(&other, &Device::Cpu).unwrap();
    let file = root.join("pretrained.safetensors");
    source.varmap().save(&file).unwrap();
    cfg.model.pretrained = Some(PretrainedConfig {
        file: file.clone(),
        map: WeightMap::None,
        skip: vec![],
    });
    let conv = "backbone.layer1.0.conv1.weight";
    let value = |t: &SegTask| t.varmap().data().lock().unwrap()[conv].as_tensor().clone();
    let run = root.join("run");
    // Killed after a step...
    let trainer = Trainer::new(cfg.train.clone(), &run).stop_after(1);
    let (_, task) = wsbcn_train::train::<Segmentation>(&cfg, trainer, &Device::Cpu).unwrap();
    assert!(max_abs_diff(&value(&task), &value(&source)).unwrap() < 1e-12);
    let fresh = SegTask::new(&cfg, &Device::Cpu).unwrap();
    assert!(max_abs_diff(&value(&fresh), &value(&source)).unwrap() > 1e-3);
    // ... and resumed without the file: the checkpoint holds the weights.
    std::fs::remove_file(&file).unwrap();
    wsbcn_train::train::<Segmentation>(&cfg, Trainer::new(cfg.train.clone(), &run), &Device::Cpu)
        .unwrap();
    // A fresh run without it is an error naming it.
    let err = wsbcn_train::train::<Segmentation>(
        &cfg,
        Trainer::new(cfg.train.clone(), &root.join("run2")),
        &Device::Cpu,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("pretrained.safetensors"), "{err}");
}
