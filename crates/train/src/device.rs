//! Which device a run uses: the `device` key of a config and the `--device`
//! flag of the task binaries.
//!
//! `cpu` (the default), `cuda` (GPU 0) or `cuda:N`. CUDA needs a build with
//! the `cuda` feature (`cargo build --release --features cuda`); without it,
//! asking for CUDA is an error that names the feature.

use crate::{Error, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A device name (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    /// The CPU.
    #[default]
    Cpu,
    /// CUDA GPU `N` (`cuda` is GPU 0).
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::Device(format!(
                "`{s}` is not a device: expected cpu, cuda or cuda:N"
            ))
        };
        match s.trim() {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => match other.strip_prefix("cuda:") {
                Some(n) => n.parse().map(Self::Cuda).map_err(|_| bad()),
                None => Err(bad()),
            },
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> Self {
        d.to_string()
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceSpec {
    /// The candle device: an error naming the `cuda` feature when this
    /// build lacks it, or candle's error when the GPU cannot be opened.
    pub fn device(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(n) if cfg!(feature = "cuda") => Device::new_cuda(n)
                .map_err(|e| Error::Device(format!("{self}: cannot open it: {e}"))),
            Self::Cuda(_) => Err(Error::Device(format!(
                "{self}: this build has no CUDA support; rebuild with `--features cuda`"
            ))),
        }
    }
}
