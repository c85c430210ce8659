//! `wsbcn-figures`: rebuilds every figure and the report of a comparison
//! from its HDF5 run logs alone.
//!
//! ```text
//! wsbcn-figures [--out DIR] RUN_DIR...
//! ```
//!
//! Each `RUN_DIR` is searched for `run.h5` files; the output goes to
//! `--out` (default: the first `RUN_DIR`).

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use wsbcn_experiments::compare::write_all;
use wsbcn_experiments::records::Runs;

#[derive(Parser)]
#[command(
    name = "wsbcn-figures",
    about = "Figures and report of a comparison, from its run logs"
)]
struct Cli {
    /// Output folder (default: the first run folder).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Folders holding run logs (`run.h5`), searched recursively.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = cli.out.clone().unwrap_or_else(|| cli.runs[0].clone());
    match Runs::read(&cli.runs).and_then(|runs| write_all(&runs, &out, None)) {
        Ok(written) => {
            for path in written {
                println!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wsbcn-figures: {e}");
            ExitCode::FAILURE
        }
    }
}
