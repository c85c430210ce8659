//! The comparison's figures, drawn with plotters from the run logs, each
//! written as PNG and SVG:
//!
//! | file | what |
//! |---|---|
//! | `curves` | training loss (moving average) and the validation metric (with 95% intervals) against the training samples seen, a line per variant, a column per task |
//! | `batch_sweep` | final metric against samples per step (log2 axis), 95% intervals, a line per variant, a panel per task |
//! | `singularity` | fraction of channels near elimination singularities against the samples seen: mean over layers, and over the deepest stage |
//! | `ws_grad_ratio` | WS gradient-norm reduction ratio against the samples seen (WS variants) |
//! | `final_bars` | final metric per variant, grouped by batch size, error bars the 95% interval over seeds |
//!
//! Curves of a variant are those of its smallest batch size, averaged over
//! seeds; their x axis is samples seen (steps x batch x accumulated
//! micro-batches), so cells of different batch sizes line up. Intervals
//! are Student-t 95% intervals over seeds ([`crate::stats`]); a cell with
//! one seed has none. A variant keeps its colour in every figure (its
//! place in the comparison file picks it).

use crate::records::{Record, Runs};
use crate::stats::Summary;
use crate::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use wsbcn_plot::{draw_err as plot_err, Figure as Draw};

/// Every figure's file stem.
pub const FIGURES: [&str; 5] = [
    "curves",
    "batch_sweep",
    "singularity",
    "ws_grad_ratio",
    "final_bars",
];

/// The x axis of every curve: cells of different batch sizes share it.
const SAMPLES: &str = "training samples seen";

/// Tableau's ten colours.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One line of a chart (the figure's legend names its colour), with the
/// half-width of a 95% interval at each point where there is one.
struct Series {
    colour: RGBColor,
    points: Vec<(f64, f64)>,
    errors: Vec<Option<f64>>,
}

/// A figure of the comparison `runs`.
struct Figure<'a> {
    runs: &'a Runs,
    stem: &'a str,
}

impl Figure<'_> {
    fn colour(&self, variant: &str) -> RGBColor {
        let i = self
            .runs
            .variants()
            .iter()
            .position(|(v, _)| v == variant)
            .unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    }

    fn figure_size(&self) -> (u32, u32) {
        let tasks = self.runs.tasks().len().max(1) as u32;
        match self.stem {
            "curves" | "singularity" => (560 * tasks, 800),
            _ => (600 * tasks, 460),
        }
    }

    /// The legend's entries: every variant, with the batch its curves
    /// come from where the figure draws curves.
    fn legend(&self) -> Vec<(String, RGBColor)> {
        let tasks = self.runs.tasks();
        self.runs
            .variants()
            .into_iter()
            .map(|(variant, label)| {
                let batch = tasks
                    .iter()
                    .filter_map(|t| self.runs.batches(t, &variant).first().copied())
                    .min();
                let curves = !matches!(self.stem, "batch_sweep" | "final_bars");
                let text = match batch {
                    Some(b) if curves && !label.contains("batch") => format!("{label} (batch {b})"),
                    _ => label,
                };
                (text, self.colour(&variant))
            })
            .collect()
    }

    fn draw_all<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        root.fill(&WHITE).map_err(plot_err)?;
        let legend = self.legend();
        let per_row = (root.dim_in_pixel().0 as usize / 260).max(1);
        let rows_px = 28 * legend.len().div_ceil(per_row) as u32 + 8;
        let (top, root) = root.split_vertically(rows_px);
        for (i, (text, colour)) in legend.iter().enumerate() {
            let (x, y) = (
                20 + 260 * (i % per_row) as i32,
                10 + 28 * (i / per_row) as i32,
            );
            top.draw(&Rectangle::new(
                [(x, y + 2), (x + 22, y + 14)],
                colour.filled(),
            ))
            .map_err(plot_err)?;
            top.draw(&Text::new(text.as_str(), (x + 30, y), ("sans-serif", 15)))
                .map_err(plot_err)?;
        }
        let tasks = self.runs.tasks();
        let rows = match self.stem {
            "curves" | "singularity" => 2,
            _ => 1,
        };
        let areas = root.split_evenly((rows, tasks.len()));
        for (t, task) in tasks.iter().enumerate() {
            let metric = self.runs.of_task(task).next().map_or("", Record::metric);
            let panel = |row: usize| &areas[row * tasks.len() + t];
            match self.stem {
                "curves" => {
                    let loss = self.curves(task, |r| step_series(r, "loss", true));
                    samples_panel(panel(0), &format!("{task}: training loss"), "loss", &loss)?;
                    let m = self.curves(task, |r| eval_series(r, metric));
                    samples_panel(
                        panel(1),
                        &format!("{task}: validation {metric} (mean, 95% CI over seeds)"),
                        metric,
                        &m,
                    )?;
                }
                "singularity" => {
                    let mean = self.curves(task, |r| step_series(r, "singularity.mean", false));
                    let title = format!("{task}: near singularities, all layers");
                    samples_panel(panel(0), &title, "fraction of channels", &mean)?;
                    let deep = self.curves(task, deepest_singularity);
                    let title = format!("{task}: near singularities, deepest stage");
                    samples_panel(panel(1), &title, "fraction of channels", &deep)?;
                }
                "ws_grad_ratio" => {
                    let s = self.curves(task, |r| step_series(r, "ws_grad_ratio.mean", false));
                    let title = format!("{task}: WS gradient-norm ratio");
                    samples_panel(panel(0), &title, "|dL/dW| / |dL/dW_hat|", &s)?;
                }
                "batch_sweep" => {
                    let s = self.sweep(task);
                    let title = format!("{task}: final {metric} against batch size (95% CI)");
                    line_panel(panel(0), &title, "samples per step", metric, &s, true)?;
                }
                _ => self.bars(panel(0), task, metric)?,
            }
        }
        Ok(())
    }

    /// A line per variant, from its smallest batch, averaged over seeds,
    /// against the training samples seen (`series` gives (step, value)).
    fn curves(&self, task: &str, series: impl Fn(&Record) -> Vec<(f64, f64)>) -> Vec<Series> {
        let mut out = vec![];
        for (variant, _) in self.runs.variants() {
            let Some(&batch) = self.runs.batches(task, &variant).first() else {
                continue;
            };
            let per_seed: Vec<Vec<(f64, f64)>> = self
                .runs
                .cell(task, &variant, batch)
                .map(|r| {
                    let per_step = r.samples_per_step() as f64;
                    series(r)
                        .into_iter()
                        .map(|(s, v)| (s * per_step, v))
                        .collect()
                })
                .collect();
            let (points, errors) = mean_over_seeds(&per_seed);
            out.extend(self.series(&variant, points, errors));
        }
        out
    }

    /// The line of `variant` through `points` (with their error bars), when
    /// it has any.
    fn series(
        &self,
        variant: &str,
        points: Vec<(f64, f64)>,
        errors: Vec<Option<f64>>,
    ) -> Option<Series> {
        (!points.is_empty()).then(|| Series {
            colour: self.colour(variant),
            points,
            errors,
        })
    }

    fn sweep(&self, task: &str) -> Vec<Series> {
        let mut out = vec![];
        for (variant, _) in self.runs.variants() {
            let (points, errors): (Vec<(f64, f64)>, Vec<Option<f64>>) = self
                .runs
                .batches(task, &variant)
                .into_iter()
                .filter_map(|b| {
                    let finals: Vec<f64> = self
                        .runs
                        .cell(task, &variant, b)
                        .filter_map(Record::final_metric)
                        .collect();
                    (!finals.is_empty()).then(|| {
                        let s = Summary::of(&finals);
                        (((b as f64).log2(), s.mean), s.half_width)
                    })
                })
                .unzip();
            out.extend(self.series(&variant, points, errors));
        }
        out
    }

    fn bars<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        task: &str,
        metric: &str,
    ) -> Result<()> {
        let variants = self.runs.variants();
        let mut batches: Vec<usize> = self.runs.of_task(task).map(|r| r.batch).collect();
        batches.sort_unstable();
        batches.dedup();
        // (group, variant index, mean, 95% half-width or 0 for one seed)
        let mut bars = vec![];
        for (g, &b) in batches.iter().enumerate() {
            for (i, (variant, _)) in variants.iter().enumerate() {
                let finals: Vec<f64> = self
                    .runs
                    .cell(task, variant, b)
                    .filter_map(Record::final_metric)
                    .collect();
                if !finals.is_empty() {
                    let s = Summary::of(&finals);
                    bars.push((g, i, s.mean, s.half_width.unwrap_or(0.0)));
                }
            }
        }
        let top = bars
            .iter()
            .map(|&(_, _, m, s)| m + s)
            .fold(0.0f64, f64::max)
            .max(1e-3)
            * 1.25;
        let groups = batches.len().max(1) as f64;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{task}: final {metric} (95% CI)"),
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..groups, 0.0..top)
            .map_err(plot_err)?;
        let names = batches.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(batches.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let g = x.floor() as usize;
                if (x - x.floor() - 0.5).abs() < 0.01 && g < names.len() {
                    format!("batch {}", names[g])
                } else {
                    String::new()
                }
            })
            .x_desc("samples per step")
            .y_desc(metric)
            .draw()
            .map_err(plot_err)?;
        let per_group = variants.len() as f64;
        let width = 0.8 / per_group;
        for (i, (variant, _)) in variants.iter().enumerate() {
            let colour = self.colour(variant);
            let mine: Vec<_> = bars.iter().filter(|b| b.1 == i).collect();
            if mine.is_empty() {
                continue;
            }
            let x0 = |g: usize| g as f64 + 0.1 + i as f64 * width;
            chart
                .draw_series(mine.iter().map(|&&(g, _, m, _)| {
                    Rectangle::new([(x0(g), 0.0), (x0(g) + width * 0.9, m)], colour.filled())
                }))
                .map_err(plot_err)?;
            chart
                .draw_series(mine.iter().map(|&&(g, _, m, s)| {
                    let c = x0(g) + width * 0.45;
                    PathElement::new(vec![(c, m - s), (c, m + s)], BLACK.stroke_width(2))
                }))
                .map_err(plot_err)?;
        }
        Ok(())
    }
}

/// Series of at most this many points get markers and interval bars.
const SPARSE: usize = 12;

impl Series {
    /// Whether the series is sparse enough (evaluations, the sweep) for
    /// markers and interval bars; per-step curves get neither.
    fn sparse(&self) -> bool {
        self.points.len() <= SPARSE
    }

    /// `(x, y, half-width)` of every interval bar drawn.
    fn bars(&self) -> impl Iterator<Item = (f64, f64, f64)> + '_ {
        let drawn = if self.sparse() { self.errors.len() } else { 0 };
        self.points
            .iter()
            .zip(&self.errors[..drawn])
            .filter_map(|(&(x, y), e)| e.map(|e| (x, y, e)))
    }
}

/// A line chart against the training samples seen.
fn samples_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<()> {
    line_panel(area, title, SAMPLES, y_desc, series, false)
}

/// A line chart; `log2_x` labels x as 2^x.
fn line_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    log2_x: bool,
) -> Result<()> {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    let points = series
        .iter()
        .flat_map(|s| s.points.iter().map(|&(x, y)| (x, y, 0.0)));
    for (x, y, e) in points.chain(series.iter().flat_map(Series::bars)) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y - e), y1.max(y + e));
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    let (xpad, ypad) = (((x1 - x0) * 0.05).max(0.3), ((y1 - y0) * 0.08).max(1e-3));
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((x0 - xpad)..(x1 + xpad), (y0 - ypad)..(y1 + ypad))
        .map_err(plot_err)?;
    let fmt_x = |x: &f64| {
        if log2_x {
            let r = x.round();
            if (x - r).abs() < 1e-6 {
                format!("{}", 2f64.powf(r))
            } else {
                String::new()
            }
        } else {
            format!("{x:.0}")
        }
    };
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x_desc).y_desc(y_desc).x_label_formatter(&fmt_x);
    if log2_x {
        mesh.x_labels(((x1 - x0) * 4.0) as usize + 5);
    }
    mesh.draw().map_err(plot_err)?;
    if series.is_empty() {
        area.draw(&Text::new(
            "no data for any variant",
            (
                area.dim_in_pixel().0 as i32 / 3,
                area.dim_in_pixel().1 as i32 / 2,
            ),
            ("sans-serif", 16),
        ))
        .map_err(plot_err)?;
        return Ok(());
    }
    for s in series {
        let colour = s.colour;
        chart
            .draw_series(LineSeries::new(s.points.clone(), colour.stroke_width(2)))
            .map_err(plot_err)?;
        if s.sparse() {
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(plot_err)?;
        }
        let bars = s.bars().map(|(x, y, e)| {
            PathElement::new(vec![(x, y - e), (x, y + e)], colour.stroke_width(2))
        });
        chart.draw_series(bars).map_err(plot_err)?;
    }
    Ok(())
}

/// (step, value) of a per-step scalar, finite values only; `smooth`
/// averages over a window of 1/50 of the run.
fn step_series(r: &Record, name: &str, smooth: bool) -> Vec<(f64, f64)> {
    let Some(col) = r.log.scalar(name) else {
        return vec![];
    };
    let pts: Vec<(f64, f64)> = r
        .log
        .steps()
        .iter()
        .zip(col)
        .filter(|(_, v)| v.is_finite())
        .map(|(&s, &v)| (s as f64, v))
        .collect();
    if !smooth {
        return pts;
    }
    let w = (pts.len() / 50).max(1);
    pts.chunks(w)
        .map(|c| {
            let n = c.len() as f64;
            (
                c.iter().map(|p| p.0).sum::<f64>() / n,
                c.iter().map(|p| p.1).sum::<f64>() / n,
            )
        })
        .collect()
}

fn eval_series(r: &Record, metric: &str) -> Vec<(f64, f64)> {
    match r.log.eval(metric) {
        Some(m) => r
            .log
            .eval_steps()
            .iter()
            .zip(m)
            .map(|(&s, &v)| (s as f64, v))
            .collect(),
        None => vec![],
    }
}

/// The stage number of a layer name such as `backbone.layer4.1.bn2`.
fn stage(layer: &str) -> Option<u32> {
    layer
        .split('.')
        .find_map(|p| p.strip_prefix("layer").and_then(|n| n.parse().ok()))
}

/// Mean singularity fraction over the layers of the deepest stage.
pub fn deepest_singularity(r: &Record) -> Vec<(f64, f64)> {
    let cols: Vec<&str> = r
        .log
        .scalar_names()
        .filter(|n| n.starts_with("singularity.") && *n != "singularity.mean")
        .collect();
    let Some(deepest) = cols.iter().filter_map(|c| stage(c)).max() else {
        return vec![];
    };
    let cols: Vec<&[f64]> = cols
        .iter()
        .filter(|c| stage(c) == Some(deepest))
        .filter_map(|c| r.log.scalar(c))
        .collect();
    r.log
        .steps()
        .iter()
        .enumerate()
        .filter_map(|(i, &s)| {
            let v: Vec<f64> = cols
                .iter()
                .map(|c| c[i])
                .filter(|v| v.is_finite())
                .collect();
            (!v.is_empty()).then(|| (s as f64, v.iter().sum::<f64>() / v.len() as f64))
        })
        .collect()
}

/// Point-wise mean of curves measured at the same x (seeds of one cell),
/// with the 95% half-width where there are two seeds or more.
fn mean_over_seeds(curves: &[Vec<(f64, f64)>]) -> (Vec<(f64, f64)>, Vec<Option<f64>>) {
    let n = curves.iter().map(Vec::len).min().unwrap_or(0);
    (0..n)
        .map(|i| {
            let ys: Vec<f64> = curves.iter().map(|c| c[i].1).collect();
            let s = Summary::of(&ys);
            ((curves[0][i].0, s.mean), s.half_width)
        })
        .unzip()
}

impl Draw for Figure<'_> {
    fn size(&self) -> (u32, u32) {
        self.figure_size()
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> wsbcn_plot::Result<()> {
        self.draw_all(root)
            .map_err(|e| wsbcn_plot::Error::Draw(e.to_string()))
    }
}

/// Draws every figure of `runs` into `dir` as `<stem>.png` and
/// `<stem>.svg`; returns the files written.
pub fn write_figures(runs: &Runs, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = vec![];
    for stem in FIGURES {
        written.extend(wsbcn_plot::save(&Figure { runs, stem }, &dir.join(stem))?);
    }
    Ok(written)
}
