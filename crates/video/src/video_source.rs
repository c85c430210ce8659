//! Where a split's videos and labels come from: one of the three layouts,
//! as a config value (`[data.train] layout = "ssv2"`, ...).

use crate::kinetics::read_kinetics;
use crate::ssv2::read_ssv2;
use crate::video_list::{read_list_file, VideoList};
use crate::Result;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A split in one of the supported annotation layouts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "layout", rename_all = "snake_case", deny_unknown_fields)]
pub enum VideoSource {
    /// Something-Something v2: `labels.json`, a split JSON, `<videos>/<id>.webm`.
    Ssv2 {
        /// Folder of the `.webm` files.
        videos: PathBuf,
        /// `labels.json`.
        labels: PathBuf,
        /// `train.json` or `validation.json`.
        split: PathBuf,
    },
    /// Kinetics-400: a split CSV and `<root>/<split>/<label>/...mp4`.
    Kinetics {
        /// The split's CSV.
        csv: PathBuf,
        /// The folder holding the `<split>/` folders.
        root: PathBuf,
        /// The CSV whose sorted labels are the class table (the training
        /// split's); the split's own labels when absent.
        classes_from: Option<PathBuf>,
    },
    /// A `path label` list file with paths relative to `root`.
    List {
        /// The list file.
        list: PathBuf,
        /// The folder the paths are relative to.
        root: PathBuf,
        /// Class names by index.
        classes: Vec<String>,
    },
}

impl VideoSource {
    /// The Fashion-SSv2 layout written by `wsbcn-data fashion-ssv2` under
    /// `dir`: split `train` or `validation`.
    pub fn ssv2_dir(dir: &Path, split: &str) -> Self {
        VideoSource::Ssv2 {
            videos: dir.join("videos"),
            labels: dir.join("labels.json"),
            split: dir.join(format!("{split}.json")),
        }
    }

    /// The Kinetics layout under `dir` (`<split>.csv`, classes from
    /// `train.csv`): split `train` or `val`.
    pub fn kinetics_dir(dir: &Path, split: &str) -> Self {
        VideoSource::Kinetics {
            csv: dir.join(format!("{split}.csv")),
            root: dir.to_path_buf(),
            classes_from: Some(dir.join("train.csv")),
        }
    }

    /// Reads the split.
    pub fn read(&self) -> Result<VideoList> {
        match self {
            VideoSource::Ssv2 {
                videos,
                labels,
                split,
            } => read_ssv2(videos, labels, split),
            VideoSource::Kinetics {
                csv,
                root,
                classes_from,
            } => {
                let classes = match classes_from {
                    Some(from) => Some(read_kinetics(from, root, None)?.classes),
                    None => None,
                };
                read_kinetics(csv, root, classes.as_deref())
            }
            VideoSource::List {
                list,
                root,
                classes,
            } => read_list_file(list, root, classes.clone()),
        }
    }
}
