//! The thin OS layer: reads rlimits, capabilities and sysctls into a `HostLimits`, raises the soft
//! RLIMIT_NOFILE, probes whether hard limits can go higher, and reads/writes single sysctls.
//! Makes no judgement (advice.rs does) and never lowers a limit below what it found.

use std::io;

use crate::error::TuningError;
use crate::host::{
    Conntrack, HardLimitRaise, HostLimits, PortSet, RLIMIT_UNLIMITED, ResourceLimit, parse_capabilities,
    parse_mem_total_bytes, parse_port_range, parse_triple, parse_u64,
};

/// The sysctl that exists only on kernels built with CONFIG_SCHED_AUTOGROUP.
pub const SCHED_AUTOGROUP_KEY: &str = "kernel.sched_autogroup_enabled";

/// The sysctl that exists only while nf_conntrack is loaded.
pub const CONNTRACK_MAX_KEY: &str = "net.netfilter.nf_conntrack_max";

/// The resources this crate reads and probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// RLIMIT_NOFILE: open file descriptors.
    Nofile,
    /// RLIMIT_MEMLOCK: locked memory, in bytes.
    Memlock,
}

impl Resource {
    fn name(self) -> &'static str {
        match self {
            Resource::Nofile => "RLIMIT_NOFILE",
            Resource::Memlock => "RLIMIT_MEMLOCK",
        }
    }

    fn id(self) -> libc::__rlimit_resource_t {
        match self {
            Resource::Nofile => libc::RLIMIT_NOFILE,
            Resource::Memlock => libc::RLIMIT_MEMLOCK,
        }
    }
}

/// getrlimit(2) for `resource`.
pub fn get_rlimit(resource: Resource) -> Result<ResourceLimit, TuningError> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    let rc = unsafe { libc::getrlimit(resource.id(), &mut limit) };
    if rc != 0 {
        return Err(TuningError::Rlimit {
            call: "getrlimit",
            resource: resource.name(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(ResourceLimit { soft: limit.rlim_cur, hard: limit.rlim_max })
}

fn set_rlimit(resource: Resource, limit: ResourceLimit) -> Result<(), io::Error> {
    let raw = libc::rlimit { rlim_cur: limit.soft, rlim_max: limit.hard };
    // SAFETY: `raw` is a valid rlimit; setrlimit only reads it.
    let rc = unsafe { libc::setrlimit(resource.id(), &raw) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit and returns the new soft limit (the
/// number of file descriptors the process may now open). Never lowers anything. The engine and the
/// load generator call this first thing at start.
pub fn raise_nofile_soft_limit() -> Result<u64, TuningError> {
    let before = get_rlimit(Resource::Nofile)?;
    if before.soft >= before.hard {
        return Ok(before.soft);
    }
    set_rlimit(Resource::Nofile, ResourceLimit { soft: before.hard, hard: before.hard })
        .map_err(|source| TuningError::Rlimit { call: "setrlimit", resource: "RLIMIT_NOFILE", source })?;
    let after = get_rlimit(Resource::Nofile)?;
    assert_eq!(after.hard, before.hard, "raising the soft limit must not move the hard limit");
    assert!(after.soft >= before.soft, "the soft limit must not go down");
    Ok(after.soft)
}

/// Finds out whether the hard limit of `resource` can go higher by asking for one more, then puts the
/// original hard limit back. The soft limit is left as found. A refusal (EPERM without CAP_SYS_RESOURCE,
/// or EPERM past fs.nr_open) is a result, not an error.
///
/// Changes this process's limits for an instant, so only diagnostic tools should call it.
pub fn probe_hard_limit_raise(resource: Resource) -> Result<HardLimitRaise, TuningError> {
    let before = get_rlimit(resource)?;
    if before.hard == RLIMIT_UNLIMITED {
        return Ok(HardLimitRaise::AlreadyUnlimited);
    }
    let higher = ResourceLimit { soft: before.soft, hard: before.hard + 1 };
    match set_rlimit(resource, higher) {
        Ok(()) => {
            set_rlimit(resource, before).map_err(|source| TuningError::Rlimit {
                call: "setrlimit",
                resource: resource.name(),
                source,
            })?;
            let after = get_rlimit(resource)?;
            assert_eq!(after, before, "the probe must leave the limits as it found them");
            Ok(HardLimitRaise::Possible)
        }
        Err(error) => match error.raw_os_error() {
            Some(errno @ (libc::EPERM | libc::EINVAL)) => Ok(HardLimitRaise::Refused { errno }),
            _ => Err(TuningError::Rlimit { call: "setrlimit", resource: resource.name(), source: error }),
        },
    }
}

/// The /proc/sys path of a dotted sysctl name.
pub fn sysctl_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

/// Reads a sysctl as trimmed text; `Ok(None)` when it does not exist on this kernel.
pub fn read_sysctl(key: &str) -> Result<Option<String>, TuningError> {
    match std::fs::read_to_string(sysctl_path(key)) {
        Ok(text) => Ok(Some(text.trim().to_string())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TuningError::SysctlRead { key: key.to_string(), source }),
    }
}

/// Reads a sysctl that must exist.
pub fn read_sysctl_required(key: &str) -> Result<String, TuningError> {
    read_sysctl(key)?.ok_or_else(|| TuningError::SysctlMissing { key: key.to_string(), path: key.replace('.', "/") })
}

/// Writes a sysctl and reads it back; fails if the kernel shows another value (compared with
/// whitespace normalised, since the kernel prints tabs where we write spaces).
pub fn write_sysctl(key: &str, value: &str) -> Result<(), TuningError> {
    std::fs::write(sysctl_path(key), value).map_err(|source| TuningError::SysctlWrite {
        key: key.to_string(),
        value: value.to_string(),
        source,
    })?;
    let actual = read_sysctl_required(key)?;
    if crate::profile::normalize(&actual) != crate::profile::normalize(value) {
        return Err(TuningError::SysctlNotApplied { key: key.to_string(), written: value.to_string(), actual });
    }
    Ok(())
}

/// The effective uid of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// kernel.sched_autogroup_enabled: whether the scheduler groups tasks per session; `None` when the kernel has
/// no autogroup. The load generator reads it too, to say so in its report.
pub fn read_sched_autogroup() -> Result<Option<bool>, TuningError> {
    match read_sysctl(SCHED_AUTOGROUP_KEY)? {
        None => Ok(None),
        Some(text) => Ok(Some(parse_u64(SCHED_AUTOGROUP_KEY, &text)? != 0)),
    }
}

impl HostLimits {
    /// Reads every limit from the kernel without changing anything. The `*_hard_raise` fields are
    /// `Unknown`; use [`HostLimits::read_and_probe`] to find them out.
    pub fn read() -> Result<HostLimits, TuningError> {
        let u64_sysctl = |key: &str| read_sysctl_required(key).and_then(|text| parse_u64(key, &text));
        let triple_sysctl = |key: &str| read_sysctl_required(key).and_then(|text| parse_triple(key, &text));
        let range_key = "net.ipv4.ip_local_port_range";
        let reserved_key = "net.ipv4.ip_local_reserved_ports";
        let conntrack = match read_sysctl(CONNTRACK_MAX_KEY)? {
            None => Conntrack::NotLoaded,
            Some(text) => Conntrack::Loaded { max: parse_u64(CONNTRACK_MAX_KEY, &text)? },
        };
        let sched_autogroup = read_sched_autogroup()?;
        let status = std::fs::read_to_string("/proc/self/status")
            .map_err(|source| TuningError::SysctlRead { key: "/proc/self/status".to_string(), source })?;
        let meminfo = std::fs::read_to_string("/proc/meminfo")
            .map_err(|source| TuningError::SysctlRead { key: "/proc/meminfo".to_string(), source })?;
        // SAFETY: sysconf has no preconditions.
        let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let cpu_count = std::thread::available_parallelism().map(|n| n.get() as u64).unwrap_or(1);
        Ok(HostLimits {
            nofile: get_rlimit(Resource::Nofile)?,
            nofile_hard_raise: HardLimitRaise::Unknown,
            memlock_bytes: get_rlimit(Resource::Memlock)?,
            memlock_hard_raise: HardLimitRaise::Unknown,
            capabilities: parse_capabilities(&status)?,
            nr_open: u64_sysctl("fs.nr_open")?,
            file_max: u64_sysctl("fs.file-max")?,
            local_port_range: parse_port_range(range_key, &read_sysctl_required(range_key)?)?,
            local_reserved_ports: PortSet::parse(&read_sysctl_required(reserved_key)?)?,
            somaxconn: u64_sysctl("net.core.somaxconn")?,
            tcp_max_syn_backlog: u64_sysctl("net.ipv4.tcp_max_syn_backlog")?,
            tcp_mem_pages: triple_sysctl("net.ipv4.tcp_mem")?,
            tcp_rmem_bytes: triple_sysctl("net.ipv4.tcp_rmem")?,
            tcp_wmem_bytes: triple_sysctl("net.ipv4.tcp_wmem")?,
            netdev_max_backlog: u64_sysctl("net.core.netdev_max_backlog")?,
            conntrack,
            sched_autogroup,
            page_size_bytes: u64::try_from(page_size).ok().filter(|&p| p > 0).unwrap_or(4096),
            mem_total_bytes: parse_mem_total_bytes(&meminfo)?,
            cpu_count,
        })
    }

    /// Raises the soft RLIMIT_NOFILE to the hard limit, probes whether the hard limits of RLIMIT_NOFILE
    /// and RLIMIT_MEMLOCK can go higher (putting them back), then reads everything. For `check`.
    pub fn read_and_probe() -> Result<HostLimits, TuningError> {
        raise_nofile_soft_limit()?;
        let nofile_hard_raise = probe_hard_limit_raise(Resource::Nofile)?;
        let memlock_hard_raise = probe_hard_limit_raise(Resource::Memlock)?;
        let mut limits = HostLimits::read()?;
        limits.nofile_hard_raise = nofile_hard_raise;
        limits.memlock_hard_raise = memlock_hard_raise;
        Ok(limits)
    }
}
