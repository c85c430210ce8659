//! A figure drawn once per backend and written as `<stem>.png` and
//! `<stem>.svg`, each through a temporary file renamed into place.

use crate::{font, Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Something drawable on any plotters backend.
pub trait Figure {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws the whole figure on `root`.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>;
}

/// A drawing error as this crate's [`Error`].
pub fn draw_err(e: impl std::fmt::Display) -> Error {
    Error::Draw(format!("drawing a figure: {e}"))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let file_err = |p: &Path, e: std::io::Error| Error::File {
        path: p.to_path_buf(),
        msg: e.to_string(),
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| file_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| file_err(path, e))
}

/// Writes `fig` as `<stem>.png` and `<stem>.svg` (`stem` a path without
/// extension, its folder created); returns both paths.
pub fn save(fig: &impl Figure, stem: &Path) -> Result<[PathBuf; 2]> {
    font()?;
    if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::File {
            path: dir.to_path_buf(),
            msg: e.to_string(),
        })?;
    }
    let (w, h) = fig.size();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        fig.draw(&root)?;
        root.present().map_err(draw_err)?;
    }
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        fig.draw(&root)?;
        root.present().map_err(draw_err)?;
    }
    let png_path = stem.with_extension("png");
    let mut png = vec![];
    image::RgbImage::from_raw(w, h, rgb)
        .ok_or_else(|| Error::Draw("image buffer of the wrong size".into()))?
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| Error::File {
            path: png_path.clone(),
            msg: e.to_string(),
        })?;
    write_atomic(&png_path, &png)?;
    let svg_path = stem.with_extension("svg");
    write_atomic(&svg_path, svg.as_bytes())?;
    Ok([png_path, svg_path])
}
