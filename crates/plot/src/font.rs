//! The sans-serif font plotters lays text out with.

use crate::{Error, Result};
use plotters::style::FontStyle;
use std::path::PathBuf;
use std::sync::OnceLock;

const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers the font as plotters' `sans-serif`: the file named by
/// `WSBCN_FONT`, else DejaVu Sans (Debian's `fonts-dejavu-core`). Call it
/// before drawing; later calls return the first call's outcome.
/// (Plotters' own font lookup needs fontconfig and freetype; reading one
/// TTF file keeps the build free of them.)
pub fn font() -> Result<()> {
    static FONT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let paths: Vec<PathBuf> = match std::env::var_os("WSBCN_FONT") {
            Some(p) => vec![p.into()],
            None => FONT_PATHS.iter().map(PathBuf::from).collect(),
        };
        let path = paths.iter().find(|p| p.exists()).ok_or_else(|| {
            format!(
                "no font for the figures at {}: install fonts-dejavu-core or set WSBCN_FONT to a .ttf file",
                paths[0].display()
            )
        })?;
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // plotters keeps registered fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{}: not a TrueType font", path.display()))
    })
    .clone()
    .map_err(Error::Draw)
}
