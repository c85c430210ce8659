//! A labelled list of videos, the common result of every annotation layout
//! ([`crate::ssv2`], [`crate::kinetics`]), and the plain list-file layout:
//!
//! ```text
//! relative/path/to/video.mp4 <label index>
//! ```
//!
//! one video per line, paths relative to a root folder, blank lines and
//! lines starting with `#` skipped (mmaction2's `VideoDataset` list files).

use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// One video and its class index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoRecord {
    /// The video file.
    pub path: PathBuf,
    /// Its class index into [`VideoList::classes`].
    pub label: usize,
}

/// Videos with labels and the class names they index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoList {
    /// Class names by index.
    pub classes: Vec<String>,
    /// The videos, in file order.
    pub records: Vec<VideoRecord>,
}

impl VideoList {
    /// The number of videos.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when there are no videos.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// Reads a plain list file; `classes` names the label indices, which must
/// all be below `classes.len()`.
pub fn read_list_file(list: &Path, root: &Path, classes: Vec<String>) -> Result<VideoList> {
    let text = std::fs::read_to_string(list).map_err(|e| Error::data(list, e))?;
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |msg: String| Error::data(list, format!("line {}: {msg}", i + 1));
        let (path, label) = line
            .rsplit_once(char::is_whitespace)
            .ok_or_else(|| bad(format!("expected `path label`, got `{line}`")))?;
        let label: usize = label
            .parse()
            .map_err(|_| bad(format!("label `{label}` is not a class index")))?;
        if label >= classes.len() {
            return Err(bad(format!(
                "label {label} is outside the {} classes",
                classes.len()
            )));
        }
        records.push(VideoRecord {
            path: root.join(path.trim_end()),
            label,
        });
    }
    Ok(VideoList { classes, records })
}
