//! The ranks of an MPI job, through rsmpi.

use crate::world::Element;
use crate::{Error, Result};
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Root};
use mpi::Threading;
use std::sync::Mutex;

/// The largest count one MPI call carries: MPI counts are `int`.
const MAX_COUNT: usize = 1 << 28;

/// MPI's world communicator. MPI is initialized at the `Serialized`
/// thread level (the training loop runs on a pool thread, not the one that
/// initialized MPI) and every call holds the lock, so no two threads are
/// ever in MPI at once.
pub struct MpiRanks {
    universe: Mutex<Option<Universe>>,
    rank: usize,
    size: usize,
}

impl MpiRanks {
    /// Initializes MPI.
    pub fn init() -> Result<Self> {
        let (universe, level) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| Error::Init("MPI was already initialized".into()))?;
        if level < Threading::Serialized {
            return Err(Error::Init(format!(
                "the MPI library offers thread level {level:?}, wsbcn needs Serialized"
            )));
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        Ok(Self {
            universe: Mutex::new(Some(universe)),
            rank,
            size,
        })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs `f` on the world communicator, holding the lock.
    fn with<R>(&self, f: impl FnOnce(&SimpleCommunicator) -> R) -> R {
        let guard = self.universe.lock().unwrap_or_else(|p| p.into_inner());
        let universe = guard
            .as_ref()
            .unwrap_or_else(|| panic!("wsbcn-dist: a collective after MPI was finalized"));
        f(&universe.world())
    }

    pub fn all_reduce_sum<T: Element>(&self, buf: &mut [T]) {
        self.with(|comm| {
            for chunk in buf.chunks_mut(MAX_COUNT) {
                let send = chunk.to_vec();
                comm.all_reduce_into(&send[..], chunk, SystemOperation::sum());
            }
        })
    }

    pub fn broadcast<T: Element>(&self, buf: &mut [T], root: usize) {
        self.with(|comm| {
            let root = comm.process_at_rank(root as i32);
            for chunk in buf.chunks_mut(MAX_COUNT) {
                root.broadcast_into(chunk);
            }
        })
    }

    pub fn barrier(&self) {
        self.with(|comm| comm.barrier())
    }

    pub fn abort(&self, code: i32) -> ! {
        // Not through `with`: a rank may abort while another thread holds
        // the lock, and MPI_Abort is allowed from any thread.
        mpi::topology::SimpleCommunicator::world().abort(code)
    }

    /// Finalizes MPI (drops the universe).
    pub fn finalize(&self) {
        let mut guard = self.universe.lock().unwrap_or_else(|p| p.into_inner());
        guard.take();
    }
}
