//! Kinetics-400, read from its official layout:
//!
//! ```text
//! <split>.csv    label,youtube_id,time_start,time_end,split
//! <root>/<split>/<label>/<youtube_id>_<time_start:06>_<time_end:06>.mp4
//! ```
//!
//! The class table is either given (a validation split uses the training
//! split's) or the sorted distinct labels of the file, which for the full
//! training CSV is the standard alphabetical Kinetics-400 index. A missing
//! column, a row with missing fields, a non-integer time or a label outside
//! the given classes is an error naming the file and the line.

use crate::video_list::{VideoList, VideoRecord};
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// The video file extension of the official release.
pub const EXTENSION: &str = "mp4";

const COLUMNS: [&str; 5] = ["label", "youtube_id", "time_start", "time_end", "split"];

/// One parsed CSV row.
struct Row {
    label: String,
    file: String,
    split: String,
}

fn read_rows(csv_path: &Path) -> Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(csv_path)
        .map_err(|e| Error::data(csv_path, e))?;
    let header = reader
        .headers()
        .map_err(|e| Error::data(csv_path, e))?
        .clone();
    let mut cols = [0usize; 5];
    for (col, name) in cols.iter_mut().zip(COLUMNS) {
        *col = header
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| Error::data(csv_path, format!("no `{name}` column in the header")))?;
    }
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| Error::data(csv_path, format!("line {line}: {e}")))?;
        let mut fields = [""; 5];
        for ((field, col), name) in fields.iter_mut().zip(cols).zip(COLUMNS) {
            *field = record.get(col).map(str::trim).unwrap_or("");
            if field.is_empty() {
                return Err(Error::data(
                    csv_path,
                    format!("line {line}: missing field `{name}`"),
                ));
            }
        }
        let [label, id, start, end, split] = fields;
        let time = |v: &str, name: &str| -> Result<u64> {
            v.parse().map_err(|_| {
                Error::data(
                    csv_path,
                    format!("line {line}: `{name}` is `{v}`, not a whole number of seconds"),
                )
            })
        };
        let (start, end) = (time(start, "time_start")?, time(end, "time_end")?);
        rows.push(Row {
            label: label.to_string(),
            file: format!("{id}_{start:06}_{end:06}.{EXTENSION}"),
            split: split.to_string(),
        });
    }
    Ok(rows)
}

/// Reads a Kinetics CSV; videos live under `root`. With `classes` `None`
/// the class table is the file's sorted distinct labels.
pub fn read_kinetics(
    csv_path: &Path,
    root: &Path,
    classes: Option<&[String]>,
) -> Result<VideoList> {
    let rows = read_rows(csv_path)?;
    let classes: Vec<String> = match classes {
        Some(c) => c.to_vec(),
        None => {
            let mut c: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
            c.sort();
            c.dedup();
            c
        }
    };
    let index: HashMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let records = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let label = *index.get(row.label.as_str()).ok_or_else(|| {
                Error::data(
                    csv_path,
                    format!("line {}: label `{}` is not a known class", i + 2, row.label),
                )
            })?;
            Ok(VideoRecord {
                path: root.join(&row.split).join(&row.label).join(&row.file),
                label,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(VideoList { classes, records })
}
