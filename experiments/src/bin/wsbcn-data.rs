//! Data-set generators and caches of the suite.
//!
//! `wsbcn-data fashion-voc --out DIR` writes Fashion-VOC (segmentation, in
//! the VOCdevkit layout) from Debian's Fashion-MNIST files.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use wsbcn_seg::fashion_voc::{generate, FashionVocConfig};
use wsbcn_train::fashion_mnist::DEBIAN_DIR;

#[derive(Parser)]
#[command(name = "wsbcn-data", about = "Data-set generators of the wsbcn suite")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fashion-VOC: garments on textured backgrounds, VOCdevkit layout.
    FashionVoc {
        /// Output folder (VOCdevkit/ is created inside).
        #[arg(long)]
        out: PathBuf,
        /// Folder of the Fashion-MNIST IDX files.
        #[arg(long, default_value = DEBIAN_DIR)]
        mnist: PathBuf,
        /// Image side in pixels.
        #[arg(long, default_value_t = 96)]
        size: u32,
        /// Training images.
        #[arg(long, default_value_t = 1500)]
        train: usize,
        /// Validation images.
        #[arg(long, default_value_t = 200)]
        val: usize,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::FashionVoc {
            out,
            mnist,
            size,
            train,
            val,
            seed,
        } => {
            let cfg = FashionVocConfig {
                size,
                train,
                val,
                seed,
                ..FashionVocConfig::default()
            };
            generate(&mnist, &out, &cfg).map(|root| {
                println!(
                    "wrote Fashion-VOC ({train} train, {val} val, {size}x{size}) to {}",
                    root.display()
                )
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsbcn-data: {e}");
            ExitCode::FAILURE
        }
    }
}
