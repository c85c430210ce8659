//! Which launcher, if any, started this process.

/// A launcher found in the environment, and the job size it announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    /// `mpirun` (Open MPI), `mpiexec` (a PMI launcher: MPICH's Hydra, or
    /// Slurm's PMI-2) or `srun` (Slurm).
    pub launcher: &'static str,
    /// Ranks in the job.
    pub size: usize,
}

/// The variables each launcher sets, with the job size: Open MPI's
/// `mpirun`, PMI launchers (MPICH's Hydra, `srun --mpi=pmi2`), and Slurm's
/// step size (`srun`, whatever its PMI plugin).
const SIZE_VARS: [(&str, &str); 3] = [
    ("OMPI_COMM_WORLD_SIZE", "mpirun"),
    ("PMI_SIZE", "mpiexec"),
    ("SLURM_STEP_NUM_TASKS", "srun"),
];

impl Launch {
    /// The launcher of this process, from its environment.
    pub fn from_env() -> Option<Self> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// The launcher that the variables `var` returns describe: the first of
    /// `OMPI_COMM_WORLD_SIZE`, `PMI_SIZE` and `SLURM_STEP_NUM_TASKS` that is
    /// set to a number.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<Self> {
        SIZE_VARS.iter().find_map(|(name, launcher)| {
            let size = var(name)?.trim().parse().ok()?;
            Some(Self { launcher, size })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_launcher_is_found_by_its_size_variable() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(Launch::from_vars(env(&[])), None);
        assert_eq!(
            Launch::from_vars(env(&[("OMPI_COMM_WORLD_SIZE", "4")])),
            Some(Launch {
                launcher: "mpirun",
                size: 4
            })
        );
        assert_eq!(
            Launch::from_vars(env(&[("SLURM_STEP_NUM_TASKS", "8"), ("PMI_SIZE", "8")])),
            Some(Launch {
                launcher: "mpiexec",
                size: 8
            })
        );
        assert_eq!(
            Launch::from_vars(env(&[("SLURM_STEP_NUM_TASKS", "2")])),
            Some(Launch {
                launcher: "srun",
                size: 2
            })
        );
        assert_eq!(Launch::from_vars(env(&[("PMI_SIZE", "x")])), None);
    }
}
