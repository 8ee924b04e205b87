//! ringline-tuning: what a host must provide for N connections, and the tools to get there.
//!
//! Owns the reading of rlimits and sysctls (`os`), CPU affinity (`cpus`), the pure judgement over a plain
//! [`HostLimits`] (`advice`), named sysctl profiles (`profile`) and their text rendering (`report`). The engine and
//! the load generator call [`raise_nofile_soft_limit`] then [`HostLimits::read`] at start and log
//! [`HostLimits::capacity_plan`]; the `ringline-tune` binary adds `check` and `apply`.
//!
//! Does not start servers, open sockets or decide ringline's own limits (core/src/limits.rs does).
//! Invariant: nothing here lowers a limit; `apply` writes only when asked and reserves server ports
//! before widening the ephemeral range.

mod advice;
pub mod cpus;
mod error;
mod host;
pub mod limits;
mod os;
pub mod profile;
pub mod report;

pub use advice::{Advice, CapacityPlan, Status, Workload, bytes_text, default_server_ports, group};
pub use error::TuningError;
pub use host::{
    Capabilities, Conntrack, HardLimitRaise, HostLimits, PortRange, PortSet, RLIMIT_UNLIMITED, ResourceLimit, Triple,
};
pub use os::{
    Resource, SCHED_AUTOGROUP_KEY, effective_uid, get_rlimit, probe_hard_limit_raise, raise_nofile_soft_limit,
    read_sched_autogroup, read_sysctl, read_sysctl_required, sysctl_path, write_sysctl,
};
