//! PASCAL VOC 2012 segmentation data, read from its official layout:
//!
//! ```text
//! VOCdevkit/VOC2012/JPEGImages/<id>.jpg
//! VOCdevkit/VOC2012/SegmentationClass/<id>.png       palette PNG, class indices, 255 = ignore
//! VOCdevkit/VOC2012/SegmentationClassAug/<id>.png    greyscale (the augmented set, optional)
//! VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val,trainval,train_aug}.txt
//! VOCdevkit/VOC2012/class_names.txt                  optional: one name per class, in index order
//! ```
//!
//! VOC itself has no `class_names.txt` (its 21 names are [`VOC_CLASSES`]);
//! data sets written in its layout by `wsbcn-data` carry one, so tables
//! can name their classes ([`class_names`]).
//!
//! Splits whose name ends in `_aug` read their labels from
//! `SegmentationClassAug`. Every problem is an error naming the file: a
//! missing list, image or label, a label that is not an 8-bit palette or
//! greyscale PNG, an image/label size mismatch, a class index outside
//! `0..K` other than 255.

use crate::palette::{read_label, LabelMap};
use crate::{Error, Result};
use image::RgbImage;
use std::path::{Path, PathBuf};

/// The 21 classes of VOC 2012 segmentation, background first.
pub const VOC_CLASSES: [&str; 21] = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
];

/// The label that marks pixels to ignore.
pub const IGNORE: u8 = 255;

/// One split of a VOC-layout data set.
#[derive(Clone, Debug)]
pub struct VocSplit {
    root: PathBuf,
    label_dir: PathBuf,
    ids: Vec<String>,
    num_classes: usize,
}

/// One image and its labels.
#[derive(Clone, Debug)]
pub struct VocItem {
    /// The image id (file stem).
    pub id: String,
    /// RGB pixels.
    pub image: RgbImage,
    /// Class indices, the image's size.
    pub label: LabelMap,
}

/// The `VOC2012` folder of `root` (the `VOCdevkit` folder or the
/// `VOC2012` folder itself).
fn voc2012(root: &Path) -> PathBuf {
    if root.join("VOC2012").is_dir() {
        root.join("VOC2012")
    } else {
        root.to_path_buf()
    }
}

/// The file [`class_names`] reads under the `VOC2012` folder.
pub const CLASS_NAMES_FILE: &str = "class_names.txt";

/// Names for the `num_classes` classes of the data set under `root`:
/// its `class_names.txt` when that names exactly `num_classes` classes,
/// else [`VOC_CLASSES`] for 21 classes, else none (tables then show class
/// indices).
pub fn class_names(root: &Path, num_classes: usize) -> Vec<String> {
    let listed: Vec<String> = std::fs::read_to_string(voc2012(root).join(CLASS_NAMES_FILE))
        .map(|text| text.lines().map(|l| l.trim().to_string()).collect())
        .unwrap_or_default();
    if listed.len() == num_classes {
        listed
    } else if num_classes == VOC_CLASSES.len() {
        VOC_CLASSES.iter().map(|s| s.to_string()).collect()
    } else {
        vec![]
    }
}

impl VocSplit {
    /// Opens split `split` under `root` (the `VOCdevkit` folder or its
    /// `VOC2012` folder) with `num_classes` classes (21 for VOC).
    pub fn open(root: &Path, split: &str, num_classes: usize) -> Result<Self> {
        let root = voc2012(root);
        let list = root
            .join("ImageSets/Segmentation")
            .join(format!("{split}.txt"));
        let text = std::fs::read_to_string(&list)
            .map_err(|e| Error::data(&list, format!("cannot read the split list: {e}")))?;
        let ids: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| l.split_whitespace().next().unwrap_or(l).to_string())
            .collect();
        if ids.is_empty() {
            return Err(Error::data(&list, "the split list names no image"));
        }
        let label_dir = root.join(if split.ends_with("_aug") {
            "SegmentationClassAug"
        } else {
            "SegmentationClass"
        });
        if !label_dir.is_dir() {
            return Err(Error::data(&label_dir, "label folder missing"));
        }
        Ok(Self {
            root,
            label_dir,
            ids,
            num_classes,
        })
    }

    /// Image ids in list order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when the split is empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Number of classes (labels are `0..K` or 255).
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The image file of item `i`.
    pub fn image_path(&self, i: usize) -> PathBuf {
        self.root
            .join("JPEGImages")
            .join(format!("{}.jpg", self.ids[i]))
    }

    /// The label file of item `i`.
    pub fn label_path(&self, i: usize) -> PathBuf {
        self.label_dir.join(format!("{}.png", self.ids[i]))
    }

    /// Reads item `i`, checking it (see the module docs).
    pub fn read(&self, i: usize) -> Result<VocItem> {
        let (ip, lp) = (self.image_path(i), self.label_path(i));
        if !ip.exists() {
            return Err(Error::data(&ip, "image missing"));
        }
        if !lp.exists() {
            return Err(Error::data(&lp, "label missing"));
        }
        let image = image::open(&ip)
            .map_err(|e| Error::data(&ip, format!("cannot decode the image: {e}")))?
            .to_rgb8();
        let label = read_label(&lp)?;
        if (image.width() as usize, image.height() as usize) != (label.width, label.height) {
            return Err(Error::data(
                &lp,
                format!(
                    "label is {}x{}, its image {}x{}",
                    label.width,
                    label.height,
                    image.width(),
                    image.height()
                ),
            ));
        }
        if let Some(bad) = label
            .data
            .iter()
            .find(|&&v| v as usize >= self.num_classes && v != IGNORE)
        {
            return Err(Error::data(
                &lp,
                format!(
                    "class index {bad} outside 0..{} and not {IGNORE}",
                    self.num_classes
                ),
            ));
        }
        Ok(VocItem {
            id: self.ids[i].clone(),
            image,
            label,
        })
    }
}
