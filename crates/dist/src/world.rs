//! The job's ranks and their collectives.

use crate::launch::Launch;
use crate::{Error, Result};
use std::sync::OnceLock;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for u64 {}
}

/// An element type the collectives carry: `f32`, `f64` or `u64`.
#[cfg(feature = "mpi")]
pub trait Element: Copy + sealed::Sealed + mpi::datatype::Equivalence {}
/// An element type the collectives carry: `f32`, `f64` or `u64`.
#[cfg(not(feature = "mpi"))]
pub trait Element: Copy + sealed::Sealed {}

impl Element for f32 {}
impl Element for f64 {}
impl Element for u64 {}

/// The ranks of this job.
pub enum World {
    /// One process: every collective is the identity.
    Single,
    /// The ranks of an MPI job.
    #[cfg(feature = "mpi")]
    Mpi(crate::mpi_ranks::MpiRanks),
}

impl World {
    /// This process's rank, `0..size`.
    pub fn rank(&self) -> usize {
        match self {
            Self::Single => 0,
            #[cfg(feature = "mpi")]
            Self::Mpi(m) => m.rank(),
        }
    }

    /// The number of ranks.
    pub fn size(&self) -> usize {
        match self {
            Self::Single => 1,
            #[cfg(feature = "mpi")]
            Self::Mpi(m) => m.size(),
        }
    }

    /// Rank 0, the one that writes run logs, checkpoints and figures.
    pub fn is_main(&self) -> bool {
        self.rank() == 0
    }

    /// `buf <- sum over ranks of buf`, elementwise, on every rank.
    #[cfg_attr(not(feature = "mpi"), allow(unused_variables))]
    pub fn all_reduce_sum<T: Element>(&self, buf: &mut [T]) {
        match self {
            Self::Single => {}
            #[cfg(feature = "mpi")]
            Self::Mpi(m) => m.all_reduce_sum(buf),
        }
    }

    /// `buf <- buf of rank root`, on every rank.
    #[cfg_attr(not(feature = "mpi"), allow(unused_variables))]
    pub fn broadcast<T: Element>(&self, buf: &mut [T], root: usize) {
        match self {
            Self::Single => {}
            #[cfg(feature = "mpi")]
            Self::Mpi(m) => m.broadcast(buf, root),
        }
    }

    /// Returns once every rank has called it.
    pub fn barrier(&self) {
        match self {
            Self::Single => {}
            #[cfg(feature = "mpi")]
            Self::Mpi(m) => m.barrier(),
        }
    }

    /// Whether every rank holds the same `value` (rank 0's is broadcast and
    /// each rank's agreement summed), on every rank.
    pub fn all_agree(&self, value: u64) -> bool {
        let mut root = [value];
        self.broadcast(&mut root, 0);
        let mut agree = [u64::from(root[0] == value)];
        self.all_reduce_sum(&mut agree);
        agree[0] == self.size() as u64
    }

    /// Prints `message` to stderr, then ends the whole job with status 1
    /// ([`Self::abort`]).
    pub fn abort_with(&self, message: &str) -> ! {
        eprintln!("{message}");
        self.abort(1)
    }

    /// Ends the whole job with exit status `code`: every rank, not only
    /// this one (`MPI_Abort`); in one process, this process.
    pub fn abort(&self, code: i32) -> ! {
        match self {
            Self::Single => std::process::exit(code),
            #[cfg(feature = "mpi")]
            Self::Mpi(m) => m.abort(code),
        }
    }
}

static WORLD: OnceLock<World> = OnceLock::new();
static SINGLE: World = World::Single;

/// The job's world: the one [`init`] set up, else a single rank.
pub fn world() -> &'static World {
    WORLD.get().unwrap_or(&SINGLE)
}

/// Holds the process group; dropping it finalizes MPI (on the thread that
/// called [`init`], as MPI asks).
pub struct Session(());

impl Drop for Session {
    fn drop(&mut self) {
        match world() {
            World::Single => {}
            #[cfg(feature = "mpi")]
            World::Mpi(m) => m.finalize(),
        }
    }
}

/// Joins the job this process was launched into ([`Launch::from_env`]):
/// MPI under a launcher when built with the `mpi` feature, else a single
/// rank. A build without the feature started as one of several ranks is
/// an error that names the feature. Call once, on the main thread.
pub fn init() -> Result<Session> {
    let world = match Launch::from_env() {
        None => World::Single,
        #[cfg(feature = "mpi")]
        Some(_) => World::Mpi(crate::mpi_ranks::MpiRanks::init()?),
        #[cfg(not(feature = "mpi"))]
        Some(Launch { size: 1, .. }) => World::Single,
        #[cfg(not(feature = "mpi"))]
        Some(Launch { launcher, size }) => return Err(Error::NoMpi { launcher, size }),
    };
    WORLD.set(world).map_err(|_| Error::AlreadyInitialized)?;
    Ok(Session(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_rank_collective_is_the_identity() {
        let w = World::Single;
        assert_eq!((w.rank(), w.size(), w.is_main()), (0, 1, true));
        let mut v = [1.5f32, -2.0];
        w.all_reduce_sum(&mut v);
        assert_eq!(v, [1.5, -2.0]);
        let mut u = [7u64];
        w.broadcast(&mut u, 0);
        assert_eq!(u, [7]);
        assert!(w.all_agree(3));
    }
}
