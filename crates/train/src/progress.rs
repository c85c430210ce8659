//! Training progress: a bar with step, ETA, loss, learning rate and
//! samples/s on a terminal; one plain line per interval otherwise (CI,
//! redirected logs).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

/// Progress reporting of one run.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    first: u64,
    interval: u64,
    start: Instant,
}

fn eta(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

impl Progress {
    /// Reports steps `first..total`; plain lines every `interval` steps
    /// when stderr is not a terminal (or `plain` is set).
    pub fn new(first: u64, total: u64, interval: u64, plain: bool) -> Self {
        let bar = (!plain && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{bar:30} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_position(first);
            bar
        });
        Self {
            bar,
            total,
            first,
            interval: interval.max(1),
            start: Instant::now(),
        }
    }

    /// Reports nothing (the ranks of a data-parallel job other than rank 0).
    pub fn hidden() -> Self {
        Self {
            bar: Some(ProgressBar::hidden()),
            total: 0,
            first: 0,
            interval: 1,
            start: Instant::now(),
        }
    }

    /// Reports that `step` steps are done.
    pub fn update(&self, step: u64, loss: f64, lr: f64, samples_per_s: f64) {
        let msg = format!("loss {loss:.4} lr {lr:.3e} {samples_per_s:.1} samples/s");
        match &self.bar {
            Some(bar) => {
                bar.set_position(step);
                bar.set_message(msg);
            }
            None if step.is_multiple_of(self.interval) || step == self.total => {
                let done = (step - self.first) as f64;
                let per_step = self.start.elapsed().as_secs_f64() / done.max(1.0);
                eprintln!(
                    "step {step}/{} ({:.0}%) {msg} eta {}",
                    self.total,
                    100.0 * step as f64 / self.total.max(1) as f64,
                    eta(per_step * (self.total - step) as f64)
                );
            }
            None => {}
        }
    }

    /// Prints a line without breaking the bar.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Ends the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}
