//! The per-core state machine: everything one core knows and decides, with no I/O. Bytes, timeouts and
//! messages from other cores go in (`handle_*`). What it asks of the runtime comes out through one call,
//! `poll_output` (`effects.rs`: connections to serve, peers with messages waiting, log records waiting,
//! segments to delete, device generations to record, PINs to hand over, each with the answer owed); what the
//! runtime then takes while serving a connection or running a pump or the log are queries and takes
//! (`outbound`, `conn_status`, `take_handoff`, `poll_mesh`, `poll_wal_write`). The runtime only moves those
//! between sockets, channels, files and this type, and the engine's `driver` is the one place that does;
//! tests drive it directly.
//!
//! Owns, for the users whose home is this core: their sessions (user → connection), their offline queue,
//! their SEND dedup memory, the messages they acknowledged and have not read (what a READ may name), the
//! messages waiting for their receipt to be durable; and for every connection accepted or adopted here: its
//! protocol state.
//!
//! Invariants:
//! - A user has at most one session, on the user's home core; a newer login replaces the older (GOAWAY).
//! - An ACK is written only after the recipient's home core reported the message stored (`Stored`), and
//!   under `Durability::Sync` that core answers only once the message's log record is durable.
//! - Every change to a queue is appended to this core's log (`Output::LogReady` and `poll_wal_write` out,
//!   `handle_wal_done` in).
//! - Items are written to a connection in queue order, at most `DELIVERY_WINDOW_MAX` unacknowledged and
//!   while the outbound buffer is under `OUTBOUND_BYTES_MAX`; the rest stays queued. Under
//!   `Durability::Sync` an item is written only once its record is durable: nobody sees a message (or a
//!   receipt) that a crash could take back.
//! - Every copy of a SEND is answered once, on the connection it came on, if that connection still serves
//!   its user when the answer comes.
//! - A message leaves the log (`Removed`) only once its Delivered or Expired receipt is durable on the
//!   sender's home core (`ReceiptStored`); a receipt is made only by the message's recipient (DELIVERED, READ
//!   of a message it acknowledged) or by expiry.
//! - Every public `handle_*` call ends with the local queue drained (no message to self is left pending).
//!
//! This file holds the state and its start (`new`, `recover`); the behaviour is split by concern, each an
//! `impl Shard` of its own:
//! - `input.rs`: bytes in, frames out of them, each to the concern that owns its kind.
//! - `login.rs`: HELLO, sessions, the move to the user's home core.
//! - `registration.rs`: PINs and device generations (both outputs for the runtime), REGISTERED.
//! - `admin.rs`: operators' requests about a user (show, queue, revoke, kick) and their answers (an output).
//! - `messaging.rs`: SEND, store, ACK/REJECT, delivery from the offline queue.
//! - `receipts.rs`: DELIVERED, READ, receipts stored for senders, messages released from the log.
//! - `routing.rs`: what crosses between cores (outboxes, batches in and out, local messages).
//! - `durable_log.rs`: the log's writes out and results in; what waits for durability.
//! - `output.rs`: frames into a connection's outbound buffer, what the runtime does with a connection.
//! - `lifecycle.rs`: accept, adopt, close, timeouts, memory trim, shutdown.
//! - `gauges.rs`: read-only counts for metrics and the shutdown watchdog.
//! - `effects.rs`: `Output` and `poll_output`, the one way the shard's requests reach the runtime.
//!
//! The data structures they share have files of their own (`offline_queue`, `dedup`, `unread`, `mesh`, ...).

mod admin;
#[cfg(test)]
mod admin_tests;
mod awaiting_receipts;
mod config;
mod connection;
mod dedup;
#[cfg(test)]
mod device_record_tests;
mod device_records;
mod durability;
#[cfg(test)]
mod durability_tests;
mod durable_log;
mod effects;
mod gauges;
mod input;
mod lifecycle;
mod login;
mod mesh;
mod messaging;
mod offline_queue;
mod output;
mod receipts;
mod registration;
mod routing;
mod stats;
#[cfg(test)]
mod test_frames;
#[cfg(test)]
mod tests;
mod unread;

use std::collections::{HashMap, VecDeque};

use wire::UserId;

use crate::account::{IssuedPin, Registrar, SourceKey};
use crate::buffer_pool::BufferPool;
use crate::home::{ShardId, home_core};
use crate::limits::{UNREAD_PER_SHARD_MAX, UNREAD_PER_USER_MAX};
use crate::wal::{ITEM_SEQ_MASK, RecoveredCore};

pub use admin::{AdminAnswer, AdminRefusal, AdminRequest, AdminTicket, QueueShown, UserShown};
pub use config::ShardConfig;
pub use connection::{ConnId, Stage};
pub use dedup::PriorSend;
pub use device_records::DeviceRecord;
pub use durability::{Durability, LogStats};
pub use effects::Output;
pub use lifecycle::ShutdownLeft;
pub use mesh::ShardMsg;
pub use offline_queue::{Item, OfflineQueue, QueueLimits};
pub use stats::ShardStats;

use admin::AdminAnswers;
use awaiting_receipts::AwaitingReceipts;
use connection::ConnTable;
use dedup::SendDedup;
use device_records::DeviceRecords;
use durability::ShardLog;
use mesh::Outbox;
use unread::UnreadMessages;

/// The time as a shard sees it: monotonic for timeouts, wall clock for timestamps sent to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub mono_us: u64,
    pub wall_us: u64,
}

/// What the runtime should do with a connection now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnStatus {
    /// Keep serving it; read from the socket only if `may_read`.
    Open { may_read: bool },
    /// Write what is in `outbound`, then close the socket and call `handle_closed`.
    CloseAfterFlush,
    /// Close the socket now and call `handle_closed`.
    CloseNow,
    /// Take the socket to another core: call `take_handoff`.
    HandOff,
    /// No such connection (closed already).
    Gone,
}

/// A connection on its way to the home core of its user: logged in (HELLO), or registering the phone
/// number that will be its user id (REGISTER_*), which only that core may decide on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    pub to: ShardId,
    pub user: UserId,
    pub generation: u32,
    /// Bytes the client sent after HELLO (or the REGISTER_* frame and what followed it), to be processed on
    /// the home core first.
    pub leftover: Box<[u8]>,
    /// The connection has not logged in: it registers on the home core, then may send HELLO there.
    pub registering: bool,
    pub source: SourceKey,
}

/// Refusal of a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this core holds its maximum of {max} connections")]
pub struct ConnectionsFull {
    pub max: usize,
}

/// One core's state.
pub struct Shard {
    id: ShardId,
    config: ShardConfig,
    conns: ConnTable,
    /// Buffers for connections' outbound bytes and partial frames, lent while they hold bytes.
    buffers: BufferPool,
    sessions: HashMap<UserId, ConnId>,
    /// Current device generation of users whose key was re-issued by registration (absent: generation 0,
    /// the provisioned key). A user registered here exists even if no provisioning batch holds it.
    generations: HashMap<UserId, u32>,
    /// New device generations waiting to be durable, with the connections waiting for REGISTERED.
    device_records: DeviceRecords,
    /// Operators' answers not taken by the runtime yet (`Output::AdminAnswer`), and revocations in flight.
    admin: AdminAnswers,
    /// PINs issued and not handed to the runtime yet (`Output::SendPin`), with the connection that asked.
    pins_to_send: VecDeque<(ConnId, IssuedPin)>,
    /// PINs pending and registration limits, for the phones whose home is this core.
    registrar: Registrar,
    queue: OfflineQueue,
    /// Messages out of `queue` (acknowledged or expired) whose receipt is not durable yet: still in the log.
    awaiting: AwaitingReceipts,
    /// Messages delivered to this core's users and not READ yet: what a READ may name.
    unread: UnreadMessages,
    dedup: SendDedup,
    log: ShardLog,
    /// Answers released by a durable write, waiting to be routed.
    released_scratch: Vec<(ShardId, ShardMsg)>,
    /// Under `Durability::Sync`: items made here whose record is not durable yet, as (lsn, item sequence,
    /// user), in sequence order; and the highest item sequence known durable (items of this core with a
    /// higher one are not delivered yet; recovered items are durable).
    undurable_items: VecDeque<(u64, u64, UserId)>,
    durable_item_seq: u64,
    users_scratch: Vec<UserId>,
    item_seq: u64,
    outboxes: Vec<Outbox>,
    mesh_waiters: Vec<Vec<ConnId>>,
    /// Per peer: whether it is in `mesh_ready_peers`, the peers whose outbox got messages since the runtime
    /// last heard of them (`Output::MeshReady`).
    mesh_ready: Vec<bool>,
    mesh_ready_peers: Vec<ShardId>,
    local: VecDeque<ShardMsg>,
    handoffs: HashMap<ConnId, Handoff>,
    /// Connections with news for the runtime (`Output::Serve`), each once (`Connection::queued_to_serve`).
    wakeups: VecDeque<ConnId>,
    /// `Output::LogReady` was given and no `poll_wal_write` took the records since.
    log_announced: bool,
    handshake_deadlines: VecDeque<(u64, ConnId)>,
    /// Next connection slot the idle sweep looks at, and when it last ran.
    idle_sweep_cursor: usize,
    idle_sweep_us: u64,
    shutting_down: bool,
    stats: ShardStats,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("id", &self.id)
            .field("connections", &self.conns.len())
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

/// Where a frame's processing leaves the connection's input loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

impl Shard {
    pub fn new(id: ShardId, config: ShardConfig) -> Self {
        assert!(id.0 < config.cores, "shard {id} of {} cores", config.cores);
        let cores = usize::from(config.cores);
        let generations = config
            .generations
            .iter()
            .filter(|&(&user, _)| home_core(user, config.cores) == id)
            .map(|(&user, &generation)| (user, generation))
            .collect();
        Self {
            id,
            registrar: Registrar::new(config.registration, rand::random()),
            queue: OfflineQueue::new(config.queue),
            awaiting: AwaitingReceipts::default(),
            unread: UnreadMessages::new(UNREAD_PER_USER_MAX, UNREAD_PER_SHARD_MAX),
            dedup: SendDedup::new(config.dedup_entries_max, config.dedup_window_us),
            log: ShardLog::new(config.durability, config.log_segment_bytes_max, 1),
            released_scratch: Vec::new(),
            undurable_items: VecDeque::new(),
            durable_item_seq: 0,
            users_scratch: Vec::new(),
            config,
            conns: ConnTable::default(),
            buffers: BufferPool::default(),
            sessions: HashMap::new(),
            generations,
            device_records: DeviceRecords::default(),
            admin: AdminAnswers::default(),
            pins_to_send: VecDeque::new(),
            item_seq: 0,
            outboxes: (0..cores).map(|_| Outbox::default()).collect(),
            mesh_waiters: vec![Vec::new(); cores],
            mesh_ready: vec![false; cores],
            mesh_ready_peers: Vec::with_capacity(cores),
            local: VecDeque::new(),
            handoffs: HashMap::new(),
            wakeups: VecDeque::new(),
            log_announced: false,
            handshake_deadlines: VecDeque::new(),
            idle_sweep_cursor: 0,
            idle_sweep_us: 0,
            shutting_down: false,
            stats: ShardStats::default(),
        }
    }

    pub fn id(&self) -> ShardId {
        self.id
    }

    /// Loads what recovery found for this core's users: their queued items (already in the log's segment 0,
    /// `segment_bytes` long, which recovery wrote) and their recent SENDs. Call before any other input.
    pub fn recover(&mut self, recovered: RecoveredCore, segment_bytes: u64) {
        assert_eq!(self.item_seq, 0, "recovery comes first");
        assert!(recovered.item_seq_next <= ITEM_SEQ_MASK, "item sequence numbers fit in 48 bits");
        self.item_seq = recovered.item_seq_next.saturating_sub(1);
        self.durable_item_seq = self.item_seq;
        self.log.continue_log(recovered.log_id, recovered.first_segment_last_lsn());
        self.log.note_segment(0, segment_bytes);
        for record in recovered.items {
            let Some((user, item)) = durability::record_item(record) else { continue };
            debug_assert_eq!(home_core(user, self.config.cores), self.id);
            self.log.note_recovered_item(&item);
            self.queue.push(user, item);
        }
        for send in recovered.sends {
            let prior = PriorSend::Stored { server_id: send.server_id, server_time_us: send.server_time_us };
            self.dedup.remember(send.sender, send.client_msg_id, send.fingerprint, prior, 0);
        }
    }
}
