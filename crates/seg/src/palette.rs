//! PASCAL VOC label images: palette (or greyscale) PNGs whose pixel values
//! are class indices, 255 meaning "ignore". Read and written through the
//! `png` crate at the index level, never through RGB, so a label is exactly
//! the byte stored in the file.

use crate::{Error, Result};
use std::io::{BufReader, BufWriter};
use std::path::Path;

/// The VOC colour map: entry `i` spreads the bits of `i` over R, G and B
/// from the most significant bit down (class 1 is (128, 0, 0), 255 is
/// (224, 224, 192)).
pub fn voc_palette() -> Vec<[u8; 3]> {
    (0..256u32)
        .map(|i| {
            let (mut c, mut rgb) = (i, [0u8; 3]);
            for j in 0..8 {
                for (k, ch) in rgb.iter_mut().enumerate() {
                    *ch |= (((c >> k) & 1) as u8) << (7 - j);
                }
                c >>= 3;
            }
            rgb
        })
        .collect()
}

/// A label map: `height x width` class indices, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelMap {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Class index of each pixel (255: ignore).
    pub data: Vec<u8>,
}

/// Reads a palette or 8-bit greyscale PNG as class indices.
pub fn read_label(path: &Path) -> Result<LabelMap> {
    let file = std::fs::File::open(path).map_err(|e| Error::data(path, e))?;
    let mut decoder = png::Decoder::new(BufReader::new(file));
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder
        .read_info()
        .map_err(|e| Error::data(path, format!("not a readable PNG: {e}")))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| Error::data(path, "PNG too large"))?;
    let mut buf = vec![0; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| Error::data(path, format!("corrupt PNG: {e}")))?;
    match (info.color_type, info.bit_depth) {
        (png::ColorType::Indexed | png::ColorType::Grayscale, png::BitDepth::Eight) => {}
        (ct, bd) => {
            return Err(Error::data(
                path,
                format!(
                "a label must be an 8-bit palette or greyscale PNG, this one is {ct:?} at {bd:?}"
            ),
            ))
        }
    }
    let (w, h) = (info.width as usize, info.height as usize);
    let data = buf
        .chunks(info.line_size)
        .take(h)
        .flat_map(|row| row[..w].iter().copied())
        .collect();
    Ok(LabelMap {
        width: w,
        height: h,
        data,
    })
}

/// Writes class indices as an 8-bit palette PNG with the VOC colour map.
pub fn write_label(path: &Path, label: &LabelMap) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| Error::data(path, e))?;
    let mut enc = png::Encoder::new(
        BufWriter::new(file),
        label.width as u32,
        label.height as u32,
    );
    enc.set_color(png::ColorType::Indexed);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_palette(voc_palette().concat());
    let err = |e: png::EncodingError| Error::data(path, e);
    let mut writer = enc.write_header().map_err(err)?;
    writer.write_image_data(&label.data).map_err(err)?;
    writer.finish().map_err(err)
}
