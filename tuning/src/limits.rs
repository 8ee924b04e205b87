//! Named constants behind every judgement this crate makes, each with the reason for its value.
//! Owns no logic: advice.rs and profile.rs use these; the asserts below keep them consistent.

/// File descriptors a ringline process keeps for things that are not connection sockets: stdio, one
/// io_uring ring plus eventfds and timerfds per executor, listeners, WAL segment files, log files.
/// 128 leaves room for a few dozen WAL segments on a 2-core box.
pub const FDS_RESERVED_PER_PROCESS: u64 = 128;

/// The most connections `check` accepts. 100 M is far past any single host; larger is a typo.
pub const CONNECTIONS_MAX: u64 = 100_000_000;

/// The default N for `ringline-tune check`: the project's target.
pub const CONNECTIONS_DEFAULT: u64 = 1_000_000;

/// Kernel file handles kept free above the sockets for everything else on the host (fs.file-max).
pub const FILE_HANDLES_HEADROOM: u64 = 65_536;

/// The listen-backlog value to ask for. The kernel caps listen(2)'s backlog at net.core.somaxconn; 65535
/// is the largest value every kernel since 2.6 accepts for both knobs.
pub const LISTEN_BACKLOG_MAX: u64 = 65_535;

/// netdev_max_backlog to ask for once N is large: loopback packets are queued per CPU in this backlog,
/// and a burst of connects or messages from 2 cores overflows the default 1000 (drops show in the second
/// column of /proc/net/softnet_stat).
pub const NETDEV_BACKLOG_MANY_CONNECTIONS: u64 = 16_384;

/// From this many connections on, the default backlogs (somaxconn 4096, netdev 1000) are too small.
pub const MANY_CONNECTIONS_MIN: u64 = 100_000;

/// TCP buffer memory to budget per socket while traffic flows: one page of queued data. Small chat
/// messages rarely queue more; tcp_mem's pressure threshold must cover this for every socket.
pub const TCP_BUFFER_BYTES_PER_SOCKET: u64 = 4_096;

/// tcp_rmem/tcp_wmem default (initial buffer) above which many connections risk tcp_mem pressure.
pub const SOCKET_BUFFER_DEFAULT_BYTES_MAX: u64 = 65_536;

/// Kernel memory per loopback connection pair (both sockets, idle), from a prior measurement on this
/// kind of machine (about 10 KB). The capacity runs record the current figures in results/.
pub const KERNEL_BYTES_PER_LOOPBACK_PAIR_PRIOR: u64 = 10_000;

/// The share of MemTotal that kernel socket memory may take before `check` warns: the engine, the
/// load generator and the page cache need the rest.
pub const KERNEL_SOCKET_MEMORY_PERCENT_MAX: u64 = 60;

/// glommio's default `io_memory` per executor (10 MiB), registered with io_uring and so charged to
/// RLIMIT_MEMLOCK (per user, across all processes) unless the process has CAP_IPC_LOCK.
pub const GLOMMIO_IO_MEMORY_BYTES_DEFAULT: u64 = 10 << 20;

/// Conntrack entries to keep above N for the host's other traffic.
pub const CONNTRACK_HEADROOM_PERCENT: u64 = 10;

/// Ports reserved by default: ringline's listeners (7000-7100) and the XMPP ports of the peer servers
/// (ejabberd, prosody) that comparison runs start on the same box (5222 c2s, 5269 s2s, 5280-5281 http).
pub const RESERVED_PORTS_DEFAULT: &str = "5222,5269,5280-5281,7000-7100";

/// The widest sensible ephemeral range: everything above the privileged ports. The start is even and
/// the end odd, as the kernel prefers (it warns on equal parity).
pub const EPHEMERAL_PORT_RANGE_WIDEST: (u16, u16) = (1024, 65535);

/// Port-list entries accepted for ip_local_reserved_ports, so a typo cannot build a huge string.
pub const PORT_LIST_ENTRIES_MAX: usize = 256;

const _: () = assert!(FDS_RESERVED_PER_PROCESS < 1024, "the reserve must leave room under a default ulimit");
const _: () = assert!(CONNECTIONS_DEFAULT <= CONNECTIONS_MAX);
const _: () = assert!(MANY_CONNECTIONS_MIN <= CONNECTIONS_DEFAULT);
const _: () = assert!(EPHEMERAL_PORT_RANGE_WIDEST.0 % 2 == 0 && EPHEMERAL_PORT_RANGE_WIDEST.1 % 2 == 1);
const _: () = assert!(KERNEL_SOCKET_MEMORY_PERCENT_MAX < 100);
const _: () = assert!(TCP_BUFFER_BYTES_PER_SOCKET <= SOCKET_BUFFER_DEFAULT_BYTES_MAX);
