//! The plain description of a host's limits (`HostLimits`) and pure parsers for the text /proc gives.
//! Owns no I/O: os.rs fills a `HostLimits` from the kernel, tests build one by hand.
//! Invariant: every value is what the kernel reported, unchanged; judgement lives in advice.rs.

use std::fmt;

use crate::error::TuningError;
use crate::limits::PORT_LIST_ENTRIES_MAX;

/// The kernel's value for "no limit" in an rlimit (RLIM_INFINITY on 64-bit Linux).
pub const RLIMIT_UNLIMITED: u64 = u64::MAX;

/// One resource limit as getrlimit reports it; [`RLIMIT_UNLIMITED`] means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceLimit {
    /// The limit in force, which the process may raise up to `hard`.
    pub soft: u64,
    /// The ceiling; raising it needs CAP_SYS_RESOURCE.
    pub hard: u64,
}

/// Whether this process could raise a hard limit, found by trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HardLimitRaise {
    /// Not probed (`HostLimits::read` does not probe; `read_and_probe` does).
    Unknown,
    /// setrlimit accepted a higher hard limit (then it was put back).
    Possible,
    /// setrlimit refused a higher hard limit with this errno (EPERM: no CAP_SYS_RESOURCE).
    Refused {
        /// The errno setrlimit returned.
        errno: i32,
    },
    /// The hard limit is already unlimited.
    AlreadyUnlimited,
}

/// The capabilities that change what the limits mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// CAP_SYS_RESOURCE: may raise hard rlimits (up to fs.nr_open for RLIMIT_NOFILE).
    pub sys_resource: bool,
    /// CAP_IPC_LOCK: io_uring does not charge registered buffers to RLIMIT_MEMLOCK.
    pub ipc_lock: bool,
}

/// An inclusive port range such as net.ipv4.ip_local_port_range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// The first port.
    pub first: u16,
    /// The last port, inclusive; `first <= last`.
    pub last: u16,
}

impl PortRange {
    /// How many ports the range holds.
    pub fn port_count(&self) -> u64 {
        debug_assert!(self.first <= self.last);
        u64::from(self.last) - u64::from(self.first) + 1
    }

    /// Whether `port` lies in the range.
    pub fn contains(&self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.first, self.last)
    }
}

/// A set of ports in ip_local_reserved_ports syntax (`5222,7000-7100`), kept sorted and merged.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortSet {
    ranges: Vec<PortRange>,
}

impl PortSet {
    /// Parses `5222,5269,7000-7100`; an empty or blank string is the empty set (as the kernel prints it).
    pub fn parse(text: &str) -> Result<PortSet, TuningError> {
        let invalid = |reason: String| TuningError::InvalidPortList { text: text.to_string(), reason };
        let mut ranges = Vec::new();
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Ok(PortSet::default());
        }
        for entry in trimmed.split(',') {
            if ranges.len() >= PORT_LIST_ENTRIES_MAX {
                return Err(invalid(format!("more than {PORT_LIST_ENTRIES_MAX} entries")));
            }
            let entry = entry.trim();
            let parse_port =
                |s: &str| s.trim().parse::<u16>().map_err(|_| invalid(format!("{s:?} is not a port number (0-65535)")));
            let range = match entry.split_once('-') {
                Some((first, last)) => PortRange { first: parse_port(first)?, last: parse_port(last)? },
                None => {
                    let port = parse_port(entry)?;
                    PortRange { first: port, last: port }
                }
            };
            if range.first > range.last {
                return Err(invalid(format!("range {entry:?} ends before it starts")));
            }
            ranges.push(range);
        }
        Ok(PortSet::from_ranges(ranges))
    }

    fn from_ranges(mut ranges: Vec<PortRange>) -> PortSet {
        ranges.sort_by_key(|r| r.first);
        let mut merged: Vec<PortRange> = Vec::with_capacity(ranges.len());
        for range in ranges {
            match merged.last_mut() {
                Some(last) if u32::from(range.first) <= u32::from(last.last) + 1 => {
                    last.last = last.last.max(range.last);
                }
                _ => merged.push(range),
            }
        }
        PortSet { ranges: merged }
    }

    /// The union of two sets.
    pub fn union(&self, other: &PortSet) -> PortSet {
        PortSet::from_ranges(self.ranges.iter().chain(other.ranges.iter()).copied().collect())
    }

    /// Whether the set holds no port.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        self.ranges.iter().any(|r| r.contains(port))
    }

    /// Whether every port of `other` is in this set.
    pub fn contains_all(&self, other: &PortSet) -> bool {
        other.ranges.iter().all(|o| self.ranges.iter().any(|r| r.first <= o.first && o.last <= r.last))
    }

    /// The ports of this set that lie inside `range`, as a set.
    pub fn intersect(&self, range: PortRange) -> PortSet {
        let ranges = self
            .ranges
            .iter()
            .filter(|r| r.first <= range.last && range.first <= r.last)
            .map(|r| PortRange { first: r.first.max(range.first), last: r.last.min(range.last) })
            .collect();
        PortSet { ranges }
    }

    /// The ports of this set that are not in `other`.
    pub fn difference(&self, other: &PortSet) -> PortSet {
        let mut out = Vec::new();
        for r in &self.ranges {
            let mut start = u32::from(r.first);
            let end = u32::from(r.last);
            for o in other.ranges.iter().filter(|o| o.first <= r.last && r.first <= o.last) {
                if u32::from(o.first) > start {
                    out.push((start, u32::from(o.first) - 1));
                }
                start = start.max(u32::from(o.last) + 1);
            }
            if start <= end {
                out.push((start, end));
            }
        }
        let ranges = out
            .into_iter()
            .filter_map(|(a, b)| Some(PortRange { first: u16::try_from(a).ok()?, last: u16::try_from(b).ok()? }))
            .collect();
        PortSet { ranges }
    }

    /// How many ports the set holds.
    pub fn port_count(&self) -> u64 {
        self.ranges.iter().map(PortRange::port_count).sum()
    }
}

impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if r.first == r.last { write!(f, "{}", r.first)? } else { write!(f, "{}-{}", r.first, r.last)? }
        }
        Ok(())
    }
}

/// A three-value sysctl: tcp_mem (pages: low, pressure, high) or tcp_rmem/tcp_wmem (bytes: min, default, max).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Triple {
    /// tcp_mem: below this TCP does not regulate memory. tcp_[rw]mem: the per-socket floor under pressure.
    pub low: u64,
    /// tcp_mem: above this TCP trims buffers. tcp_[rw]mem: the initial buffer size.
    pub middle: u64,
    /// tcp_mem: the hard ceiling. tcp_[rw]mem: the most autotuning may grow a buffer to.
    pub high: u64,
}

impl fmt::Display for Triple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.low, self.middle, self.high)
    }
}

/// Whether nf_conntrack is loaded, and its table size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conntrack {
    /// No net.netfilter.nf_conntrack_max: the module is not loaded, connections are not tracked.
    NotLoaded,
    /// The module is loaded; every tracked connection takes an entry up to `max`.
    Loaded {
        /// net.netfilter.nf_conntrack_max.
        max: u64,
    },
}

/// Everything ringline's capacity depends on, as plain values. Built by `HostLimits::read` (os.rs) or by
/// hand in tests; judged by `HostLimits::advice` (advice.rs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLimits {
    /// RLIMIT_NOFILE of this process.
    pub nofile: ResourceLimit,
    /// Whether RLIMIT_NOFILE's hard limit can go higher.
    pub nofile_hard_raise: HardLimitRaise,
    /// RLIMIT_MEMLOCK of this process, in bytes.
    pub memlock_bytes: ResourceLimit,
    /// Whether RLIMIT_MEMLOCK's hard limit can go higher.
    pub memlock_hard_raise: HardLimitRaise,
    /// The effective capabilities that matter here.
    pub capabilities: Capabilities,
    /// fs.nr_open: the most file descriptors one process may have, whatever its rlimit.
    pub nr_open: u64,
    /// fs.file-max: the most open files on the whole host.
    pub file_max: u64,
    /// net.ipv4.ip_local_port_range: the ports connect(2) picks source ports from.
    pub local_port_range: PortRange,
    /// net.ipv4.ip_local_reserved_ports: ports connect(2) never picks.
    pub local_reserved_ports: PortSet,
    /// net.core.somaxconn: the cap on every listen backlog.
    pub somaxconn: u64,
    /// net.ipv4.tcp_max_syn_backlog: half-open connections per listener.
    pub tcp_max_syn_backlog: u64,
    /// net.ipv4.tcp_mem, in pages.
    pub tcp_mem_pages: Triple,
    /// net.ipv4.tcp_rmem, in bytes.
    pub tcp_rmem_bytes: Triple,
    /// net.ipv4.tcp_wmem, in bytes.
    pub tcp_wmem_bytes: Triple,
    /// net.core.netdev_max_backlog: per-CPU queue of received packets, loopback included.
    pub netdev_max_backlog: u64,
    /// nf_conntrack.
    pub conntrack: Conntrack,
    /// kernel.sched_autogroup_enabled; `None` when the kernel has no autogroup (no such sysctl).
    pub sched_autogroup: Option<bool>,
    /// The page size tcp_mem counts in.
    pub page_size_bytes: u64,
    /// MemTotal from /proc/meminfo.
    pub mem_total_bytes: u64,
    /// CPUs this process may run on (executors per process).
    pub cpu_count: u64,
}

/// Parses a single unsigned integer sysctl.
pub fn parse_u64(key: &str, text: &str) -> Result<u64, TuningError> {
    text.trim().parse::<u64>().map_err(|_| malformed(key, text, "an unsigned integer"))
}

/// Parses `32768\t60999` (ip_local_port_range).
pub fn parse_port_range(key: &str, text: &str) -> Result<PortRange, TuningError> {
    let mut fields = text.split_whitespace();
    let (Some(first), Some(last), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(malformed(key, text, "two ports"));
    };
    let first = first.parse::<u16>().map_err(|_| malformed(key, text, "two ports"))?;
    let last = last.parse::<u16>().map_err(|_| malformed(key, text, "two ports"))?;
    if first > last {
        return Err(malformed(key, text, "a range whose first port is not above its last"));
    }
    Ok(PortRange { first, last })
}

/// Parses `4096\t131072\t6291456` (tcp_mem, tcp_rmem, tcp_wmem).
pub fn parse_triple(key: &str, text: &str) -> Result<Triple, TuningError> {
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    match (fields.next(), fields.next(), fields.next(), fields.next()) {
        (Some(Ok(low)), Some(Ok(middle)), Some(Ok(high)), None) => Ok(Triple { low, middle, high }),
        _ => Err(malformed(key, text, "three unsigned integers")),
    }
}

/// Reads MemTotal (in bytes) out of /proc/meminfo text.
pub fn parse_mem_total_bytes(meminfo: &str) -> Result<u64, TuningError> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"));
    let kib = line
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| malformed("/proc/meminfo", meminfo.lines().next().unwrap_or(""), "a MemTotal line"))?;
    Ok(kib.saturating_mul(1024))
}

/// Reads the effective capabilities out of /proc/self/status text.
pub fn parse_capabilities(status: &str) -> Result<Capabilities, TuningError> {
    const CAP_IPC_LOCK: u32 = 14;
    const CAP_SYS_RESOURCE: u32 = 24;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(str::trim)
        .ok_or_else(|| malformed("/proc/self/status", "", "a CapEff line"))?;
    let bits = u64::from_str_radix(hex, 16).map_err(|_| malformed("/proc/self/status", hex, "a hex CapEff"))?;
    Ok(Capabilities { sys_resource: bits >> CAP_SYS_RESOURCE & 1 == 1, ipc_lock: bits >> CAP_IPC_LOCK & 1 == 1 })
}

fn malformed(key: &str, text: &str, expected: &'static str) -> TuningError {
    TuningError::SysctlMalformed { key: key.to_string(), value: text.trim().to_string(), expected }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_set_parses_merges_and_prints() {
        let set = PortSet::parse("7000-7100, 5222,5269,7050-7200,7201").expect("valid list");
        assert_eq!(set.to_string(), "5222,5269,7000-7201");
        assert_eq!(set.port_count(), 2 + 202);
        assert!(set.contains(7201));
        assert!(!set.contains(7202));
        assert!(PortSet::parse("").expect("empty is valid").is_empty());
        assert!(PortSet::parse(" \n").expect("blank is valid").is_empty());
    }

    #[test]
    fn port_set_rejects_bad_lists() {
        for bad in ["abc", "7000-", "70000", "7100-7000", "1,,2", "-5"] {
            let err = PortSet::parse(bad).expect_err(bad);
            assert!(matches!(err, TuningError::InvalidPortList { .. }), "{bad}: {err}");
        }
        let long = vec!["1"; PORT_LIST_ENTRIES_MAX + 1].join(",");
        assert!(PortSet::parse(&long).is_err());
    }

    #[test]
    fn port_set_algebra() {
        let reserved = PortSet::parse("5222,7000-7100").expect("valid");
        let range = PortRange { first: 1024, last: 7049 };
        assert_eq!(reserved.intersect(range).to_string(), "5222,7000-7049");
        let server = PortSet::parse("5222,5269,7000-7100").expect("valid");
        assert_eq!(server.difference(&reserved).to_string(), "5269");
        assert!(reserved.union(&server).contains_all(&server));
        assert!(!reserved.contains_all(&server));
        let whole = PortSet::parse("0-65535").expect("valid");
        assert!(whole.difference(&whole).is_empty());
        assert_eq!(whole.difference(&PortSet::parse("0,65535").expect("valid")).to_string(), "1-65534");
    }

    #[test]
    fn parses_proc_text() {
        assert_eq!(parse_port_range("k", "32768\t60999\n").expect("valid"), PortRange { first: 32768, last: 60999 });
        assert!(parse_port_range("k", "60999 32768").is_err());
        assert!(parse_port_range("k", "1 2 3").is_err());
        assert_eq!(
            parse_triple("k", "287898\t383866\t575796\n").expect("valid"),
            Triple { low: 287898, middle: 383866, high: 575796 }
        );
        assert!(parse_triple("k", "1 2").is_err());
        assert_eq!(parse_u64("k", "4096\n").expect("valid"), 4096);
        assert!(parse_u64("k", "-1").is_err());
        assert_eq!(
            parse_mem_total_bytes("MemTotal:       24683656 kB\nMemFree: 1 kB\n").expect("valid"),
            24683656 * 1024
        );
        let caps = parse_capabilities("Name:\tx\nCapEff:\t000001fffeffffff\n").expect("valid");
        assert_eq!(caps, Capabilities { sys_resource: false, ipc_lock: true });
    }
}
