//! Pictures of predictions: VOC-palette colourings and side-by-side panels
//! (image | ground truth | prediction).

use crate::palette::{voc_palette, LabelMap};
use image::{Rgb, RgbImage};

/// A label map in the VOC colours.
pub fn colorize(label: &LabelMap) -> RgbImage {
    let palette = voc_palette();
    RgbImage::from_fn(label.width as u32, label.height as u32, |x, y| {
        Rgb(palette[label.data[y as usize * label.width + x as usize] as usize])
    })
}

/// Images of one height placed left to right with a 4-pixel white gap.
pub fn panel(images: &[RgbImage]) -> RgbImage {
    let gap = 4;
    let h = images.iter().map(|i| i.height()).max().unwrap_or(1);
    let w =
        images.iter().map(|i| i.width()).sum::<u32>() + gap * images.len().saturating_sub(1) as u32;
    let mut out = RgbImage::from_pixel(w.max(1), h, Rgb([255, 255, 255]));
    let mut x0 = 0;
    for img in images {
        image::imageops::replace(&mut out, img, x0 as i64, 0);
        x0 += img.width() + gap;
    }
    out
}
