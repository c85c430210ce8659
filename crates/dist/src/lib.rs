//! The process group of a data-parallel job: one process, or the ranks of
//! an MPI job.
//!
//! A binary calls [`init`] once at start, on its main thread, and keeps
//! the returned [`Session`] until it ends (dropping it finalizes MPI). From
//! then on [`world`] is the job's [`World`]: its rank, its size, and the
//! collectives the engine needs (sum all-reduce and broadcast of `f32`,
//! `f64` and `u64` slices, and a barrier). Without a launcher, or before [`init`], the
//! world is a single rank and every collective is the identity, so
//! single-process code needs no special case.
//!
//! Under a launcher (`mpirun`, `mpiexec` or Slurm's `srun`, found from
//! the environment variables they set: [`Launch::from_env`]) a build with
//! the `mpi` feature joins the MPI job through rsmpi; a build without it
//! refuses to start as one of several ranks and names the feature.
//!
//! An MPI error aborts the whole job (MPI's default error handler), and
//! [`World::abort`] ends every rank, so a failing rank never leaves the
//! others waiting in a collective.

mod error;
mod launch;
#[cfg(feature = "mpi")]
mod mpi_ranks;
mod world;

pub use error::{Error, Result};
pub use launch::Launch;
pub use world::{init, world, Element, Session, World};
