//! Comparisons end to end at toy size: a grid of 2 tasks x 2 variants x 2
//! batch sizes writes every figure (valid PNG and SVG naming every
//! variant) and a report whose table equals the run logs; the notebooks
//! run headless against it; a comparison killed mid-grid and rerun
//! finishes only the missing cells and ends where an uninterrupted one does.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use wsbcn_experiments::compare::run_comparison;
use wsbcn_experiments::figures::FIGURES;
use wsbcn_experiments::Comparison;
use wsbcn_tests::{tiny_fashion_ssv2, tiny_fashion_voc, tiny_video_sections};
use wsbcn_train::{load_config, RunLog};

const VARIANTS: [(&str, &str); 2] = [("bn", "BN"), ("gn-ws", "GN+WS")];

/// Writes the toy data, base configs and a comparison file `name.toml`
/// (output in `dir/<name>`) into `dir`; returns the comparison file.
fn toy_comparison(dir: &Path, name: &str) -> PathBuf {
    let data = dir.join("data");
    if !data.exists() {
        let voc = tiny_fashion_voc(&data);
        let ssv2 = tiny_fashion_ssv2(&data);
        let seg = format!(
            r#"
            [model]
            num_classes = 11
            aspp_channels = 16
            aspp_rates = [1, 2, 3]
            [model.backbone]
            depth = 18
            width = 0.125
            output_stride = 8
            [norm]
            spec = "gn+ws"
            groups = 4
            [data]
            root = "{voc}"
            train_split = "train"
            [data.augment]
            crop = 32
            [train.data]
            batch_size = 2
            workers = 1
            "#,
            voc = voc.display()
        );
        let sampler = r#"{ kind = "segments", num_segments = 4 }"#;
        let video = format!(
            "{}[train.data]\nbatch_size = 2\nworkers = 1\n",
            tiny_video_sections(&ssv2, sampler)
        );
        std::fs::write(dir.join("seg.toml"), seg).unwrap();
        std::fs::write(dir.join("video.toml"), video).unwrap();
    }
    let variants: String = VARIANTS
        .iter()
        .map(|(name, label)| {
            let norm = name.replace('-', "+");
            format!("[[variants]]\nname = \"{name}\"\nlabel = \"{label}\"\nnorm = \"{norm}\"\n")
        })
        .collect();
    let text = format!(
        r#"
name = "{name}"
out = "{out}"
batch_sizes = [1, 2]
[budget]
samples = 8
reference_batch = 2
eval_at = [0.5, 1.0]
diags = 4
[[tasks]]
name = "segmentation"
kind = "segmentation"
config = "seg.toml"
[[tasks]]
name = "video"
kind = "video"
config = "video.toml"
{variants}"#,
        out = dir.join(name).display()
    );
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    file
}

fn load(file: &Path) -> Comparison {
    load_config(file, &[]).unwrap()
}

/// The toy grid, run once for the tests of this file, in cargo's scratch
/// folder for integration tests (`target/tmp`): each run replaces the last
/// one's instead of leaving 140 MB behind in the system's temp folder.
fn grid() -> &'static Path {
    static GRID: OnceLock<PathBuf> = OnceLock::new();
    GRID.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wsbcn-exp");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = toy_comparison(&dir, "toy");
        let out = run_comparison(&load(&file), &file, 2, 1).unwrap();
        assert_eq!((out.ran.len(), out.failed.len()), (8, 0), "{out:?}");
        dir.join("toy")
    })
}

/// The final metric of every run log under `dir`: (task, variant, batch) -> value.
fn finals(dir: &Path) -> Vec<(String, String, String, f64)> {
    let mut out = vec![];
    for task in ["segmentation", "video"] {
        let metric = if task == "video" { "top1" } else { "miou" };
        for (variant, _) in VARIANTS {
            for b in ["b1", "b2"] {
                let log =
                    RunLog::read(&dir.join(task).join(variant).join(b).join("s0/run.h5")).unwrap();
                let m = *log.eval(metric).unwrap().last().unwrap();
                out.push((task.into(), variant.into(), b[1..].into(), m));
            }
        }
    }
    out
}

#[test]
fn a_toy_grid_writes_every_figure_and_a_report_equal_to_its_logs() {
    let dir = grid();
    for stem in FIGURES {
        let png = image::open(dir.join(format!("{stem}.png")))
            .unwrap_or_else(|e| panic!("{stem}.png: {e}"));
        assert!(png.width() >= 600 && png.height() >= 300, "{stem}.png");
        let svg = std::fs::read_to_string(dir.join(format!("{stem}.svg"))).unwrap();
        assert!(svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for (_, label) in VARIANTS {
            assert!(svg.contains(label), "{stem}.svg does not name {label}");
        }
    }
    // Every (task, variant, batch) row of the report holds the log's value.
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for (task, variant, batch, m) in finals(dir) {
        let label = VARIANTS.iter().find(|v| v.0 == variant).unwrap().1;
        let metric = if task == "video" { "top1" } else { "miou" };
        let row =
            format!("| {task} | {label} | {batch} | 1 | {metric} | {m:.4} (n = 1, no interval) |");
        assert!(report.contains(&row), "no row `{row}` in\n{report}");
    }
    assert!(
        report.contains("(a) BN at micro-batches is worse than BN at a large batch:"),
        "{report}"
    );
    assert!(!report.contains("± 0.0000"), "{report}");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), FIGURES.len());
    assert!(html.contains("GN+WS"));
}

#[test]
fn the_notebooks_run_headless_against_the_toy_grid() {
    let dir = grid();
    let notebooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("../notebooks");
    let script = r#"
import sys, nbformat, nbclient
path, cwd = sys.argv[1], sys.argv[2]
nb = nbformat.read(path, as_version=4)
nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                        resources={"metadata": {"path": cwd}}).execute()
"#;
    // The system Python, where `.ci/setup` installs h5py, pandas, SciPy,
    // matplotlib and nbclient (`WSBCN_PYTHON` picks another).
    let python = std::env::var("WSBCN_PYTHON").unwrap_or_else(|_| {
        let system = "/usr/bin/python3";
        if Path::new(system).exists() {
            system
        } else {
            "python3"
        }
        .to_string()
    });
    let mut ran = 0;
    for entry in std::fs::read_dir(&notebooks).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "ipynb") {
            continue;
        }
        let out = std::process::Command::new(&python)
            .args(["-c", script])
            .arg(&path)
            .arg(&notebooks)
            .env("WSBCN_RUNS", dir)
            .env("MPLBACKEND", "Agg")
            .output()
            .expect("python3 runs the notebooks (install: bash .ci/setup)");
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        ran += 1;
    }
    assert_eq!(ran, 3, "one notebook per task and one on singularities");
}

/// The body of the kill test's child process (run by the parent only).
#[test]
#[ignore = "run by killing_mid_grid_then_rerunning_finishes_only_missing_cells as a child"]
fn compare_child() {
    if let Ok(file) = std::env::var("WSBCN_CHILD_COMPARISON") {
        let file = PathBuf::from(file);
        run_comparison(&load(&file), &file, 1, 1).unwrap();
    }
}

#[test]
fn killing_mid_grid_then_rerunning_finishes_only_missing_cells() {
    let whole = grid();
    let dir = whole.parent().unwrap();
    let file = toy_comparison(dir, "killed");
    let cmp = load(&file);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "compare_child",
            "--ignored",
            "--test-threads",
            "1",
        ])
        .env("WSBCN_CHILD_COMPARISON", &file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill once the first cell has finished.
    let first = &cmp.cells()[0];
    let start = std::time::Instant::now();
    while !wsbcn_experiments::cell_run::finished_as_configured(&cmp, &file, first) {
        assert!(
            start.elapsed().as_secs() < 300,
            "the child finished no cell"
        );
        assert!(child.try_wait().unwrap().is_none(), "the child ended early");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let out = run_comparison(&cmp, &file, 1, 1).unwrap();
    assert!(
        out.skipped.contains(&cmp.cell_name(&cmp.cells()[0])),
        "{out:?}"
    );
    assert!(
        !out.ran.is_empty(),
        "the kill came after the last cell: {out:?}"
    );
    assert_eq!(out.ran.len() + out.skipped.len(), 8, "{out:?}");
    assert_eq!(finals(&dir.join("killed")), finals(whole));
}

#[test]
fn a_finished_run_of_another_config_is_not_reported_but_refused() {
    // The toy grid's runs, read by the same comparison edited in place:
    // BN momentum for 1 sample changes the batch-2 cells' configs (their
    // norm.momentum), not the batch-1 cells'.
    let whole = grid();
    let dir = whole.parent().unwrap();
    let file = toy_comparison(dir, "edited");
    copy_dir(whole, &dir.join("edited"));
    let edited: Comparison = load_config(&file, &["budget.momentum_batch=1".into()]).unwrap();
    let out = run_comparison(&edited, &file, 1, 1).unwrap();
    let b1: Vec<String> = edited
        .cells()
        .iter()
        .filter(|c| c.batch == 1)
        .map(|c| edited.cell_name(c))
        .collect();
    assert_eq!(out.skipped, b1, "{out:?}");
    assert!(out.ran.is_empty(), "{out:?}");
    assert_eq!(out.failed.len(), 4, "{out:?}");
    for (cell, err) in &out.failed {
        assert!(cell.contains("/b2/"), "{cell}");
        assert!(err.contains("trained under another config"), "{err}");
    }
}

/// Copies the folder `from` into `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

#[test]
fn every_shipped_comparison_resolves_a_valid_config_for_each_cell() {
    use wsbcn_experiments::cell_run::cell_config;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut names = vec![];
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().path();
        if file.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let cmp = load(&file);
        for cell in cmp.cells() {
            let cfg = cell_config(&cmp, &file, &cell)
                .unwrap_or_else(|e| panic!("{}: {}: {e}", file.display(), cmp.cell_name(&cell)));
            let (norm, train) = (cfg.norm(), cfg.train());
            assert_eq!(norm.spec, cmp.variants[cell.variant].norm);
            assert_eq!(train.data.batch_size, cell.batch);
            assert_eq!(train.seed, cell.seed);
        }
        names.push(cmp.name);
    }
    names.sort();
    assert_eq!(
        names,
        [
            "batch_sweep",
            "moving_speed_study",
            "paper_ssv2",
            "paper_voc",
            "quick"
        ]
    );
}

/// A comparison written for 8 data-parallel ranks (its batches are per
/// rank) refuses to run in one process, before any training, and says how
/// to launch it.
#[test]
fn a_comparison_for_several_ranks_refuses_another_number() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let file = dir.join("paper_voc.toml");
    let cmp = load(&file);
    assert_eq!(cmp.ranks, Some(8));
    let err = run_comparison(&cmp, &file, 1, 1).unwrap_err().to_string();
    assert!(
        err.contains("written for 8 data-parallel ranks") && err.contains("mpirun -np 8"),
        "{err}"
    );
}

#[test]
fn the_report_counts_only_the_seeds_the_comparison_takes() {
    // A run of a seed the comparison does not take (left by a longer seed
    // list) sits in the output folder: the report must not count it.
    let whole = grid();
    let dir = whole.parent().unwrap();
    let file = toy_comparison(dir, "extra_seed");
    let out_dir = dir.join("extra_seed");
    copy_dir(whole, &out_dir);
    let cell = out_dir.join("segmentation/gn-ws/b1");
    copy_dir(&cell.join("s0"), &cell.join("s7"));
    let cmp = load(&file);
    let out = run_comparison(&cmp, &file, 1, 1).unwrap();
    assert_eq!((out.ran.len(), out.failed.len()), (0, 0), "{out:?}");
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    let row = report
        .lines()
        .find(|l| l.starts_with("| segmentation | GN+WS | 1 |"))
        .unwrap_or_else(|| panic!("no GN+WS batch-1 row in\n{report}"));
    assert!(row.contains("(n = 1, no interval)"), "{row}");
    // The report ends with the comparison it was made for, not the one in
    // the copied runs' logs.
    let resolved = wsbcn_train::to_toml(&cmp).unwrap();
    assert!(
        report.contains(&resolved) && resolved.contains("extra_seed"),
        "{report}"
    );
}
