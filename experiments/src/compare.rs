//! Running a whole comparison: build missing data, train every cell whose
//! run has not finished under its current config (a killed comparison
//! resumes each cell from its newest checkpoint; a run of another config
//! stops with an error), `jobs` cells at a time, then write the figures and
//! the report into the output folder.

use crate::cell_run::{finished_as_configured, log_path, run_cell};
use crate::comparison::Comparison;
use crate::records::Runs;
use crate::{figures, report, Error, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// What a comparison run did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Cells trained (or resumed) by this call.
    pub ran: Vec<String>,
    /// Cells found finished and skipped.
    pub skipped: Vec<String>,
    /// Cells that failed, with the error.
    pub failed: Vec<(String, String)>,
    /// Figures and report written.
    pub written: Vec<PathBuf>,
}

/// Runs the comparison read from `file` (see the module docs); each of the
/// `jobs` job threads computes on its own pool of `threads` threads
/// ([`wsbcn_kernels::threads`]).
pub fn run_comparison(
    cmp: &Comparison,
    file: &Path,
    jobs: usize,
    threads: usize,
) -> Result<Outcome> {
    // Fail before hours of training, not after.
    wsbcn_plot::font()?;
    let world = wsbcn_dist::world();
    if let Some(ranks) = cmp.ranks.filter(|r| *r != world.size()) {
        return Err(Error::Runs(format!(
            "{} is written for {ranks} data-parallel ranks (its batch sizes are per rank), this \
             job has {}: launch it with `mpirun -np {ranks}` (or srun --ntasks {ranks})",
            file.display(),
            world.size()
        )));
    }
    if cmp.budget.is_some() && world.size() > 1 {
        return Err(Error::Runs(format!(
            "{}: an equal-sample budget scales steps, learning rate and BN momentum by each \
             process's batch, not by {} ranks' batches: run it without a launcher",
            file.display(),
            world.size()
        )));
    }
    if world.is_main() {
        for task in &cmp.tasks {
            if let Some(kind) = task.data {
                crate::data::ensure(kind, &|m| eprintln!("wsbcn-compare: {m}"))?;
            }
        }
    }
    // The other ranks wait here for rank 0's data (an error there ends the
    // job before they would).
    world.barrier();
    let cells = cmp.cells();
    let out = Mutex::new(Outcome::default());
    let todo: Vec<_> = cells
        .iter()
        .filter(|c| {
            let done = finished_as_configured(cmp, file, c);
            if done {
                lock(&out).skipped.push(cmp.cell_name(c));
            }
            !done
        })
        .collect();
    let next = AtomicUsize::new(0);
    let total = todo.len();
    // Every job's pool starts before any cell does, so that a failure stops
    // the comparison instead of leaving cells untried.
    let pools = (0..jobs.max(1).min(total.max(1)))
        .map(|_| wsbcn_kernels::compute_pool(threads))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Train(wsbcn_nn::Error::from(e).into()))?;
    std::thread::scope(|s| {
        for pool in &pools {
            s.spawn(|| {
                pool.install(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(cell) = todo.get(i) else { break };
                    let name = cmp.cell_name(cell);
                    eprintln!("wsbcn-compare: cell {}/{total}: {name}", i + 1);
                    match run_cell(cmp, file, cell, jobs) {
                        Ok(()) => lock(&out).ran.push(name),
                        // The other ranks would wait in this cell's
                        // collectives: the error ends the job.
                        Err(e) if world.size() > 1 => world.abort_with(&format!(
                            "wsbcn-compare: rank {} of {}: cell {name} failed: {e}",
                            world.rank(),
                            world.size()
                        )),
                        Err(e) => {
                            eprintln!("wsbcn-compare: cell {name} failed: {e}");
                            lock(&out).failed.push((name, e.to_string()));
                        }
                    }
                })
            });
        }
    });
    let mut out = out
        .into_inner()
        .map_err(|_| Error::Runs("a cell panicked".into()))?;
    if !world.is_main() {
        return Ok(out);
    }
    let dir = cmp.out_dir();
    // The configured cells' logs only: the folder may also hold runs of
    // seeds the comparison no longer takes (a lowered `seeds_per_cell`,
    // another seed list), which would change a cell's n.
    let logs: Vec<PathBuf> = cells
        .iter()
        .map(|c| log_path(&cmp.cell_dir(c)))
        .filter(|p| p.is_file())
        .collect();
    let read = match logs.is_empty() {
        true => Err(Error::Runs(format!(
            "no run logs of this comparison's cells under {}",
            dir.display()
        ))),
        false => Runs::read(&logs),
    };
    let runs = match read {
        Ok(runs) => runs,
        Err(e) if !out.failed.is_empty() => {
            let cells: Vec<String> = out
                .failed
                .iter()
                .map(|(c, e)| format!("{c}: {e}"))
                .collect();
            return Err(Error::Runs(format!(
                "{e}; failed cells: {}",
                cells.join("; ")
            )));
        }
        Err(e) => return Err(e),
    };
    let resolved = wsbcn_train::to_toml(cmp)?;
    out.written = write_all(&runs, &dir, Some(&resolved))?;
    Ok(out)
}

fn lock(m: &Mutex<Outcome>) -> std::sync::MutexGuard<'_, Outcome> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes every figure and the report of `runs` into `dir`, the report
/// ending with the resolved `comparison` (see [`report::write_report`]).
pub fn write_all(runs: &Runs, dir: &Path, comparison: Option<&str>) -> Result<Vec<PathBuf>> {
    let mut written = figures::write_figures(runs, dir)?;
    written.extend(report::write_report(runs, dir, comparison)?);
    Ok(written)
}
