//! Fashion-SSv2 and Fashion-Kinetics: readable, deterministic trees in the
//! SSv2 and Kinetics layouts (read back by `wsbcn-video`'s loaders and
//! decoder) whose garments move as their class says, and the same clips in
//! both layouts.

use std::path::{Path, PathBuf};
use wsbcn_data::fashion_ssv2::{
    generate_kinetics, generate_ssv2, kinetics_label, FashionSsv2Config, TEMPLATES,
};
use wsbcn_testkit::stand_in_mnist;
use wsbcn_video::kinetics::read_kinetics;
use wsbcn_video::ssv2::read_ssv2;
use wsbcn_video::{decode_all, Resize};

fn fresh_dir(name: &str) -> PathBuf {
    wsbcn_testkit::fresh_dir("data", name)
}

/// The centroid of the garment: pixels weighted by how far their channel
/// sum exceeds the brightest possible background (the generators draw
/// light garments on grounds with every channel below 0.5).
fn bright_centroid(frame: &[u8], side: usize) -> (f64, f64) {
    let (mut sx, mut sy, mut n) = (0.0, 0.0, 0.0);
    for (i, px) in frame.chunks(3).enumerate() {
        let w = (px.iter().map(|&v| v as f64).sum::<f64>() - 390.0).max(0.0);
        sx += w * (i % side) as f64;
        sy += w * (i / side) as f64;
        n += w;
    }
    assert!(n > 0.0, "no garment pixel in the frame");
    (sx / n, sy / n)
}

fn small_video_config() -> FashionSsv2Config {
    FashionSsv2Config {
        size: 48,
        frames: (6, 9),
        train: 18,
        val: 9,
        scale: (0.8, 0.9),
        ..FashionSsv2Config::default()
    }
}

#[test]
fn fashion_ssv2_is_a_readable_deterministic_ssv2_tree_whose_motion_matches_its_class() {
    let d = fresh_dir("fashion-ssv2");
    let mnist = stand_in_mnist(&d.join("mnist"), false);
    let cfg = small_video_config();
    let (a, b) = (d.join("a"), d.join("b"));
    generate_ssv2(&mnist, &a, &cfg).unwrap();
    generate_ssv2(&mnist, &b, &cfg).unwrap();
    let read = |root: &Path, split: &str| {
        read_ssv2(
            &root.join("videos"),
            &root.join("labels.json"),
            &root.join(split),
        )
        .unwrap()
    };
    let train = read(&a, "train.json");
    let val = read(&a, "validation.json");
    assert_eq!((train.len(), val.len()), (18, 9));
    let names: Vec<String> = TEMPLATES
        .iter()
        .map(|t| t.replace(['[', ']'], ""))
        .collect();
    assert_eq!(train.classes, names);
    for (i, r) in train.records.iter().enumerate() {
        assert_eq!(r.label, i % TEMPLATES.len());
    }
    for r in train.records.iter().take(9) {
        let same = std::fs::read(&r.path).unwrap()
            == std::fs::read(b.join("videos").join(r.path.file_name().unwrap())).unwrap();
        assert!(
            same,
            "{} differs between runs with one seed",
            r.path.display()
        );
        let v = decode_all(&r.path, Resize::Original).unwrap();
        assert!((6..=9).contains(&v.count) && v.width == 48 && v.height == 48);
        // The garment moves as the class says, from first to last frame.
        let (x0, y0) = bright_centroid(v.frame(0), 48);
        let (x1, y1) = bright_centroid(v.frame(v.count - 1), 48);
        match r.label {
            0 => assert!(x1 > x0 + 8.0, "left to right: x {x0} -> {x1}"),
            1 => assert!(x1 < x0 - 8.0, "right to left: x {x0} -> {x1}"),
            2 => assert!(y1 < y0 - 8.0, "up: y {y0} -> {y1}"),
            3 => assert!(y1 > y0 + 8.0, "down: y {y0} -> {y1}"),
            8 => assert!(
                (x1 - x0).abs() < 2.5 && (y1 - y0).abs() < 2.5,
                "pretending moved"
            ),
            _ => {}
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn fashion_kinetics_holds_the_same_clips_in_the_kinetics_layout() {
    let d = fresh_dir("fashion-kinetics");
    let mnist = stand_in_mnist(&d.join("mnist"), false);
    let cfg = FashionSsv2Config {
        train: 9,
        val: 3,
        ..small_video_config()
    };
    generate_kinetics(&mnist, &d.join("k"), &cfg).unwrap();
    generate_ssv2(&mnist, &d.join("s"), &cfg).unwrap();
    let train = read_kinetics(&d.join("k/train.csv"), &d.join("k"), None).unwrap();
    let val = read_kinetics(&d.join("k/val.csv"), &d.join("k"), Some(&train.classes)).unwrap();
    assert_eq!((train.len(), val.len()), (9, 3));
    let mut expected: Vec<String> = TEMPLATES.iter().map(|t| kinetics_label(t)).collect();
    expected.sort();
    assert_eq!(train.classes, expected);
    let ssv2 = read_ssv2(
        &d.join("s/videos"),
        &d.join("s/labels.json"),
        &d.join("s/train.json"),
    )
    .unwrap();
    for (k, s) in train.records.iter().zip(&ssv2.records) {
        assert_eq!(train.classes[k.label], ssv2.classes[s.label].to_lowercase());
        let (kv, sv) = (
            decode_all(&k.path, Resize::Original).unwrap(),
            decode_all(&s.path, Resize::Original).unwrap(),
        );
        assert_eq!(kv.count, sv.count, "{}", k.path.display());
        let diff = kv
            .data
            .iter()
            .zip(&sv.data)
            .map(|(a, b)| (*a as f64 - *b as f64).abs())
            .sum::<f64>()
            / kv.data.len() as f64;
        assert!(
            diff < 6.0,
            "mp4 and webm of one clip differ by {diff} on average"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}
