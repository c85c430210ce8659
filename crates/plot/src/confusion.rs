//! The confusion matrix as a heat map: rows the true class (labelled
//! `index name`), columns the predicted one (labelled by index), each row
//! shaded by the fraction of its videos (or pixels), the count printed in
//! each cell.

use crate::figure::{draw_err, Figure};
use crate::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

/// `counts[truth][prediction]` with class names, as a figure.
pub struct ConfusionFigure<'a> {
    /// The title.
    pub title: String,
    /// Class names, one per row and column.
    pub classes: &'a [String],
    /// `counts[truth][prediction]`.
    pub counts: &'a [Vec<usize>],
}

/// White to dark blue with `v` in [0, 1].
fn shade(v: f64) -> RGBColor {
    let v = v.clamp(0.0, 1.0);
    let mix = |a: f64, b: f64| (a + (b - a) * v).round() as u8;
    RGBColor(mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0))
}

impl ConfusionFigure<'_> {
    fn side(&self) -> u32 {
        let n = self.counts.len().max(1) as u32;
        (34 * n).clamp(200, 1400)
    }

    fn label_px(&self) -> u32 {
        let longest = self
            .classes
            .iter()
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(4);
        (longest as u32 * 7 + 20).min(360)
    }
}

impl Figure for ConfusionFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (self.side() + self.label_px() + 40, self.side() + 110)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        root.fill(&WHITE).map_err(draw_err)?;
        let n = self.counts.len();
        let names = |i: usize| {
            self.classes
                .get(i)
                .cloned()
                .unwrap_or_else(|| i.to_string())
        };
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(50)
            .y_label_area_size(self.label_px())
            .build_cartesian_2d(0.0..n as f64, n as f64..0.0)
            .map_err(draw_err)?;
        let centre = |v: &f64| {
            let i = v.floor() as usize;
            ((v - v.floor() - 0.5).abs() < 0.01 && i < n).then_some(i)
        };
        let x_label = |v: &f64| centre(v).map_or(String::new(), |i| i.to_string());
        let y_label = |v: &f64| centre(v).map_or(String::new(), |i| format!("{i}  {}", names(i)));
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(2 * n + 1)
            .y_labels(2 * n + 1)
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .x_label_style(("sans-serif", 12))
            .y_label_style(("sans-serif", 12))
            .x_desc("predicted class")
            .y_desc("true class")
            .draw()
            .map_err(draw_err)?;
        for (t, row) in self.counts.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f64;
            for (p, &c) in row.iter().enumerate() {
                let frac = c as f64 / total;
                let (x, y) = (p as f64, t as f64);
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x, y), (x + 1.0, y + 1.0)],
                        shade(frac).filled(),
                    )))
                    .map_err(draw_err)?;
                if c > 0 && n <= 40 {
                    let colour = if frac > 0.5 { WHITE } else { BLACK };
                    chart
                        .draw_series(std::iter::once(Text::new(
                            c.to_string(),
                            (x + 0.3, y + 0.35),
                            ("sans-serif", 11).into_font().color(&colour),
                        )))
                        .map_err(draw_err)?;
                }
            }
        }
        Ok(())
    }
}
