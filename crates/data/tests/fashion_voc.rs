//! Fashion-VOC: a readable, deterministic VOCdevkit tree (read back by
//! `wsbcn-seg`'s loader) from stand-in Fashion-MNIST files, the coarse
//! classes as the fine ones grouped, and garments labelled inside their
//! silhouette.

use std::path::PathBuf;
use wsbcn_data::fashion_voc::{generate, ClassSet, FashionVocConfig};
use wsbcn_seg::voc::{class_names, VocSplit};
use wsbcn_testkit::stand_in_mnist;

fn tmp(name: &str) -> PathBuf {
    wsbcn_testkit::fresh_dir("data", name)
}

#[test]
fn fashion_voc_is_a_readable_deterministic_voc_tree() {
    let mnist = stand_in_mnist(&tmp("idx"), false);
    let cfg = FashionVocConfig {
        size: 48,
        train: 6,
        val: 3,
        garments: (1, 3),
        scale: (1.0, 1.5),
        max_overlap: 1.0,
        classes: ClassSet::Fine,
        seed: 4,
    };
    let (a, b) = (tmp("fva"), tmp("fvb"));
    let root = generate(&mnist, &a, &cfg).unwrap();
    generate(&mnist, &b, &cfg).unwrap();
    for sub in [
        "JPEGImages/train_00003.jpg",
        "SegmentationClass/val_00002.png",
    ] {
        let fa = std::fs::read(a.join("VOCdevkit/VOC2012").join(sub)).unwrap();
        let fb = std::fs::read(b.join("VOCdevkit/VOC2012").join(sub)).unwrap();
        assert_eq!(fa, fb, "{sub} differs between runs with one seed");
    }
    let train = VocSplit::open(&root, "train", 11).unwrap();
    let val = VocSplit::open(&root, "val", 11).unwrap();
    assert_eq!((train.len(), val.len()), (6, 3));
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..6 {
        seen.extend(train.read(i).unwrap().label.data);
    }
    assert!(
        seen.contains(&0) && seen.contains(&255) && seen.iter().any(|&c| (1..=10).contains(&c)),
        "{seen:?}"
    );
    assert_eq!(VocSplit::open(&root, "trainval", 11).unwrap().len(), 9);
    for d in [mnist, a, b] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn coarse_fashion_voc_is_the_fine_one_with_its_labels_grouped() {
    // The class set changes only the labels: one seed gives the same images,
    // and every fine label maps to its coarse group (background and the
    // 255 rims kept).
    let mnist = stand_in_mnist(&tmp("idx-coarse"), false);
    let fine = FashionVocConfig {
        size: 40,
        train: 12,
        val: 2,
        scale: (1.0, 1.2),
        max_overlap: 1.0,
        seed: 3,
        ..FashionVocConfig::default()
    };
    let coarse = FashionVocConfig {
        classes: ClassSet::Coarse,
        ..fine
    };
    let (a, b) = (tmp("fv-fine"), tmp("fv-coarse"));
    let fine_root = generate(&mnist, &a, &fine).unwrap();
    let coarse_root = generate(&mnist, &b, &coarse).unwrap();
    let fine_split = VocSplit::open(&fine_root, "train", 11).unwrap();
    let coarse_split = VocSplit::open(&coarse_root, "train", 6).unwrap();
    // Fashion-MNIST's classes 0-9 (T-shirt/top, trouser, pullover, dress,
    // coat, sandal, shirt, sneaker, bag, ankle boot) in the coarse labels
    // 1 top, 2 trouser, 3 dress, 4 footwear, 5 bag.
    const GROUP: [u8; 10] = [1, 2, 1, 3, 1, 4, 1, 4, 5, 4];
    let group_of = |fine: u8| match fine {
        0 | 255 => fine,
        c => GROUP[c as usize - 1],
    };
    let mut groups = std::collections::BTreeSet::new();
    for i in 0..fine_split.len() {
        let (f, c) = (fine_split.read(i).unwrap(), coarse_split.read(i).unwrap());
        assert_eq!(f.image, c.image, "image {i}");
        let mapped: Vec<u8> = f.label.data.iter().map(|&l| group_of(l)).collect();
        assert_eq!(mapped, c.label.data, "labels of image {i}");
        groups.extend(c.label.data.iter().copied().filter(|l| (1..=5).contains(l)));
    }
    assert!(groups.len() >= 2, "only groups {groups:?} drawn");
    assert_eq!(ClassSet::Coarse.names().len(), 6);
    assert_eq!(ClassSet::Coarse.names()[4], "footwear");
    // Each set names its classes in its own folder; the reader takes the
    // names only when their count is the model's (VOC's own 21 names,
    // else none, otherwise).
    assert_eq!(class_names(&coarse_root, 6), ClassSet::Coarse.names());
    assert_eq!(class_names(&fine_root, 11), ClassSet::Fine.names());
    assert_eq!(class_names(&fine_root, 21)[15], "person");
    assert!(class_names(&fine_root, 6).is_empty());
    for d in [mnist, a, b] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn fashion_voc_labels_the_dark_inside_of_a_garment_as_the_garment() {
    // One hollow garment per 28x28 image, at scale 1 and an offset of at
    // most 5.6 px: image pixel (14, 14) lies in the garment's black inside,
    // which belongs to the garment, not to the background.
    let mnist = stand_in_mnist(&tmp("idx-hollow"), true);
    let out = tmp("fv-hollow");
    let cfg = FashionVocConfig {
        size: 28,
        train: 8,
        val: 2,
        garments: (1, 1),
        scale: (1.0, 1.0),
        max_overlap: 1.0,
        classes: ClassSet::Fine,
        seed: 1,
    };
    let root = generate(&mnist, &out, &cfg).unwrap();
    let train = VocSplit::open(&root, "train", 11).unwrap();
    for i in 0..train.len() {
        let label = train.read(i).unwrap().label;
        let centre = label.data[14 * 28 + 14];
        assert!(
            (1..=10).contains(&centre),
            "image {i}: centre labelled {centre}"
        );
    }
    let too_big = FashionVocConfig {
        scale: (1.0, 2.0),
        ..cfg
    };
    let err = generate(&mnist, &out, &too_big).unwrap_err().to_string();
    assert!(err.contains("does not fit a 28 px image"), "{err}");
    let reversed = FashionVocConfig {
        scale: (1.2, 1.0),
        ..cfg
    };
    let err = generate(&mnist, &out, &reversed).unwrap_err().to_string();
    assert!(err.contains("need 0 < MIN <= MAX"), "{err}");
    for d in [mnist, out] {
        let _ = std::fs::remove_dir_all(d);
    }
}
