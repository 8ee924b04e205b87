//! What one core publishes about itself: a plain copy of its counters, gauges and histograms, taken on the
//! core's own thread every publish interval and read by the metrics thread. Copying a snapshot is the only
//! cross-thread traffic metrics cause; the core never waits for a reader.

use crate::shard::{Shard, ShardStats};
use crate::tls::TlsStats;

use super::alert::{AlertMonitor, QueueKind, QueueLevels};
use super::histogram::LatencyHistogram;

/// One core's numbers at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreSnapshot {
    pub core: u16,
    pub cores: u16,
    pub stats: ShardStats,
    pub connections: u64,
    pub sessions: u64,
    pub offline_items: u64,
    pub offline_bytes: u64,
    pub offline_users: u64,
    pub dedup_entries: u64,
    pub unread_messages: u64,
    pub outbound_bytes: u64,
    /// Connections whose outbound buffer is at `OUTBOUND_BYTES_MAX` (a reader that stalled).
    pub outbound_full_connections: u64,
    /// Per peer core: messages in this core's outbox for it (0 at this core's own index).
    pub outbox_messages: Vec<u64>,
    /// Per peer core: messages handed to the channel to it and not yet taken out by it.
    pub channel_messages: Vec<u64>,
    /// Time a batch spent between this core's peers' pumps and this core's drain.
    pub mesh_hop_us: LatencyHistogram,
    /// Alerts raised on this core, in `QueueKind::ALL` order.
    pub alerts: Vec<(QueueKind, bool)>,
    /// The core's TLS counters (all zero without TLS); the runtime adds them.
    pub tls: TlsStats,
}

/// Numbers of the whole process rather than of one core.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessSnapshot {
    pub tls_cert_reloads_ok: u64,
    pub tls_cert_reloads_failed: u64,
    /// What was built: `ringline_build_info{version,commit} 1`.
    pub build: BuildInfo,
    /// The process's use of the host, read by the runtime at each scrape (`None`: it could not be read, and
    /// the `process_*` series are left out rather than shown as zero).
    pub resources: Option<ProcessResources>,
}

/// The version and commit of the running binary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BuildInfo {
    /// The crate version, e.g. `0.1.0`.
    pub version: &'static str,
    /// The short commit hash the binary was built from, or `unknown` (built outside a git checkout).
    pub commit: &'static str,
}

/// The process's CPU, memory and file descriptors, as the standard `process_*` metrics report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessResources {
    /// User plus system CPU time since the process started, in microseconds.
    pub cpu_us: u64,
    /// Resident set size.
    pub resident_bytes: u64,
    /// File descriptors open now (sockets, log segments, the epoll and io_uring descriptors...).
    pub open_fds: u64,
    /// The soft RLIMIT_NOFILE: `open_fds` may not reach it.
    pub max_fds: u64,
}

impl CoreSnapshot {
    /// Copies what `shard` knows; the runtime adds channel depths, the hop histogram and the alert state.
    pub fn capture(shard: &Shard) -> Self {
        let cores = shard.cores();
        let (outbound_bytes, outbound_full_connections) = shard.outbound_backlog();
        Self {
            core: shard.id().0,
            cores,
            stats: shard.stats().clone(),
            connections: shard.connections() as u64,
            sessions: shard.sessions() as u64,
            offline_items: shard.queued_items() as u64,
            offline_bytes: shard.queued_bytes(),
            offline_users: shard.users_waiting() as u64,
            dedup_entries: shard.dedup_entries() as u64,
            unread_messages: shard.unread_messages() as u64,
            outbound_bytes,
            outbound_full_connections,
            outbox_messages: (0..cores).map(|peer| shard.outbox_len(crate::home::ShardId(peer)) as u64).collect(),
            channel_messages: vec![0; usize::from(cores)],
            mesh_hop_us: LatencyHistogram::default(),
            alerts: Vec::new(),
            tls: TlsStats::default(),
        }
    }

    /// The levels the alert thresholds apply to. Channel depth is the deepest peer's outbox plus channel.
    pub fn levels(&self) -> QueueLevels {
        let (peer, depth) = self
            .outbox_messages
            .iter()
            .zip(&self.channel_messages)
            .map(|(outbox, channel)| outbox + channel)
            .enumerate()
            .max_by_key(|&(_, depth)| depth)
            .unwrap_or((0, 0));
        QueueLevels {
            offline_messages: self.offline_items,
            offline_bytes: self.offline_bytes,
            channel_depth: depth,
            channel_depth_peer: peer as u16,
            outbound_bytes: self.outbound_bytes,
        }
    }

    /// Records the alert state of `monitor` in the snapshot.
    pub fn set_alerts(&mut self, monitor: &AlertMonitor) {
        self.alerts = QueueKind::ALL.iter().map(|&queue| (queue, monitor.is_raised(queue))).collect();
    }
}
