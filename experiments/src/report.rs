//! The comparison report, `report.md` and `report.html` (figures inline as
//! SVG), generated from the run logs alone: environment, resolved config,
//! the table of final metrics (mean +- std over seeds) with run time and
//! throughput, the figures, and which variants beat large-batch BN.

use crate::figures::FIGURES;
use crate::records::{mean_std, Record, Runs};
use crate::{Error, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A block of the report, rendered to Markdown or HTML.
enum Block {
    Heading(String),
    Para(String),
    Table(Vec<String>, Vec<Vec<String>>),
    Code(String),
    Figure(String),
}

/// One row of the results table: a (task, variant, batch) over its seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Task name.
    pub task: String,
    /// Variant name.
    pub variant: String,
    /// Variant label.
    pub label: String,
    /// Samples per step.
    pub batch: usize,
    /// The compared metric.
    pub metric: String,
    /// Final metric of each finished seed.
    pub finals: Vec<f64>,
    /// Seeds that have not finished.
    pub unfinished: usize,
    /// Mean wall-clock seconds per run.
    pub wall_s: f64,
    /// Mean training samples per second.
    pub samples_per_s: f64,
    /// The variant's norm spec.
    pub norm: String,
}

impl Row {
    /// The metric cell: `mean +- std` over seeds, 4 decimals.
    pub fn metric_text(&self) -> String {
        if self.finals.is_empty() {
            return "unfinished".into();
        }
        let (m, s) = mean_std(&self.finals);
        let mut t = format!("{m:.4} ± {s:.4}");
        if self.unfinished > 0 {
            write!(t, " ({} unfinished)", self.unfinished).ok();
        }
        t
    }

    /// The row's cells in table order.
    pub fn cells(&self) -> Vec<String> {
        vec![
            self.task.clone(),
            self.label.clone(),
            self.batch.to_string(),
            (self.finals.len() + self.unfinished).to_string(),
            self.metric.clone(),
            self.metric_text(),
            format!("{:.1}", self.wall_s),
            format!("{:.2}", self.samples_per_s),
        ]
    }
}

/// The table's header.
pub const HEADER: [&str; 8] = [
    "task",
    "variant",
    "batch",
    "seeds",
    "metric",
    "final (mean ± std)",
    "run time (s)",
    "samples/s",
];

/// The results table of `runs`, one row per (task, variant, batch).
pub fn rows(runs: &Runs) -> Vec<Row> {
    let mut rows = vec![];
    for task in runs.tasks() {
        for (variant, label) in runs.variants() {
            for batch in runs.batches(&task, &variant) {
                let cell: Vec<&Record> = runs.cell(&task, &variant, batch).collect();
                let finished: Vec<&Record> =
                    cell.iter().copied().filter(|r| r.finished()).collect();
                let mean = |f: &dyn Fn(&Record) -> Option<f64>| {
                    let v: Vec<f64> = cell.iter().filter_map(|r| f(r)).collect();
                    if v.is_empty() {
                        f64::NAN
                    } else {
                        mean_std(&v).0
                    }
                };
                rows.push(Row {
                    task: task.clone(),
                    variant: variant.clone(),
                    label: label.clone(),
                    batch,
                    metric: cell[0].metric().to_string(),
                    finals: finished.iter().filter_map(|r| r.final_metric()).collect(),
                    unfinished: cell.len() - finished.len(),
                    wall_s: mean(&Record::wall_s),
                    samples_per_s: mean(&Record::samples_per_s),
                    norm: cell[0].log.attr("norm").unwrap_or_default().to_string(),
                });
            }
        }
    }
    rows
}

/// Per task: which variants beat large-batch BN (the `bn` row of the
/// largest batch), each at its smallest batch, and by how much.
pub fn verdicts(rows: &[Row]) -> Vec<String> {
    let mut out = vec![];
    let mut tasks: Vec<&str> = rows.iter().map(|r| r.task.as_str()).collect();
    tasks.dedup();
    for task in tasks {
        let of_task: Vec<&Row> = rows
            .iter()
            .filter(|r| r.task == task && !r.finals.is_empty())
            .collect();
        let Some(reference) = of_task
            .iter()
            .filter(|r| r.norm == "bn")
            .max_by_key(|r| r.batch)
        else {
            out.push(format!("{task}: no finished BN run to compare against."));
            continue;
        };
        let ref_mean = mean_std(&reference.finals).0;
        let (mut better, mut tied, mut worse) = (vec![], vec![], vec![]);
        let mut seen = vec![];
        for r in &of_task {
            if r.variant == reference.variant || seen.contains(&r.variant) {
                continue;
            }
            seen.push(r.variant.clone());
            let m = mean_std(&r.finals).0;
            let text = format!(
                "{} (batch {}): {:.4}, {:+.4}",
                r.label,
                r.batch,
                m,
                m - ref_mean
            );
            // Equal at the 4 decimals the report prints: a tie.
            if (m - ref_mean).abs() < 5e-5 {
                tied.push(text);
            } else if m > ref_mean {
                better.push(text);
            } else {
                worse.push(text);
            }
        }
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join("; ")
            }
        };
        out.push(format!(
            "{task}: {} (batch {}) reaches {} {:.4}. Beat it: {}. Tied: {}. Fell short: {}.",
            reference.label,
            reference.batch,
            reference.metric,
            ref_mean,
            list(&better),
            list(&tied),
            list(&worse)
        ));
    }
    out
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The host attributes `wsbcn-compare` writes into each run log.
pub fn host_attrs() -> Vec<(&'static str, String)> {
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    vec![
        ("host.cpu", cpu_model()),
        ("host.threads", threads.to_string()),
    ]
}

fn distinct(runs: &Runs, attr: &str) -> String {
    let mut v: Vec<&str> = runs
        .records
        .iter()
        .map(|r| r.log.attr(attr).unwrap_or("unknown"))
        .collect();
    v.sort_unstable();
    v.dedup();
    v.join(", ")
}

fn blocks(runs: &Runs) -> Vec<Block> {
    let first = &runs.records[0];
    let name = first.log.attr("comparison").unwrap_or("comparison");
    let rows = rows(runs);
    let mut b = vec![
        Block::Heading(format!(
            "Comparison `{name}`: normalization variants against BN"
        )),
        Block::Para(format!(
            "Generated by wsbcn-figures from {} run logs; every number below is read from them.",
            runs.records.len()
        )),
        Block::Heading("Environment".into()),
        Block::Table(
            vec!["".into(), "".into()],
            vec![
                vec!["CPU".into(), distinct(runs, "host.cpu")],
                vec!["threads".into(), distinct(runs, "host.threads")],
                vec!["wsbcn version".into(), distinct(runs, "crate_version")],
                vec!["git commit".into(), distinct(runs, "git_commit")],
            ],
        ),
        Block::Heading("Results".into()),
        Block::Table(
            HEADER.iter().map(|s| s.to_string()).collect(),
            rows.iter().map(Row::cells).collect(),
        ),
        Block::Heading("Against large-batch BN".into()),
    ];
    b.extend(verdicts(&rows).into_iter().map(Block::Para));
    b.push(Block::Heading("Figures".into()));
    b.extend(FIGURES.iter().map(|f| Block::Figure(f.to_string())));
    if let Some(cfg) = first.log.attr("comparison_config") {
        b.push(Block::Heading("Comparison config (resolved)".into()));
        b.push(Block::Code(cfg.to_string()));
    }
    b
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn markdown(blocks: &[Block]) -> String {
    let mut s = String::new();
    let mut level = 1;
    for b in blocks {
        match b {
            Block::Heading(h) => {
                writeln!(s, "{} {h}\n", "#".repeat(level)).ok();
                level = 2;
            }
            Block::Para(p) => {
                writeln!(s, "{p}\n").ok();
            }
            Block::Table(head, rows) => {
                writeln!(s, "| {} |", head.join(" | ")).ok();
                writeln!(s, "|{}", "---|".repeat(head.len())).ok();
                for r in rows {
                    writeln!(s, "| {} |", r.join(" | ")).ok();
                }
                s.push('\n');
            }
            Block::Code(c) => {
                writeln!(s, "```toml\n{}\n```\n", c.trim_end()).ok();
            }
            Block::Figure(f) => {
                writeln!(s, "![{f}]({f}.png)\n").ok();
            }
        }
    }
    s
}

fn html(blocks: &[Block], dir: &Path) -> Result<String> {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>wsbcn report</title>\n<style>body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}td,th{border:1px solid #999;padding:3px 8px}pre{background:#f4f4f4;padding:8px}</style></head><body>\n",
    );
    let mut level = 1;
    for b in blocks {
        match b {
            Block::Heading(h) => {
                writeln!(s, "<h{level}>{}</h{level}>", escape(h)).ok();
                level = 2;
            }
            Block::Para(p) => {
                writeln!(s, "<p>{}</p>", escape(p)).ok();
            }
            Block::Table(head, rows) => {
                s.push_str("<table>\n<tr>");
                for h in head {
                    write!(s, "<th>{}</th>", escape(h)).ok();
                }
                s.push_str("</tr>\n");
                for r in rows {
                    s.push_str("<tr>");
                    for c in r {
                        write!(s, "<td>{}</td>", escape(c)).ok();
                    }
                    s.push_str("</tr>\n");
                }
                s.push_str("</table>\n");
            }
            Block::Code(c) => {
                writeln!(s, "<pre>{}</pre>", escape(c)).ok();
            }
            Block::Figure(f) => {
                let path = dir.join(format!("{f}.svg"));
                let svg = std::fs::read_to_string(&path).map_err(|e| Error::file(&path, e))?;
                let svg = svg.trim_start_matches(|c| c != '<');
                let svg = match svg.strip_prefix("<?xml") {
                    Some(rest) => rest.split_once("?>").map_or(svg, |(_, r)| r),
                    None => svg,
                };
                writeln!(s, "<figure>{svg}</figure>").ok();
            }
        }
    }
    s.push_str("</body></html>\n");
    Ok(s)
}

/// Writes `report.md` and `report.html` into `dir` (which must hold the
/// figures); returns their paths.
pub fn write_report(runs: &Runs, dir: &Path) -> Result<Vec<PathBuf>> {
    let blocks = blocks(runs);
    let md = dir.join("report.md");
    let html_path = dir.join("report.html");
    let html = html(&blocks, dir)?;
    crate::write_atomic(&md, markdown(&blocks).as_bytes())?;
    crate::write_atomic(&html_path, html.as_bytes())?;
    Ok(vec![md, html_path])
}
