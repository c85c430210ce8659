//! Something-Something v2, read from its official layout:
//!
//! ```text
//! <videos>/<id>.webm
//! labels.json       {"Moving something from left to right": "93", ...}   template -> index
//! train.json        [{"id": "78687", "template": "Moving [something] from left to right", ...}, ...]
//! validation.json   the same for the validation split
//! ```
//!
//! A split entry's class is its `template` with the `[`/`]` around each
//! placeholder removed, looked up in `labels.json` (indices as strings, as
//! published, or as numbers). Every problem is an error naming the file: a
//! missing or malformed JSON file, an entry without `id` or `template`, a
//! template not in `labels.json`, indices that do not cover `0..K` exactly.

use crate::video_list::{VideoList, VideoRecord};
use crate::{Error, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// The video file extension of the official release.
pub const EXTENSION: &str = "webm";

#[derive(Deserialize)]
#[serde(untagged)]
enum Index {
    Text(String),
    Number(usize),
}

#[derive(Deserialize)]
struct Entry {
    id: Option<String>,
    template: Option<String>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::data(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::data(path, format!("malformed JSON: {e}")))
}

/// A template with its placeholder brackets removed:
/// `"Putting [something] on [something]"` -> `"Putting something on something"`.
pub fn strip_template(template: &str) -> String {
    template.replace(['[', ']'], "")
}

/// Reads the class names of `labels.json`, ordered by index.
pub fn read_labels(labels: &Path) -> Result<Vec<String>> {
    let map: HashMap<String, Index> = read_json(labels)?;
    let mut classes = vec![None; map.len()];
    for (name, index) in map {
        let index = match index {
            Index::Number(i) => i,
            Index::Text(s) => s.trim().parse().map_err(|_| {
                Error::data(labels, format!("`{name}`: index `{s}` is not a number"))
            })?,
        };
        match classes.get_mut(index) {
            Some(slot @ None) => *slot = Some(name),
            Some(Some(other)) => {
                return Err(Error::data(
                    labels,
                    format!("index {index} is given to both `{other}` and `{name}`"),
                ))
            }
            None => {
                return Err(Error::data(
                    labels,
                    format!(
                        "`{name}`: index {index} is outside 0..{} (indices must be 0..K-1)",
                        classes.len()
                    ),
                ))
            }
        }
    }
    Ok(classes.into_iter().flatten().collect())
}

/// Reads one split (`train.json`, `validation.json`) with the classes of
/// `labels`; videos are `<videos>/<id>.webm`.
pub fn read_ssv2(videos: &Path, labels: &Path, split: &Path) -> Result<VideoList> {
    let classes = read_labels(labels)?;
    let index: HashMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let entries: Vec<Entry> = read_json(split)?;
    let mut records = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let missing = |field: &str| Error::data(split, format!("entry {i} has no `{field}`"));
        let id = entry.id.as_deref().ok_or_else(|| missing("id"))?;
        let template = entry
            .template
            .as_deref()
            .ok_or_else(|| missing("template"))?;
        let class = strip_template(template);
        let label = *index.get(class.as_str()).ok_or_else(|| {
            Error::data(
                split,
                format!(
                    "entry {i} (id {id}): class `{class}` is not in {}",
                    labels.display()
                ),
            )
        })?;
        records.push(VideoRecord {
            path: videos.join(format!("{id}.{EXTENSION}")),
            label,
        });
    }
    Ok(VideoList { classes, records })
}
