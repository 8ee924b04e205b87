//! The judgement: what N connections need from a host, whether `HostLimits` provides it, and the exact
//! command that fixes each shortfall. Pure functions over plain values; no /proc, no syscalls.
//! Does not read or change the host (os.rs, profile.rs do) and does not format tables (report.rs does).
//! Invariant: every `Advice` carries a one-line reason; every `Warn` carries a fix or says why none exists.

use std::fmt;

use crate::host::{Conntrack, HardLimitRaise, HostLimits, PortSet, RLIMIT_UNLIMITED};
use crate::limits::{
    CONNTRACK_HEADROOM_PERCENT, EPHEMERAL_PORT_RANGE_WIDEST, FDS_RESERVED_PER_PROCESS, FILE_HANDLES_HEADROOM,
    GLOMMIO_IO_MEMORY_BYTES_DEFAULT, KERNEL_BYTES_PER_LOOPBACK_PAIR_PRIOR, KERNEL_SOCKET_MEMORY_PERCENT_MAX,
    LISTEN_BACKLOG_MAX, MANY_CONNECTIONS_MIN, NETDEV_BACKLOG_MANY_CONNECTIONS, RESERVED_PORTS_DEFAULT,
    SOCKET_BUFFER_DEFAULT_BYTES_MAX, TCP_BUFFER_BYTES_PER_SOCKET,
};
use crate::os::SCHED_AUTOGROUP_KEY;

/// What the host must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// Connections to hold at once.
    pub connections: u64,
    /// True when the load generator runs on the same host over loopback: two sockets per connection and
    /// the client side needs ephemeral ports. False for a server whose clients are elsewhere.
    pub loopback: bool,
    /// The server's listening ports, which must never be handed out as ephemeral source ports.
    pub server_ports: PortSet,
}

impl Workload {
    /// N connections over loopback with ringline's default server ports.
    pub fn loopback(connections: u64) -> Workload {
        Workload { connections, loopback: true, server_ports: default_server_ports() }
    }

    /// Sockets the host holds: both ends over loopback, one end otherwise.
    pub fn sockets(&self) -> u64 {
        if self.loopback { self.connections.saturating_mul(2) } else { self.connections }
    }
}

/// The ports ringline reserves by default ([`RESERVED_PORTS_DEFAULT`]).
pub fn default_server_ports() -> PortSet {
    PortSet::parse(RESERVED_PORTS_DEFAULT).expect("RESERVED_PORTS_DEFAULT is a valid port list")
}

/// Whether a setting is enough for the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Enough.
    Ok,
    /// Not enough, or something the operator must act on (see `Advice::fix`).
    Warn,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
        })
    }
}

/// One row of the check: a setting, its value, what the workload needs, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    /// The setting, e.g. `net.core.somaxconn` or `RLIMIT_NOFILE hard`.
    pub setting: &'static str,
    /// The current value, as text.
    pub current: String,
    /// What the workload needs, as text.
    pub needed: String,
    /// Whether `current` meets `needed`.
    pub status: Status,
    /// One line: what the knob does and why N connections need it.
    pub why: String,
    /// The exact command that fixes a `Warn` (None when OK, or when nothing on this host can fix it).
    pub fix: Option<String>,
}

/// How the workload splits into processes and source addresses on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityPlan {
    /// Connection sockets one process may hold: min(nofile hard, nr_open) minus the reserve.
    pub sockets_per_process_max: u64,
    /// Server processes needed to hold one end of every connection.
    pub server_processes: u64,
    /// Client (load generator) processes needed over loopback; 0 when clients are elsewhere.
    pub client_processes: u64,
    /// Ephemeral ports one source address offers to one destination (range minus reserved ports).
    pub ephemeral_ports_per_source_address: u64,
    /// Source addresses in 127.0.0.0/8 the load generator must bind; 0 when clients are elsewhere.
    pub source_addresses: u64,
}

impl fmt::Display for CapacityPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} sockets per process max; {} server process(es)",
            group(self.sockets_per_process_max),
            group(self.server_processes)
        )?;
        if self.client_processes > 0 {
            write!(
                f,
                " + {} client process(es); {} source address(es) of {} ports",
                group(self.client_processes),
                group(self.source_addresses),
                group(self.ephemeral_ports_per_source_address)
            )?;
        }
        Ok(())
    }
}

impl HostLimits {
    /// File descriptors one process can hold at most: the hard RLIMIT_NOFILE, capped by fs.nr_open
    /// (an unlimited rlimit is still bounded by nr_open).
    pub fn nofile_ceiling(&self) -> u64 {
        self.nofile.hard.min(self.nr_open)
    }

    /// Connection sockets one process can hold once its soft limit is raised to the hard limit:
    /// `nofile_ceiling() - FDS_RESERVED_PER_PROCESS` (0 if the ceiling is below the reserve).
    pub fn connections_per_process_max(&self) -> u64 {
        self.nofile_ceiling().saturating_sub(FDS_RESERVED_PER_PROCESS)
    }

    /// Ephemeral ports connect(2) can pick per (source address, destination): the range minus the
    /// reserved ports inside it.
    pub fn ephemeral_ports_per_source_address(&self) -> u64 {
        let range = self.local_port_range;
        range.port_count() - self.local_reserved_ports.intersect(range).port_count()
    }

    /// How the workload splits into processes and source addresses.
    pub fn capacity_plan(&self, workload: &Workload) -> CapacityPlan {
        let per_process = self.connections_per_process_max();
        let server_processes = div_ceil_or_max(workload.connections, per_process);
        let ports = self.ephemeral_ports_per_source_address();
        let (client_processes, source_addresses) =
            if workload.loopback { (server_processes, div_ceil_or_max(workload.connections, ports)) } else { (0, 0) };
        CapacityPlan {
            sockets_per_process_max: per_process,
            server_processes,
            client_processes,
            ephemeral_ports_per_source_address: ports,
            source_addresses,
        }
    }

    /// The check for N connections over loopback with the default server ports.
    pub fn advice(&self, connections: u64) -> Vec<Advice> {
        self.advice_for(&Workload::loopback(connections))
    }

    /// The check for any workload: one `Advice` per setting, in a stable order.
    pub fn advice_for(&self, workload: &Workload) -> Vec<Advice> {
        let plan = self.capacity_plan(workload);
        let mut rows = vec![
            self.advise_nofile_soft(),
            self.advise_nofile_hard(workload, &plan),
            self.advise_nr_open(workload),
            self.advise_file_max(workload),
            self.advise_memlock(&plan),
        ];
        if workload.loopback {
            rows.push(self.advise_port_range(workload, &plan));
        }
        rows.push(self.advise_reserved_ports(workload, &plan));
        rows.push(self.advise_somaxconn(workload));
        rows.push(self.advise_syn_backlog(workload));
        rows.push(self.advise_netdev_backlog(workload));
        rows.push(self.advise_tcp_mem(workload));
        rows.push(self.advise_buffer("net.ipv4.tcp_rmem", self.tcp_rmem_bytes, workload));
        rows.push(self.advise_buffer("net.ipv4.tcp_wmem", self.tcp_wmem_bytes, workload));
        rows.push(self.advise_conntrack(workload));
        rows.push(self.advise_kernel_memory(workload));
        rows.push(self.advise_sched_autogroup());
        assert!(rows.iter().all(|r| !r.why.is_empty()), "every row explains itself");
        assert!(rows.iter().all(|r| r.status == Status::Ok || r.fix.is_some()), "every WARN says what to do");
        rows
    }

    fn advise_nofile_soft(&self) -> Advice {
        let ok = self.nofile.soft >= self.nofile.hard;
        Advice {
            setting: "RLIMIT_NOFILE soft",
            current: rlimit_text(self.nofile.soft),
            needed: format!("= hard ({})", rlimit_text(self.nofile.hard)),
            status: status(ok),
            why: "fds this process may open now; engine and loadgen raise it to hard at start".to_string(),
            fix: (!ok).then(|| format!("ulimit -Sn {}", self.nofile.hard)),
        }
    }

    fn advise_nofile_hard(&self, workload: &Workload, plan: &CapacityPlan) -> Advice {
        let single_process_fds = workload.connections.saturating_add(FDS_RESERVED_PER_PROCESS);
        let ok = self.nofile_ceiling() >= single_process_fds;
        let processes = if workload.loopback {
            format!("{} server + {} client procs", group(plan.server_processes), group(plan.client_processes))
        } else {
            format!("{} server procs", group(plan.server_processes))
        };
        let per_process = group(plan.sockets_per_process_max);
        let (why, fix) = match (ok, self.nofile_hard_raise) {
            (true, _) => ("one process can hold one end of every connection".to_string(), None),
            (false, HardLimitRaise::Refused { .. }) => (
                format!("CANNOT raise (setrlimit EPERM): ≤ {per_process} sockets/proc → {processes}"),
                Some(format!(
                    "set outside: docker --ulimit nofile={0}:{0} or systemd LimitNOFILE={0}",
                    self.nr_open.max(single_process_fds)
                )),
            ),
            (false, _) => (
                format!("per-process fd ceiling; as it is: ≤ {per_process} sockets/proc → {processes}"),
                Some(format!("prlimit --pid $$ --nofile={single_process_fds}:{single_process_fds}  (≤ fs.nr_open)")),
            ),
        };
        Advice {
            setting: "RLIMIT_NOFILE hard",
            current: format!("{}{}", rlimit_text(self.nofile.hard), raise_note(self.nofile_hard_raise)),
            needed: format!("≥ {} for 1 process", group(single_process_fds)),
            status: status(ok),
            why,
            fix,
        }
    }

    fn advise_nr_open(&self, workload: &Workload) -> Advice {
        let needed = workload.connections.saturating_add(FDS_RESERVED_PER_PROCESS);
        let ok = self.nr_open >= needed;
        Advice {
            setting: "fs.nr_open",
            current: group(self.nr_open),
            needed: format!("≥ {}", group(needed)),
            status: status(ok),
            why: "ceiling for any process's RLIMIT_NOFILE, so for sockets in one process".to_string(),
            fix: (!ok).then(|| format!("sysctl -w fs.nr_open={}", round_up_power_of_two(needed))),
        }
    }

    fn advise_file_max(&self, workload: &Workload) -> Advice {
        let needed = workload.sockets().saturating_add(FILE_HANDLES_HEADROOM);
        let ok = self.file_max >= needed;
        Advice {
            setting: "fs.file-max",
            current: group(self.file_max),
            needed: format!("≥ {}", group(needed)),
            status: status(ok),
            why: format!(
                "open files on the whole host: {} sockets{} plus headroom",
                group(workload.sockets()),
                if workload.loopback { " (2 per loopback connection)" } else { "" }
            ),
            fix: (!ok).then(|| format!("sysctl -w fs.file-max={}", round_up_power_of_two(needed))),
        }
    }

    fn advise_memlock(&self, plan: &CapacityPlan) -> Advice {
        let processes = plan.server_processes.saturating_add(plan.client_processes).max(1);
        let needed = processes.saturating_mul(self.cpu_count.max(1)).saturating_mul(GLOMMIO_IO_MEMORY_BYTES_DEFAULT);
        let current = format!("{}{}", bytes_text(self.memlock_bytes.soft), raise_note(self.memlock_hard_raise));
        if self.capabilities.ipc_lock {
            return Advice {
                setting: "RLIMIT_MEMLOCK",
                current,
                needed: "none (CAP_IPC_LOCK)".to_string(),
                status: Status::Ok,
                why: "with CAP_IPC_LOCK io_uring does not charge registered buffers to memlock".to_string(),
                fix: None,
            };
        }
        let ok = self.memlock_bytes.soft >= needed;
        let fix = match self.memlock_hard_raise {
            _ if ok => None,
            HardLimitRaise::Refused { .. } => Some(format!(
                "cannot raise inside: set glommio io_memory ≤ {} per executor, or run with CAP_IPC_LOCK",
                bytes_text(self.memlock_bytes.soft / processes / self.cpu_count.max(1))
            )),
            _ => Some(format!("prlimit --pid $$ --memlock={0}:{0}  (or LimitMEMLOCK= in systemd)", needed)),
        };
        Advice {
            setting: "RLIMIT_MEMLOCK",
            current,
            needed: format!("≥ {}", bytes_text(needed)),
            status: status(ok),
            why: format!("io_uring charges glommio io_memory (10 MiB/executor) to the user, {processes} procs"),
            fix,
        }
    }

    fn advise_port_range(&self, workload: &Workload, plan: &CapacityPlan) -> Advice {
        let ok = plan.source_addresses <= 1;
        let (first, last) = EPHEMERAL_PORT_RANGE_WIDEST;
        let widest = crate::host::PortRange { first, last };
        let widest_ports = widest.port_count()
            - self.local_reserved_ports.union(&workload.server_ports).intersect(widest).port_count();
        let widest_addresses = div_ceil_or_max(workload.connections, widest_ports);
        Advice {
            setting: "net.ipv4.ip_local_port_range",
            current: format!("{} ({} ports)", self.local_port_range, group(plan.ephemeral_ports_per_source_address)),
            needed: format!("{} source addr(s)", group(plan.source_addresses)),
            status: status(ok),
            why: format!(
                "ports per (src addr, dst addr:port): loadgen binds {} addrs of 127/8 ({} if widened)",
                group(plan.source_addresses),
                group(widest_addresses)
            ),
            fix: (!ok).then(|| {
                format!(
                    "reserve ports first (next row), then sysctl -w net.ipv4.ip_local_port_range=\"{first} {last}\""
                )
            }),
        }
    }

    fn advise_reserved_ports(&self, workload: &Workload, plan: &CapacityPlan) -> Advice {
        // Widening the ephemeral range is only advised when one source address cannot cover N.
        let widening_advised = workload.loopback && plan.source_addresses > 1;
        let (first, last) = EPHEMERAL_PORT_RANGE_WIDEST;
        let widest = crate::host::PortRange { first, last };
        let unreserved = workload.server_ports.difference(&self.local_reserved_ports);
        let exposed_now = unreserved.intersect(self.local_port_range);
        let exposed_if_widened = unreserved.intersect(widest);
        let ok = exposed_now.is_empty() && (!widening_advised || exposed_if_widened.is_empty());
        let wanted = self.local_reserved_ports.union(&workload.server_ports);
        let why = if !exposed_now.is_empty() {
            format!(
                "{} server ports are ephemeral now: a client may take one, the bind fails",
                exposed_now.port_count()
            )
        } else if widening_advised && !exposed_if_widened.is_empty() {
            format!(
                "{} server ports become ephemeral when the range widens: reserve first",
                exposed_if_widened.port_count()
            )
        } else {
            "connect(2) never picks reserved ports, so listeners can always bind".to_string()
        };
        Advice {
            setting: "net.ipv4.ip_local_reserved_ports",
            current: if self.local_reserved_ports.is_empty() {
                "(none)".to_string()
            } else {
                self.local_reserved_ports.to_string()
            },
            needed: format!("⊇ {} server ports", group(workload.server_ports.port_count())),
            status: status(ok),
            why,
            fix: (!ok).then(|| format!("sysctl -w net.ipv4.ip_local_reserved_ports={wanted}")),
        }
    }

    fn advise_somaxconn(&self, workload: &Workload) -> Advice {
        let needed = backlog_needed(workload.connections);
        let ok = self.somaxconn >= needed;
        Advice {
            setting: "net.core.somaxconn",
            current: group(self.somaxconn),
            needed: format!("≥ {}", group(needed)),
            status: status(ok),
            why: "caps every listen backlog; a connect burst past it drops SYNs, clients stall ≥ 1 s".to_string(),
            fix: (!ok).then(|| format!("sysctl -w net.core.somaxconn={needed}")),
        }
    }

    fn advise_syn_backlog(&self, workload: &Workload) -> Advice {
        let needed = backlog_needed(workload.connections);
        let ok = self.tcp_max_syn_backlog >= needed;
        Advice {
            setting: "net.ipv4.tcp_max_syn_backlog",
            current: group(self.tcp_max_syn_backlog),
            needed: format!("≥ {}", group(needed)),
            status: status(ok),
            why: "half-open connections per listener in a ramp; past it SYNs drop or use cookies".to_string(),
            fix: (!ok).then(|| format!("sysctl -w net.ipv4.tcp_max_syn_backlog={needed}")),
        }
    }

    fn advise_netdev_backlog(&self, workload: &Workload) -> Advice {
        let needed = if workload.connections >= MANY_CONNECTIONS_MIN { NETDEV_BACKLOG_MANY_CONNECTIONS } else { 1_000 };
        let ok = self.netdev_max_backlog >= needed;
        Advice {
            setting: "net.core.netdev_max_backlog",
            current: group(self.netdev_max_backlog),
            needed: format!("≥ {}", group(needed)),
            status: status(ok),
            why: "per-CPU queue every loopback packet passes; drops show in /proc/net/softnet_stat".to_string(),
            fix: (!ok).then(|| format!("sysctl -w net.core.netdev_max_backlog={needed}")),
        }
    }

    fn advise_tcp_mem(&self, workload: &Workload) -> Advice {
        let page = self.page_size_bytes.max(1);
        let needed_pages = workload.sockets().saturating_mul(TCP_BUFFER_BYTES_PER_SOCKET).div_ceil(page);
        let ok = self.tcp_mem_pages.middle >= needed_pages;
        let high_bytes = needed_pages.saturating_mul(3) / 2 * page;
        let ram_note = if high_bytes > self.mem_total_bytes / 2 { "; > RAM/2!" } else { "" };
        Advice {
            setting: "net.ipv4.tcp_mem",
            current: self.tcp_mem_pages.to_string(),
            needed: format!("pressure ≥ {}", group(needed_pages)),
            status: status(ok),
            why: format!(
                "host-wide TCP buffer pages: {} sockets × {} B; past pressure TCP trims{ram_note}",
                group(workload.sockets()),
                TCP_BUFFER_BYTES_PER_SOCKET
            ),
            fix: (!ok).then(|| {
                format!(
                    "sysctl -w net.ipv4.tcp_mem=\"{} {} {}\"",
                    needed_pages * 3 / 4,
                    needed_pages,
                    needed_pages.saturating_mul(3) / 2
                )
            }),
        }
    }

    fn advise_buffer(&self, setting: &'static str, buffer: crate::host::Triple, workload: &Workload) -> Advice {
        let page = self.page_size_bytes.max(1);
        let many = workload.connections >= MANY_CONNECTIONS_MIN;
        let floor_ok = buffer.low <= page;
        let default_ok = !many || buffer.middle <= SOCKET_BUFFER_DEFAULT_BYTES_MAX;
        let ok = floor_ok && default_ok;
        let needed = if many {
            format!("min ≤ {page}, def ≤ {}", SOCKET_BUFFER_DEFAULT_BYTES_MAX)
        } else {
            format!("min ≤ {page}")
        };
        let why = if !floor_ok {
            "min is what each socket keeps under pressure; above a page, sockets cannot shrink".to_string()
        } else {
            format!(
                "initial buffer per socket: {} × {} B = {} if all fill at once",
                group(workload.sockets()),
                group(buffer.middle),
                bytes_text(workload.sockets().saturating_mul(buffer.middle))
            )
        };
        Advice {
            setting,
            current: buffer.to_string(),
            needed,
            status: status(ok),
            why,
            fix: (!ok).then(|| {
                format!(
                    "sysctl -w {setting}=\"{} {} {}\"",
                    buffer.low.min(page),
                    buffer.middle.min(16_384),
                    buffer.high
                )
            }),
        }
    }

    fn advise_conntrack(&self, workload: &Workload) -> Advice {
        let needed = workload.connections.saturating_add(workload.connections / 100 * CONNTRACK_HEADROOM_PERCENT);
        match self.conntrack {
            Conntrack::NotLoaded => Advice {
                setting: "net.netfilter.nf_conntrack_max",
                current: "not loaded".to_string(),
                needed: format!("≥ {} if loaded", group(needed)),
                status: Status::Ok,
                why: "nf_conntrack is not loaded: connections are not tracked and need no entries".to_string(),
                fix: None,
            },
            Conntrack::Loaded { max } => {
                let ok = max >= needed;
                Advice {
                    setting: "net.netfilter.nf_conntrack_max",
                    current: group(max),
                    needed: format!("≥ {}", group(needed)),
                    status: status(ok),
                    why: "one entry per tracked connection; when full new SYNs drop (or NOTRACK lo)".to_string(),
                    fix: (!ok)
                        .then(|| format!("sysctl -w net.netfilter.nf_conntrack_max={}", round_up_power_of_two(needed))),
                }
            }
        }
    }

    fn advise_kernel_memory(&self, workload: &Workload) -> Advice {
        let pairs_or_sockets = workload.connections;
        let per_connection = if workload.loopback {
            KERNEL_BYTES_PER_LOOPBACK_PAIR_PRIOR
        } else {
            KERNEL_BYTES_PER_LOOPBACK_PAIR_PRIOR / 2
        };
        let needed = pairs_or_sockets.saturating_mul(per_connection);
        let allowed = self.mem_total_bytes / 100 * KERNEL_SOCKET_MEMORY_PERCENT_MAX;
        let ok = needed <= allowed;
        Advice {
            setting: "MemTotal (kernel sockets)",
            current: bytes_text(self.mem_total_bytes),
            needed: format!("≥ {} kernel", bytes_text(needed)),
            status: status(ok),
            why: format!(
                "~{} KB per {} (prior measurement; results/ has current); warn > {KERNEL_SOCKET_MEMORY_PERCENT_MAX}% RAM",
                per_connection / 1000,
                if workload.loopback { "loopback pair" } else { "socket" }
            ),
            fix: (!ok).then(|| "no sysctl fixes this: hold fewer connections per host or add RAM".to_string()),
        }
    }

    /// Autogroup puts every login session's tasks in a scheduler group of its own. On a box where the
    /// engine, the load generator and the kernel's own threads share the CPUs, the group scheduling turns
    /// sub-millisecond wake-ups into stalls of tens of milliseconds: one 100,000-connection chat run here
    /// had ACK p99 30 ms with it and 4.5 ms without (results/capacity/autogroup/).
    fn advise_sched_autogroup(&self) -> Advice {
        let current = match self.sched_autogroup {
            None => "not in this kernel".to_string(),
            Some(true) => "1".to_string(),
            Some(false) => "0".to_string(),
        };
        let ok = self.sched_autogroup != Some(true);
        Advice {
            setting: SCHED_AUTOGROUP_KEY,
            current,
            needed: "0".to_string(),
            status: status(ok),
            why: "a desktop feature: one scheduler group per session adds tens of ms to wake-ups under load"
                .to_string(),
            fix: (!ok).then(|| format!("sysctl -w {SCHED_AUTOGROUP_KEY}=0")),
        }
    }
}

/// The backlog to ask for: N itself for small N, capped at [`LISTEN_BACKLOG_MAX`].
fn backlog_needed(connections: u64) -> u64 {
    connections.min(LISTEN_BACKLOG_MAX)
}

fn status(ok: bool) -> Status {
    if ok { Status::Ok } else { Status::Warn }
}

fn div_ceil_or_max(total: u64, per_unit: u64) -> u64 {
    if per_unit == 0 { u64::MAX } else { total.div_ceil(per_unit) }
}

fn round_up_power_of_two(value: u64) -> u64 {
    value.checked_next_power_of_two().unwrap_or(value)
}

fn raise_note(raise: HardLimitRaise) -> &'static str {
    match raise {
        HardLimitRaise::Refused { .. } => " (fixed)",
        HardLimitRaise::Possible => " (raisable)",
        HardLimitRaise::Unknown | HardLimitRaise::AlreadyUnlimited => "",
    }
}

fn rlimit_text(value: u64) -> String {
    if value == RLIMIT_UNLIMITED { "unlimited".to_string() } else { group(value) }
}

/// Bytes in binary units (`8 MiB`, `9.3 GiB`); unlimited for [`RLIMIT_UNLIMITED`].
pub fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if bytes == RLIMIT_UNLIMITED {
        return "unlimited".to_string();
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 { format!("{value} {}", UNITS[unit]) } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// An integer with thousands separators: `1,000,000`.
pub fn group(value: u64) -> String {
    if value == u64::MAX {
        return "∞".to_string();
    }
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Capabilities, PortRange, ResourceLimit, Triple};

    /// This machine: 2 cores, 24 GiB, nofile 20,000 hard that root cannot raise, memlock 8 MiB fixed.
    fn this_machine() -> HostLimits {
        HostLimits {
            nofile: ResourceLimit { soft: 20_000, hard: 20_000 },
            nofile_hard_raise: HardLimitRaise::Refused { errno: libc::EPERM },
            memlock_bytes: ResourceLimit { soft: 8 << 20, hard: 8 << 20 },
            memlock_hard_raise: HardLimitRaise::Refused { errno: libc::EPERM },
            capabilities: Capabilities { sys_resource: false, ipc_lock: false },
            nr_open: 1_048_576,
            file_max: 2_466_174,
            local_port_range: PortRange { first: 32768, last: 60999 },
            local_reserved_ports: PortSet::default(),
            somaxconn: 4096,
            tcp_max_syn_backlog: 2048,
            tcp_mem_pages: Triple { low: 287_898, middle: 383_866, high: 575_796 },
            tcp_rmem_bytes: Triple { low: 4096, middle: 131_072, high: 33_554_432 },
            tcp_wmem_bytes: Triple { low: 4096, middle: 16_384, high: 4_194_304 },
            netdev_max_backlog: 1000,
            conntrack: Conntrack::NotLoaded,
            sched_autogroup: Some(true),
            page_size_bytes: 4096,
            mem_total_bytes: 24_683_656 * 1024,
            cpu_count: 2,
        }
    }

    /// A 64-core / 256 GiB host after `apply --profile server` and LimitNOFILE=2097152.
    fn big_host() -> HostLimits {
        HostLimits {
            nofile: ResourceLimit { soft: 2_097_152, hard: 2_097_152 },
            nofile_hard_raise: HardLimitRaise::Possible,
            memlock_bytes: ResourceLimit { soft: RLIMIT_UNLIMITED, hard: RLIMIT_UNLIMITED },
            memlock_hard_raise: HardLimitRaise::AlreadyUnlimited,
            capabilities: Capabilities { sys_resource: true, ipc_lock: false },
            nr_open: 2_097_152,
            file_max: 4_194_304,
            local_port_range: PortRange { first: 1024, last: 65535 },
            local_reserved_ports: default_server_ports(),
            somaxconn: 65535,
            tcp_max_syn_backlog: 65535,
            tcp_mem_pages: Triple { low: 6_291_456, middle: 8_388_608, high: 12_582_912 },
            tcp_rmem_bytes: Triple { low: 4096, middle: 16_384, high: 16_777_216 },
            tcp_wmem_bytes: Triple { low: 4096, middle: 16_384, high: 16_777_216 },
            netdev_max_backlog: 16_384,
            conntrack: Conntrack::Loaded { max: 4_194_304 },
            sched_autogroup: Some(false),
            page_size_bytes: 4096,
            mem_total_bytes: 256 << 30,
            cpu_count: 64,
        }
    }

    fn row<'a>(rows: &'a [Advice], setting: &str) -> &'a Advice {
        rows.iter().find(|r| r.setting == setting).unwrap_or_else(|| panic!("no row {setting}"))
    }

    #[test]
    fn this_machine_needs_51_processes_per_side_for_a_million() {
        let host = this_machine();
        assert_eq!(host.connections_per_process_max(), 20_000 - FDS_RESERVED_PER_PROCESS);
        let plan = host.capacity_plan(&Workload::loopback(1_000_000));
        assert_eq!(plan.sockets_per_process_max, 19_872);
        assert_eq!(plan.server_processes, 51, "1,000,000 / 19,872 rounded up");
        assert_eq!(plan.client_processes, 51);
        assert_eq!(plan.ephemeral_ports_per_source_address, 28_232);
        assert_eq!(plan.source_addresses, 36, "1,000,000 / 28,232 rounded up");
    }

    #[test]
    fn this_machine_says_nofile_hard_cannot_be_raised() {
        let rows = this_machine().advice(1_000_000);
        let hard = row(&rows, "RLIMIT_NOFILE hard");
        assert_eq!(hard.status, Status::Warn);
        assert!(hard.why.contains("CANNOT") && hard.why.contains("EPERM"), "{}", hard.why);
        assert!(hard.why.contains("51 server + 51 client"), "{}", hard.why);
        assert!(hard.fix.as_deref().is_some_and(|f| f.contains("LimitNOFILE")));
        assert_eq!(row(&rows, "RLIMIT_NOFILE soft").status, Status::Ok);
        assert_eq!(row(&rows, "fs.nr_open").status, Status::Ok, "1,048,576 ≥ 1,000,128");
        assert_eq!(row(&rows, "fs.file-max").status, Status::Ok, "2,466,174 ≥ 2,065,536");
    }

    #[test]
    fn this_machine_warns_on_backlogs_tcp_mem_and_port_reservation() {
        let rows = this_machine().advice(1_000_000);
        for setting in [
            "net.core.somaxconn",
            "net.ipv4.tcp_max_syn_backlog",
            "net.core.netdev_max_backlog",
            "net.ipv4.tcp_mem",
            "net.ipv4.ip_local_port_range",
            "net.ipv4.ip_local_reserved_ports",
        ] {
            assert_eq!(row(&rows, setting).status, Status::Warn, "{setting}");
        }
        let tcp_mem = row(&rows, "net.ipv4.tcp_mem");
        assert_eq!(tcp_mem.fix.as_deref(), Some("sysctl -w net.ipv4.tcp_mem=\"1500000 2000000 3000000\""));
        let reserved = row(&rows, "net.ipv4.ip_local_reserved_ports");
        assert_eq!(
            reserved.fix.as_deref(),
            Some("sysctl -w net.ipv4.ip_local_reserved_ports=5222,5269,5280-5281,7000-7100")
        );
        assert!(reserved.why.contains("widens"), "ports are outside the range now: {}", reserved.why);
        let conntrack = row(&rows, "net.netfilter.nf_conntrack_max");
        assert_eq!((conntrack.status, conntrack.current.as_str()), (Status::Ok, "not loaded"));
    }

    #[test]
    fn memlock_is_judged_only_without_cap_ipc_lock() {
        let mut host = this_machine();
        let rows = host.advice(1_000);
        let memlock = row(&rows, "RLIMIT_MEMLOCK");
        assert_eq!(memlock.status, Status::Warn, "2 executors × 10 MiB > 8 MiB per user");
        assert!(memlock.fix.as_deref().is_some_and(|f| f.contains("cannot raise")), "{:?}", memlock.fix);
        host.capabilities.ipc_lock = true;
        assert_eq!(row(&host.advice(1_000), "RLIMIT_MEMLOCK").status, Status::Ok);
    }

    #[test]
    fn small_workload_on_this_machine_fits_one_process() {
        let mut host = this_machine();
        host.capabilities.ipc_lock = true;
        // Autogroup is about latency under load, whatever the count: it warns on its own (test below).
        host.sched_autogroup = Some(false);
        let rows = host.advice(1_000);
        let warned: Vec<&str> = rows.iter().filter(|r| r.status == Status::Warn).map(|r| r.setting).collect();
        assert!(warned.is_empty(), "1,000 connections need nothing: {warned:?}");
        let plan = host.capacity_plan(&Workload::loopback(1_000));
        assert_eq!((plan.server_processes, plan.client_processes, plan.source_addresses), (1, 1, 1));
    }

    #[test]
    fn ports_in_the_range_but_unreserved_warn_now() {
        let mut host = this_machine();
        host.local_port_range = PortRange { first: 1024, last: 65535 };
        let workload = Workload::loopback(1_000);
        let reserved = row(&host.advice_for(&workload), "net.ipv4.ip_local_reserved_ports").clone();
        assert_eq!(reserved.status, Status::Warn);
        assert!(reserved.why.contains("ephemeral now"), "{}", reserved.why);
        host.local_reserved_ports = PortSet::parse("80,5222,5269,5280-5281,7000-7100").expect("valid");
        let reserved = row(&host.advice_for(&workload), "net.ipv4.ip_local_reserved_ports").clone();
        assert_eq!(reserved.status, Status::Ok);
        assert_eq!(host.ephemeral_ports_per_source_address(), 64_512 - 105, "80 is below the range");
    }

    #[test]
    fn big_host_holds_a_million_in_one_process_per_side() {
        let host = big_host();
        let rows = host.advice(1_000_000);
        let warned: Vec<&str> = rows.iter().filter(|r| r.status == Status::Warn).map(|r| r.setting).collect();
        assert_eq!(warned, vec!["net.ipv4.ip_local_port_range"], "only the source-address note remains");
        let plan = host.capacity_plan(&Workload::loopback(1_000_000));
        assert_eq!((plan.server_processes, plan.client_processes), (1, 1));
        assert_eq!(plan.source_addresses, 1_000_000u64.div_ceil(64_512 - 105));
    }

    #[test]
    fn big_host_server_only_needs_no_ports_and_half_the_sockets() {
        let host = big_host();
        let workload = Workload { connections: 2_000_000, loopback: false, server_ports: default_server_ports() };
        let rows = host.advice_for(&workload);
        assert!(rows.iter().all(|r| r.setting != "net.ipv4.ip_local_port_range"));
        assert_eq!(row(&rows, "fs.file-max").needed, format!("≥ {}", group(2_000_000 + FILE_HANDLES_HEADROOM)));
        assert_eq!(row(&rows, "RLIMIT_NOFILE hard").status, Status::Ok, "2,000,128 fds fit under 2,097,152");
    }

    #[test]
    fn raisable_hard_limit_gives_a_prlimit_fix() {
        let mut host = this_machine();
        host.nofile_hard_raise = HardLimitRaise::Possible;
        let rows = host.advice(1_000_000);
        let hard = row(&rows, "RLIMIT_NOFILE hard");
        assert_eq!(hard.status, Status::Warn);
        assert!(hard.fix.as_deref().is_some_and(|f| f.starts_with("prlimit")), "{:?}", hard.fix);
    }

    #[test]
    fn unlimited_nofile_is_still_capped_by_nr_open() {
        let mut host = this_machine();
        host.nofile = ResourceLimit { soft: RLIMIT_UNLIMITED, hard: RLIMIT_UNLIMITED };
        assert_eq!(host.connections_per_process_max(), 1_048_576 - FDS_RESERVED_PER_PROCESS);
        host.nr_open = 0;
        assert_eq!(host.connections_per_process_max(), 0);
        assert_eq!(host.capacity_plan(&Workload::loopback(10)).server_processes, u64::MAX);
    }

    #[test]
    fn autogroup_on_warns_with_the_sysctl_that_turns_it_off() {
        let rows = this_machine().advice(100_000);
        let autogroup = row(&rows, "kernel.sched_autogroup_enabled");
        assert_eq!(autogroup.status, Status::Warn);
        assert_eq!(autogroup.current, "1");
        assert_eq!(autogroup.fix.as_deref(), Some("sysctl -w kernel.sched_autogroup_enabled=0"));
        assert_eq!(row(&big_host().advice(100_000), "kernel.sched_autogroup_enabled").status, Status::Ok);
        let without = HostLimits { sched_autogroup: None, ..this_machine() };
        let absent = row(&without.advice(100_000), "kernel.sched_autogroup_enabled").clone();
        assert_eq!(absent.status, Status::Ok);
        assert_eq!(absent.current, "not in this kernel");
    }

    #[test]
    fn formats_numbers() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1_000), "1,000");
        assert_eq!(group(1_048_576), "1,048,576");
        assert_eq!(bytes_text(8 << 20), "8 MiB");
        assert_eq!(bytes_text(RLIMIT_UNLIMITED), "unlimited");
        assert_eq!(bytes_text(1536), "1.5 KiB");
    }
}
