//! The per-core state machine: everything one core knows and decides, with no I/O. Bytes, timeouts and
//! messages from other cores go in (`handle_*`); frames to write, connections to wake or close, sockets to
//! hand to another core and messages for other cores come out (`outbound`, `poll_*`, `conn_status`). The
//! runtime (the engine's `rt`) only moves those between sockets, channels and this type; tests drive it directly.
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
//! - Every change to a queue is appended to this core's log (`poll_wal_write` out, `handle_wal_done` in).
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
mod mesh;
mod offline_queue;
mod stats;
#[cfg(test)]
mod test_frames;
#[cfg(test)]
mod tests;
mod unread;

use std::collections::{HashMap, VecDeque};

use wire::{
    ClientFrame, Decoded, ErrorCode, GoawayReason, ReceiptKind, RegisterRefusal, RejectCode, ServerFrame, UserId,
};

use crate::account::{IssuedPin, Refusal, Registrar, SourceKey};
use crate::buffer_pool::BufferPool;
use crate::home::{ShardId, home_core};
use crate::limits::{
    CONNECTIONS_PER_SHARD_MAX, DELIVERY_WINDOW_MAX, MESH_BATCH_MESSAGES_MAX, MESH_OUTBOX_REQUESTS_MAX,
    OUTBOUND_BYTES_MAX, POOLED_BUFFERS_RESERVE, SEND_INFLIGHT_MAX, SENDER_RECEIPTS_MAX, UNREAD_PER_SHARD_MAX,
    UNREAD_PER_USER_MAX,
};
use crate::wal::{ITEM_SEQ_MASK, LogRecord, PendingWrite, RecoveredCore, send_fingerprint};

pub use config::ShardConfig;
pub use connection::{ConnId, Stage};
pub use dedup::PriorSend;
pub use device_records::DeviceRecord;
pub use durability::{Durability, LogStats};
pub use mesh::ShardMsg;
pub use offline_queue::{Item, OfflineQueue, QueueLimits};
pub use stats::ShardStats;

use awaiting_receipts::AwaitingReceipts;
use connection::{ConnTable, Connection};
use dedup::{Seen, SendDedup};
use device_records::{DeviceRecords, NotTaken};
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
    /// PINs issued and not handed to the runtime yet (`poll_pin`), with the connection that asked.
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
    mesh_ready: Vec<bool>,
    local: VecDeque<ShardMsg>,
    handoffs: HashMap<ConnId, Handoff>,
    wakeups: Vec<ConnId>,
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
            pins_to_send: VecDeque::new(),
            item_seq: 0,
            outboxes: (0..cores).map(|_| Outbox::default()).collect(),
            mesh_waiters: vec![Vec::new(); cores],
            mesh_ready: vec![false; cores],
            local: VecDeque::new(),
            handoffs: HashMap::new(),
            wakeups: Vec::new(),
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

    pub fn stats(&self) -> &ShardStats {
        &self.stats
    }

    /// One log group took `us` to write and sync (retries included): the log sync latency histogram.
    pub fn record_wal_sync(&mut self, us: u64) {
        self.stats.wal_sync_us.record(us);
    }

    /// Connections on this core (any stage).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Logged-in users on this core.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Items waiting in this core's offline queue.
    pub fn queued_items(&self) -> usize {
        self.queue.items_total()
    }

    /// Body bytes waiting in this core's offline queue.
    pub fn queued_bytes(&self) -> u64 {
        self.queue.bytes_total()
    }

    /// Users with something waiting in this core's offline queue.
    pub fn users_waiting(&self) -> usize {
        self.queue.users_waiting()
    }

    /// Free buffers in this core's pool (outbound bytes, partial frames).
    pub fn pooled_buffers(&self) -> usize {
        self.buffers.len()
    }

    /// SENDs remembered for deduplicating retries.
    pub fn dedup_entries(&self) -> usize {
        self.dedup.len()
    }

    /// Messages delivered to this core's users and not READ yet, remembered so a READ can be checked.
    pub fn unread_messages(&self) -> usize {
        self.unread.len()
    }

    /// Messages acknowledged or expired whose receipt the sender's home core has not reported durable yet.
    pub fn receipts_awaited(&self) -> usize {
        self.awaiting.len()
    }

    /// Items waiting for `user` (on its home core).
    pub fn queued_for(&self, user: UserId) -> usize {
        self.queue.len(user)
    }

    /// Cores of the engine.
    pub fn cores(&self) -> u16 {
        self.config.cores
    }

    /// Bytes waiting in connections' outbound buffers, and connections whose buffer is full (metrics; O(n)).
    pub fn outbound_backlog(&self) -> (u64, u64) {
        self.conns.outbound_totals(OUTBOUND_BYTES_MAX)
    }

    /// Messages waiting in the outbox for `peer`.
    pub fn outbox_len(&self, peer: ShardId) -> usize {
        self.outboxes.get(peer.index()).map_or(0, Outbox::len)
    }

    /// Requests among the messages waiting in the outbox for `peer` (what `MESH_OUTBOX_REQUESTS_MAX` bounds).
    pub fn outbox_requests(&self, peer: ShardId) -> usize {
        self.outboxes.get(peer.index()).map_or(0, Outbox::requests)
    }

    // ---- inputs ---------------------------------------------------------------------------------------

    /// A new socket was accepted on this core; its source address is not known.
    pub fn handle_accept(&mut self, now: Now) -> Result<ConnId, ConnectionsFull> {
        self.handle_accept_from(SourceKey::UNKNOWN, now)
    }

    /// A new socket from `source` was accepted on this core.
    pub fn handle_accept_from(&mut self, source: SourceKey, now: Now) -> Result<ConnId, ConnectionsFull> {
        if self.conns.len() >= CONNECTIONS_PER_SHARD_MAX {
            return Err(ConnectionsFull { max: CONNECTIONS_PER_SHARD_MAX });
        }
        let conn = self.conns.insert(Connection::new(now.mono_us, source));
        self.handshake_deadlines.push_back((now.mono_us + self.config.handshake_timeout_us, conn));
        self.stats.accepted += 1;
        if self.shutting_down {
            self.goaway(conn, GoawayReason::ShuttingDown);
        }
        Ok(conn)
    }

    /// A socket logged in on another core arrived here, the user's home core.
    pub fn handle_adopt(&mut self, handoff: Handoff, now: Now) -> Result<ConnId, ConnectionsFull> {
        debug_assert_eq!(handoff.to, self.id);
        if self.conns.len() >= CONNECTIONS_PER_SHARD_MAX {
            return Err(ConnectionsFull { max: CONNECTIONS_PER_SHARD_MAX });
        }
        let conn = self.conns.insert(Connection::new(now.mono_us, handoff.source));
        self.stats.adopted += 1;
        if handoff.registering {
            // Still not logged in: the handshake deadline starts again here, where the socket now is.
            self.handshake_deadlines.push_back((now.mono_us + self.config.handshake_timeout_us, conn));
            self.process_input(conn, &handoff.leftover, now);
        } else if self.activate(conn, handoff.user, handoff.generation, now) == Flow::Continue
            && !handoff.leftover.is_empty()
        {
            self.process_input(conn, &handoff.leftover, now);
        }
        self.run_local(now);
        Ok(conn)
    }

    /// Bytes read from a connection's socket.
    pub fn handle_bytes(&mut self, conn: ConnId, bytes: &[u8], now: Now) {
        self.process_input(conn, bytes, now);
        self.run_local(now);
    }

    /// The connection's socket is closed (by the peer, by an error, or by the runtime on `Close*`).
    pub fn handle_closed(&mut self, conn: ConnId) {
        let Some(connection) = self.conns.remove(conn) else { return };
        let user = connection.user();
        self.buffers.give(connection.outbound);
        self.buffers.give(connection.partial);
        self.stats.closed += 1;
        self.handoffs.remove(&conn);
        if let Some(user) = user {
            self.end_session(user, conn);
        }
    }

    /// The runtime wrote the first `written` bytes of `outbound(conn)`.
    pub fn consume_outbound(&mut self, conn: ConnId, written: usize, now: Now) {
        let Some(connection) = self.conns.get_mut(conn) else { return };
        let was_full = connection.outbound.len() >= OUTBOUND_BYTES_MAX;
        if written > 0 {
            connection.last_written_us = now.mono_us;
        }
        connection.outbound.drain(..written.min(connection.outbound.len()));
        if connection.outbound.is_empty() {
            // An idle connection owns no buffer.
            self.buffers.give(std::mem::take(&mut connection.outbound));
        }
        if let Some(user) = connection.user() {
            self.fill_deliveries(user);
        }
        if was_full {
            self.resume(conn, now);
        }
        self.run_local(now);
    }

    /// A batch of messages from core `from`.
    pub fn handle_mesh(&mut self, from: ShardId, batch: Vec<ShardMsg>, now: Now) {
        self.stats.mesh_received += batch.len() as u64;
        for message in batch {
            self.handle_message(from, message, now);
        }
        self.run_local(now);
    }

    /// Runs timers: handshake and idle timeouts, dedup and age expiry. Call every tick.
    pub fn handle_timeout(&mut self, now: Now) {
        while let Some(&(deadline, conn)) = self.handshake_deadlines.front() {
            if deadline > now.mono_us {
                break;
            }
            self.handshake_deadlines.pop_front();
            if self.conns.get(conn).is_some_and(|c| c.stage == Stage::Handshaking) {
                self.fail(conn, ErrorCode::HandshakeTimeout, "no HELLO within the handshake timeout");
            }
        }
        self.sweep_idle(now);
        self.registrar.tick(now.mono_us);
        self.dedup.expire(now.mono_us);
        let (log, awaiting) = (&mut self.log, &mut self.awaiting);
        // An expired message leaves the log only once its sender's receipt is durable (`ReceiptStored`).
        for expired in self.queue.expire_with(now.wall_us, |user, item| match item {
            Item::Message { .. } => awaiting.hold(user, item),
            Item::Receipt { .. } => {
                log.append_removed(user, &item);
            }
        }) {
            self.stats.expired += 1;
            let receipt = ShardMsg::Receipt {
                to: expired.sender,
                server_id: expired.server_id,
                peer: expired.recipient,
                kind: ReceiptKind::Expired,
                time_us: now.wall_us,
            };
            self.send_to_home(expired.sender, receipt);
        }
        self.run_local(now);
    }

    /// A count that moves whenever the core does work for clients (connections accepted and closed, SENDs,
    /// deliveries, messages from other cores): equal counts at two moments mean the core was quiet between.
    pub fn activity(&self) -> u64 {
        let stats = &self.stats;
        stats.accepted
            + stats.adopted
            + stats.closed
            + stats.messages_in
            + stats.deliveries_written
            + stats.mesh_received
    }

    /// Gives back memory a burst left behind: frees pooled buffers beyond `POOLED_BUFFERS_RESERVE` and
    /// shrinks this core's tables and queues whose room is far above what they hold now
    /// (`memory_trim`). Costs O(entries) of the containers it shrinks, nothing for the others. Returns how
    /// many it shrank. The runtime calls it every `MEMORY_TRIM_INTERVAL`, then asks the allocator to return
    /// the freed pages.
    pub fn trim_memory(&mut self) -> usize {
        use crate::memory_trim::shrink_if_oversized as shrink;
        self.buffers.trim(POOLED_BUFFERS_RESERVE);
        let mut shrunk = self.dedup.shrink_if_oversized();
        shrunk += usize::from(self.queue.shrink_if_oversized());
        shrunk += self.outboxes.iter_mut().map(|outbox| usize::from(outbox.shrink_if_oversized())).sum::<usize>();
        shrunk += self.mesh_waiters.iter_mut().map(|waiters| usize::from(shrink(waiters))).sum::<usize>();
        shrunk += usize::from(shrink(&mut self.sessions));
        shrunk += usize::from(shrink(&mut self.handoffs));
        shrunk += usize::from(shrink(&mut self.handshake_deadlines));
        shrunk += usize::from(shrink(&mut self.undurable_items));
        shrunk += usize::from(shrink(&mut self.local));
        shrunk += usize::from(shrink(&mut self.wakeups));
        shrunk += usize::from(shrink(&mut self.released_scratch));
        shrunk += usize::from(shrink(&mut self.users_scratch));
        shrunk
    }

    /// Looks at a share of the connection slots proportional to the time since the last sweep, so every slot
    /// is looked at once per idle timeout: an idle connection is closed between one and two idle timeouts
    /// after it last made progress (a frame received, or outbound bytes taken by its socket), at no memory
    /// cost per connection (a timer per connection would cost some, and a heap of deadlines keeps entries of
    /// closed connections around through a reconnect storm).
    ///
    /// An idle connection gets GOAWAY(IdleTimeout); one whose outbound buffer is full (it stopped reading,
    /// so the server stopped reading it) gets ERROR(Overloaded) after its backlog, and is closed once that
    /// frame is written.
    fn sweep_idle(&mut self, now: Now) {
        let elapsed = now.mono_us.saturating_sub(self.idle_sweep_us);
        let slots = self.conns.slot_count();
        let share = (slots as u128 * u128::from(elapsed)).div_ceil(u128::from(self.config.idle_timeout_us.max(1)));
        let count = usize::try_from(share).unwrap_or(usize::MAX).min(slots);
        if count == 0 {
            return;
        }
        self.idle_sweep_us = now.mono_us;
        for _ in 0..count {
            if self.idle_sweep_cursor >= slots {
                self.idle_sweep_cursor = 0;
            }
            let index = self.idle_sweep_cursor;
            self.idle_sweep_cursor += 1;
            let Some(conn) = self.conns.id_at(index) else { continue };
            let Some(connection) = self.conns.get(conn) else { continue };
            let idle = connection.last_progress_us().saturating_add(self.config.idle_timeout_us) <= now.mono_us;
            if connection.user().is_some() && idle {
                self.stats.timeouts_idle += 1;
                if connection.outbound.len() >= OUTBOUND_BYTES_MAX {
                    // Not idle but stalled: it sends (or sent) frames and reads none of the answers, so the
                    // server stopped reading it. Say so, after what it has not read yet.
                    let text = format!(
                        "the client read nothing for the idle timeout while {} bytes waited for it",
                        connection.outbound.len()
                    );
                    self.fail(conn, ErrorCode::Overloaded, &text);
                } else {
                    self.goaway(conn, GoawayReason::IdleTimeout);
                }
            }
        }
    }

    /// SIGTERM: refuse new connections and SENDs, let SENDs in flight finish, then GOAWAY everyone.
    pub fn begin_shutdown(&mut self, now: Now) {
        self.shutting_down = true;
        for conn in self.conns.ids() {
            self.goaway_when_settled(conn);
        }
        self.run_local(now);
    }

    /// Shutdown grace is over: every connection closes now.
    pub fn close_all_now(&mut self) {
        for conn in self.conns.ids() {
            self.close_after_flush(conn);
            if let Some(connection) = self.conns.get_mut(conn) {
                connection.close_now = true;
            }
        }
    }

    /// Every open connection (for a census when a shutdown stalls; allocates).
    pub fn connection_ids(&self) -> Vec<ConnId> {
        self.conns.ids()
    }

    /// Whether `begin_shutdown` was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// No connection left and nothing waiting to go to another core.
    pub fn is_quiesced(&self) -> bool {
        self.shutdown_left().is_empty()
    }

    /// What keeps this core from quiescing.
    pub fn shutdown_left(&self) -> ShutdownLeft {
        ShutdownLeft {
            connections: self.conns.len(),
            local_messages: self.local.len(),
            outbox_messages: self.outboxes.iter().map(Outbox::len).sum(),
            log_busy: !self.log.is_idle(),
            device_records: self.device_records.len(),
        }
    }

    // ---- the log --------------------------------------------------------------------------------------

    /// The next group of log records to write and fdatasync, if no write is in flight. The runtime calls
    /// `handle_wal_done` once it is durable, or `handle_wal_failed` and retries the same write.
    pub fn poll_wal_write(&mut self) -> Option<PendingWrite> {
        self.log.poll_write()
    }

    /// What an ACK promises on this core.
    pub fn durability(&self) -> Durability {
        self.log.durability()
    }

    /// Whether log records wait for `poll_wal_write`.
    pub fn wal_pending(&self) -> bool {
        self.log.has_pending()
    }

    /// The log is durable up to `lsn`: answers held for it go out; a compaction may start.
    pub fn handle_wal_done(&mut self, lsn: u64, now: Now) {
        let mut released = std::mem::take(&mut self.released_scratch);
        self.log.handle_write_done(lsn, &mut released);
        for (to, message) in released.drain(..) {
            self.send_to_shard(to, message);
        }
        self.released_scratch = released;
        let mut users = std::mem::take(&mut self.users_scratch);
        while let Some(&(item_lsn, seq, user)) = self.undurable_items.front() {
            if item_lsn > lsn {
                break;
            }
            self.undurable_items.pop_front();
            debug_assert!(seq > self.durable_item_seq, "item sequence numbers only increase");
            self.durable_item_seq = seq;
            users.push(user);
        }
        users.sort_unstable();
        users.dedup();
        for user in users.drain(..) {
            self.fill_deliveries(user);
        }
        self.users_scratch = users;
        if self.log.wants_compaction() {
            self.log.compact(self.item_seq + 1, self.awaiting.iter().chain(self.queue.iter()));
        }
        self.run_local(now);
    }

    /// The write in flight failed (disk full, I/O error). Until a write succeeds, new messages for this
    /// core's users are refused with `StorageUnavailable`; deliveries go on.
    pub fn handle_wal_failed(&mut self) {
        self.log.handle_write_failed();
    }

    /// Whether log writes are failing.
    pub fn wal_failed(&self) -> bool {
        self.log.is_failed()
    }

    /// Log segments the runtime may delete now (a compaction made them redundant).
    pub fn poll_wal_deletions(&mut self, out: &mut Vec<u64>) {
        self.log.poll_deletions(out);
    }

    /// Counters of this core's log.
    pub fn wal_stats(&self) -> LogStats {
        self.log.stats()
    }

    /// Bytes in this core's log segments, and bytes the queued items' records take.
    pub fn wal_bytes(&self) -> (u64, u64) {
        self.log.bytes()
    }

    // ---- outputs --------------------------------------------------------------------------------------

    /// Encoded frames waiting to be written to `conn`.
    pub fn outbound(&self, conn: ConnId) -> &[u8] {
        self.conns.get(conn).map_or(&[], |connection| &connection.outbound)
    }

    pub fn conn_status(&self, conn: ConnId) -> ConnStatus {
        let Some(connection) = self.conns.get(conn) else { return ConnStatus::Gone };
        if connection.close_now {
            return ConnStatus::CloseNow;
        }
        match connection.stage {
            Stage::Closing => ConnStatus::CloseAfterFlush,
            Stage::HandingOff => ConnStatus::HandOff,
            Stage::Handshaking | Stage::Active { .. } => ConnStatus::Open { may_read: self.may_read(connection) },
        }
    }

    /// Connections with news (bytes to write, reading resumed, closing) since the last call.
    pub fn poll_wakeups(&mut self, out: &mut Vec<ConnId>) {
        out.append(&mut self.wakeups);
    }

    /// Removes a connection in `HandOff` status and returns where its socket goes. The runtime sends the
    /// socket and this handoff to that core, which calls `handle_adopt`.
    pub fn take_handoff(&mut self, conn: ConnId) -> Option<Handoff> {
        let handoff = self.handoffs.remove(&conn)?;
        if let Some(connection) = self.conns.remove(conn) {
            self.buffers.give(connection.outbound);
            self.buffers.give(connection.partial);
        }
        self.stats.handoffs_out += 1;
        Some(handoff)
    }

    /// Peers whose outbox became non-empty since the last call.
    pub fn poll_mesh_ready(&mut self, out: &mut Vec<ShardId>) {
        for (index, ready) in self.mesh_ready.iter_mut().enumerate() {
            if std::mem::take(ready) {
                out.push(ShardId(index as u16));
            }
        }
    }

    /// Moves up to a batch of messages for `peer` into `batch`. Returns whether more are waiting.
    pub fn poll_mesh(&mut self, peer: ShardId, batch: &mut Vec<ShardMsg>, now: Now) -> bool {
        let Some(outbox) = self.outboxes.get_mut(peer.index()) else { return false };
        let before = outbox.len();
        outbox.take_batch(batch, MESH_BATCH_MESSAGES_MAX);
        self.stats.mesh_sent += (before - outbox.len()) as u64;
        let more = !outbox.is_empty();
        if outbox.requests() < MESH_OUTBOX_REQUESTS_MAX {
            for conn in std::mem::take(&mut self.mesh_waiters[peer.index()]) {
                if let Some(connection) = self.conns.get_mut(conn) {
                    connection.paused_for_mesh = false;
                }
                self.resume(conn, now);
            }
            self.run_local(now);
        }
        more
    }

    // ---- connection input -----------------------------------------------------------------------------

    fn may_read(&self, connection: &Connection) -> bool {
        !self.shutting_down
            && !connection.paused_for_mesh
            && !connection.awaits_registration_answer()
            && connection.sends_inflight < SEND_INFLIGHT_MAX
            && connection.outbound.len() < OUTBOUND_BYTES_MAX
            && matches!(connection.stage, Stage::Handshaking | Stage::Active { .. })
    }

    /// Processes `bytes` after whatever the connection kept from earlier reads. What is left (a partial
    /// frame, or frames held back while paused) is kept in a pooled buffer, and only then.
    fn process_input(&mut self, conn: ConnId, bytes: &[u8], now: Now) {
        let Some(connection) = self.conns.get_mut(conn) else { return };
        let mut kept = std::mem::take(&mut connection.partial);
        let from_kept = !kept.is_empty();
        if from_kept {
            kept.extend_from_slice(bytes);
        }
        let input: &[u8] = if from_kept { &kept } else { bytes };
        let used = self.process_frames(conn, input, now);
        let rest = &input[used..];
        let Some(connection) = self.conns.get_mut(conn) else {
            self.buffers.give(kept);
            return;
        };
        match connection.stage {
            Stage::HandingOff => {
                if let Some(handoff) = self.handoffs.get_mut(&conn) {
                    handoff.leftover = if handoff.leftover.is_empty() {
                        rest.into()
                    } else {
                        [&handoff.leftover[..], rest].concat().into_boxed_slice()
                    };
                }
            }
            Stage::Closing => {}
            Stage::Handshaking | Stage::Active { .. } if !rest.is_empty() => {
                if from_kept {
                    kept.drain(..used);
                    connection.partial = kept;
                    return;
                }
                let mut buffer = self.buffers.take();
                buffer.extend_from_slice(rest);
                connection.partial = buffer;
            }
            Stage::Handshaking | Stage::Active { .. } => {}
        }
        self.buffers.give(kept);
    }

    /// Decodes and handles frames while the connection may go on; returns the bytes used.
    fn process_frames(&mut self, conn: ConnId, input: &[u8], now: Now) -> usize {
        let mut used = 0;
        loop {
            let Some(connection) = self.conns.get(conn) else { return used };
            if !self.may_process(connection) {
                return used;
            }
            match wire::decode_client(&input[used..], self.config.frame_size_max) {
                Ok(Decoded::Frame { frame, consumed }) => {
                    used += consumed;
                    if let Some(connection) = self.conns.get_mut(conn) {
                        connection.last_frame_us = now.mono_us;
                    }
                    if self.handle_frame(conn, frame, now) == Flow::Stop {
                        return used;
                    }
                }
                Ok(Decoded::Incomplete { .. }) => return used,
                Err(error) => {
                    self.fail(conn, error.error_code(), &error.to_string());
                    return input.len();
                }
            }
        }
    }

    /// Like `may_read`, but for frames already read: a full outbound buffer does not stop processing
    /// (the frames are in memory already and their answers are bounded by the read).
    fn may_process(&self, connection: &Connection) -> bool {
        !self.shutting_down
            && !connection.paused_for_mesh
            && !connection.awaits_registration_answer()
            && connection.sends_inflight < SEND_INFLIGHT_MAX
            && matches!(connection.stage, Stage::Handshaking | Stage::Active { .. })
    }

    /// Resumes processing of input held back while the connection was paused.
    fn resume(&mut self, conn: ConnId, now: Now) {
        let Some(connection) = self.conns.get(conn) else { return };
        if !connection.partial.is_empty() && self.may_process(connection) {
            self.process_input(conn, &[], now);
        }
        self.wakeups.push(conn);
    }

    fn handle_frame(&mut self, conn: ConnId, frame: ClientFrame<'_>, now: Now) -> Flow {
        let Some(connection) = self.conns.get(conn) else { return Flow::Stop };
        let user = match connection.stage {
            Stage::Handshaking => {
                return match frame {
                    ClientFrame::RegisterRequest { .. } | ClientFrame::RegisterVerify { .. } => {
                        self.handle_register(conn, frame, now)
                    }
                    // "At any time": a client may check the link before it logs in. The handshake
                    // deadline still counts from accept.
                    ClientFrame::Ping { nonce } => {
                        self.write(conn, &ServerFrame::Pong { nonce });
                        Flow::Continue
                    }
                    ClientFrame::Pong { .. } => Flow::Continue,
                    _ => self.handle_hello(conn, frame, now),
                };
            }
            Stage::Active { user } => user,
            Stage::HandingOff | Stage::Closing => return Flow::Stop,
        };
        match frame {
            ClientFrame::Hello { .. } => {
                self.fail(conn, ErrorCode::UnexpectedFrame, "HELLO on a connection that is logged in");
                Flow::Stop
            }
            ClientFrame::RegisterRequest { .. } | ClientFrame::RegisterVerify { .. } => {
                self.fail(conn, ErrorCode::UnexpectedFrame, "registration on a connection that is logged in");
                Flow::Stop
            }
            ClientFrame::Ping { nonce } => {
                self.write(conn, &ServerFrame::Pong { nonce });
                Flow::Continue
            }
            ClientFrame::Pong { .. } => Flow::Continue,
            ClientFrame::Send { client_msg_id, to, body } => self.handle_send(conn, user, client_msg_id, to, body, now),
            ClientFrame::Delivered { item_id } => {
                self.handle_delivered(conn, user, item_id, now);
                self.paused_flow(conn)
            }
            ClientFrame::Read { server_id, sender } => {
                self.handle_read(conn, user, server_id, sender, now);
                self.paused_flow(conn)
            }
        }
    }

    /// `Stop` if the connection got paused while handling a frame.
    fn paused_flow(&self, conn: ConnId) -> Flow {
        match self.conns.get(conn) {
            Some(connection) if self.may_process(connection) => Flow::Continue,
            _ => Flow::Stop,
        }
    }

    fn handle_hello(&mut self, conn: ConnId, frame: ClientFrame<'_>, now: Now) -> Flow {
        let ClientFrame::Hello { version, user, key } = frame else {
            self.fail(conn, ErrorCode::UnexpectedFrame, "the first frame must be HELLO");
            return Flow::Stop;
        };
        if version != wire::PROTOCOL_VERSION {
            self.fail(conn, ErrorCode::UnsupportedVersion, "this server speaks protocol version 1");
            return Flow::Stop;
        }
        // A key's MAC proves the server issued it: generation 0 to provisioned users, later generations by
        // registration. Whether the generation is still current is the home core's to say (`activate`).
        let Some(generation) = self
            .config
            .keys
            .verify(user, &key)
            .filter(|&generation| generation > 0 || self.config.directory.contains(user))
        else {
            self.fail(conn, ErrorCode::AuthFailed, "unknown user or wrong device key");
            return Flow::Stop;
        };
        let home = home_core(user, self.config.cores);
        if home == self.id {
            return self.activate(conn, user, generation, now);
        }
        if let Some(connection) = self.conns.get_mut(conn) {
            connection.stage = Stage::HandingOff;
        }
        let source = self.conns.get(conn).map_or(SourceKey::UNKNOWN, |connection| connection.source);
        self.handoffs
            .insert(conn, Handoff { to: home, user, generation, leftover: Box::default(), registering: false, source });
        self.wakeups.push(conn);
        Flow::Stop
    }

    /// REGISTER_REQUEST or REGISTER_VERIFY on a connection that has not logged in. Decided on the phone's
    /// home core (the connection moves there first); refusals keep the connection open.
    fn handle_register(&mut self, conn: ConnId, frame: ClientFrame<'_>, now: Now) -> Flow {
        let phone = match frame {
            ClientFrame::RegisterRequest { phone } | ClientFrame::RegisterVerify { phone, .. } => phone,
            _ => return Flow::Continue,
        };
        let source = self.conns.get(conn).map_or(SourceKey::UNKNOWN, |connection| connection.source);
        if !is_phone(phone) {
            self.refuse_registration(conn, phone, Refusal { code: RegisterRefusal::PhoneInvalid, retry_after_s: 0 });
            return Flow::Continue;
        }
        let home = home_core(phone, self.config.cores);
        if home != self.id {
            let mut replay = Vec::new();
            wire::encode_client(&frame, &mut replay);
            if let Some(connection) = self.conns.get_mut(conn) {
                connection.stage = Stage::HandingOff;
            }
            let handoff = Handoff {
                to: home,
                user: phone,
                generation: 0,
                leftover: replay.into_boxed_slice(),
                registering: true,
                source,
            };
            self.handoffs.insert(conn, handoff);
            self.wakeups.push(conn);
            return Flow::Stop;
        }
        match frame {
            ClientFrame::RegisterRequest { .. } => match self.registrar.request(phone, source, now.mono_us) {
                Ok(issued) => {
                    if let Some(connection) = self.conns.get_mut(conn) {
                        connection.awaiting_pin_handover = true;
                        self.pins_to_send.push_back((conn, issued));
                    }
                }
                Err(refusal) => self.refuse_registration(conn, phone, refusal),
            },
            ClientFrame::RegisterVerify { .. } if self.device_records.is_pending(phone) => {
                // The phone's last generation is still on its way to disk: the PIN stays unused for a retry.
                self.refuse_registration(conn, phone, Refusal { code: RegisterRefusal::Unavailable, retry_after_s: 1 });
            }
            ClientFrame::RegisterVerify { pin, .. } => match self.registrar.verify(phone, pin, source, now.mono_us) {
                Ok(()) => self.register_device(conn, phone),
                Err(refusal) => self.refuse_registration(conn, phone, refusal),
            },
            _ => {}
        }
        // Stops at a REGISTER_VERIFY waiting for its record: what the client sent after it waits for the answer.
        self.paused_flow(conn)
    }

    /// The PIN was right: a new device generation for `phone`, to be made durable (`poll_device_records`); the
    /// connection reads nothing more until the answer (`handle_device_recorded`).
    fn register_device(&mut self, conn: ConnId, phone: UserId) {
        // A 32-bit generation per phone. The last one cannot be followed: issuing it again would hand the new
        // device the old device's key and revoke nothing.
        let Some(generation) = self.generations.get(&phone).copied().unwrap_or(0).checked_add(1) else {
            tracing::warn!(core = %self.id, phone, "every device generation of this phone is used; registration refused");
            self.refuse_registration(conn, phone, Refusal { code: RegisterRefusal::Unavailable, retry_after_s: 3600 });
            return;
        };
        match self.device_records.try_add(DeviceRecord { phone, generation }, conn) {
            Ok(()) => {
                if let Some(connection) = self.conns.get_mut(conn) {
                    connection.awaiting_device_record = true;
                }
            }
            Err(NotTaken::PhoneBusy | NotTaken::Full) => {
                self.refuse_registration(conn, phone, Refusal { code: RegisterRefusal::Unavailable, retry_after_s: 1 });
            }
        }
    }

    /// The next PIN to get to its phone, with the connection that asked for it. The runtime hands it to the
    /// PIN sender (never waiting) and answers with `handle_pin_handed_over` or `handle_pin_not_handed_over`;
    /// until then the connection reads nothing more. At most one per connection.
    pub fn poll_pin(&mut self) -> Option<(ConnId, IssuedPin)> {
        self.pins_to_send.pop_front()
    }

    /// Whether PINs wait for `poll_pin`.
    pub fn has_pins_to_send(&self) -> bool {
        !self.pins_to_send.is_empty()
    }

    /// The PIN sender took `issued`: the connection gets PIN_SENT.
    pub fn handle_pin_handed_over(&mut self, conn: ConnId, issued: IssuedPin, now: Now) {
        if self.end_pin_wait(conn) {
            self.stats.pins_sent += 1;
            self.write(conn, &ServerFrame::PinSent { phone: issued.phone, expires_in_s: issued.expires_in_s });
        }
        self.after_registration_answer(conn, now);
    }

    /// The PIN sender could not take `issued` (its queue is full): REGISTER_REFUSED(Unavailable), retry in 5 s.
    pub fn handle_pin_not_handed_over(&mut self, conn: ConnId, issued: IssuedPin, now: Now) {
        if self.end_pin_wait(conn) {
            let refusal = Refusal { code: RegisterRefusal::Unavailable, retry_after_s: 5 };
            self.refuse_registration(conn, issued.phone, refusal);
        }
        self.after_registration_answer(conn, now);
    }

    /// Whether `conn` is still open and was waiting for its PIN's handover (it may read again).
    fn end_pin_wait(&mut self, conn: ConnId) -> bool {
        match self.conns.get_mut(conn) {
            Some(connection) if connection.awaiting_pin_handover => {
                connection.awaiting_pin_handover = false;
                connection.stage != Stage::Closing
            }
            _ => false,
        }
    }

    /// New device generations to append to this core's device log and make durable, oldest first, each once.
    /// The runtime answers each with `handle_device_recorded` or `handle_device_record_failed`; until then the
    /// generation is not current (the old key still logs in, the new one does not) and its REGISTERED waits.
    pub fn poll_device_records(&mut self, out: &mut Vec<DeviceRecord>) {
        self.device_records.poll(out);
    }

    /// Whether device records wait for `poll_device_records`.
    pub fn device_records_waiting(&self) -> bool {
        self.device_records.has_unpolled()
    }

    /// `record` is durable: its generation is current, every older key of the phone is revoked (a live
    /// session of the old device gets GOAWAY(Revoked)) and the registering connection gets REGISTERED.
    pub fn handle_device_recorded(&mut self, record: DeviceRecord, now: Now) {
        let Some(conn) = self.device_records.settle(record) else { return };
        let DeviceRecord { phone, generation } = record;
        assert!(generation > self.generations.get(&phone).copied().unwrap_or(0), "device generations only increase");
        self.generations.insert(phone, generation);
        self.stats.registrations += 1;
        if let Some(&previous) = self.sessions.get(&phone) {
            self.stats.revoked += 1;
            self.goaway(previous, GoawayReason::Revoked);
        }
        if self.end_device_wait(conn) {
            let key = self.config.keys.derive(phone, generation);
            self.write(conn, &ServerFrame::Registered { user: phone, key });
        }
        self.after_registration_answer(conn, now);
    }

    /// `record` could not be made durable: nothing changes for the phone (its current key goes on working)
    /// and the registering connection gets REGISTER_REFUSED(Unavailable).
    pub fn handle_device_record_failed(&mut self, record: DeviceRecord, now: Now) {
        let Some(conn) = self.device_records.settle(record) else { return };
        tracing::warn!(core = %self.id, phone = record.phone, "cannot record a new device; registration refused");
        if self.end_device_wait(conn) {
            let refusal = Refusal { code: RegisterRefusal::Unavailable, retry_after_s: 30 };
            self.refuse_registration(conn, record.phone, refusal);
        }
        self.after_registration_answer(conn, now);
    }

    /// Whether `conn` is still open and was waiting for its device record (it may read again).
    fn end_device_wait(&mut self, conn: ConnId) -> bool {
        match self.conns.get_mut(conn) {
            Some(connection) if connection.awaiting_device_record => {
                connection.awaiting_device_record = false;
                connection.stage != Stage::Closing
            }
            _ => false,
        }
    }

    /// After a registration step's answer: input held back goes on, or GOAWAY once settled during a shutdown.
    fn after_registration_answer(&mut self, conn: ConnId, now: Now) {
        if self.shutting_down {
            self.goaway_when_settled(conn);
        } else {
            self.resume(conn, now);
        }
        self.run_local(now);
    }

    fn refuse_registration(&mut self, conn: ConnId, phone: UserId, refusal: Refusal) {
        self.stats.registrations_refused += 1;
        self.write(
            conn,
            &ServerFrame::RegisterRefused { phone, code: refusal.code, retry_after_s: refusal.retry_after_s },
        );
    }

    /// Whether `user` exists: provisioned, or registered on this, its home core.
    fn user_exists(&self, user: UserId) -> bool {
        self.config.directory.contains(user) || self.generations.contains_key(&user)
    }

    /// Makes `conn` the session of `user` on this, the user's home core.
    fn activate(&mut self, conn: ConnId, user: UserId, generation: u32, now: Now) -> Flow {
        debug_assert_eq!(home_core(user, self.config.cores), self.id);
        if generation != self.generations.get(&user).copied().unwrap_or(0) {
            self.fail(conn, ErrorCode::AuthFailed, "this device key was revoked");
            return Flow::Stop;
        }
        if self.shutting_down {
            self.goaway(conn, GoawayReason::ShuttingDown);
            return Flow::Stop;
        }
        if let Some(previous) = self.sessions.insert(user, conn)
            && previous != conn
        {
            // The session already points at `conn`, so closing the old one does not end it.
            self.stats.replaced += 1;
            self.goaway(previous, GoawayReason::Replaced);
        }
        let Some(connection) = self.conns.get_mut(conn) else { return Flow::Stop };
        connection.stage = Stage::Active { user };
        connection.last_frame_us = now.mono_us;
        self.stats.logins += 1;
        self.queue.rewind(user);
        let queued = u32::try_from(self.queue.len(user)).unwrap_or(u32::MAX);
        self.write(
            conn,
            &ServerFrame::Welcome { version: wire::PROTOCOL_VERSION, server_time_us: now.wall_us, queued },
        );
        self.fill_deliveries(user);
        Flow::Continue
    }

    fn handle_send(
        &mut self,
        conn: ConnId,
        sender: UserId,
        client_msg_id: u64,
        to: UserId,
        body: &[u8],
        now: Now,
    ) -> Flow {
        self.stats.messages_in += 1;
        if body.is_empty() {
            self.reject(conn, client_msg_id, RejectCode::BodyInvalid);
            return Flow::Continue;
        }
        let fingerprint = send_fingerprint(to, body);
        match self.dedup.look_up(sender, client_msg_id, fingerprint) {
            Seen::Answered(prior) => {
                self.stats.duplicates_suppressed += 1;
                self.answer(conn, client_msg_id, prior);
                return Flow::Continue;
            }
            Seen::InFlight => {
                // This copy is answered on its own connection when the first copy's answer comes.
                self.stats.duplicates_suppressed += 1;
                self.dedup.join(sender, client_msg_id, conn);
                if let Some(connection) = self.conns.get_mut(conn) {
                    connection.sends_inflight += 1;
                }
                return self.paused_flow(conn);
            }
            Seen::Reused => {
                self.reject(conn, client_msg_id, RejectCode::ClientMsgIdReused);
                return Flow::Continue;
            }
            Seen::New => {}
        }
        if self.queue.receipts(sender) >= SENDER_RECEIPTS_MAX {
            self.reject(conn, client_msg_id, RejectCode::SenderBacklogFull);
            return Flow::Continue;
        }
        self.dedup.begin(sender, client_msg_id, fingerprint, now.mono_us);
        if let Some(connection) = self.conns.get_mut(conn) {
            connection.sends_inflight += 1;
        }
        let store = ShardMsg::Store { sender, client_msg_id, origin: conn, to, body: body.into() };
        self.send_request(conn, to, store);
        self.paused_flow(conn)
    }

    fn handle_delivered(&mut self, conn: ConnId, user: UserId, item_id: u64, now: Now) {
        let Some(item) = self.queue.acknowledge(user, item_id) else {
            self.stats.delivered_refused += 1;
            tracing::debug!(core = %self.id, user, item_id, "DELIVERED refused: no such item written to this connection");
            return;
        };
        match item {
            Item::Message { id, from, .. } => {
                self.stats.messages_delivered += 1;
                self.unread.remember(user, id, from);
                let receipt = ShardMsg::Receipt {
                    to: from,
                    server_id: id,
                    peer: user,
                    kind: ReceiptKind::Delivered,
                    time_us: now.wall_us,
                };
                self.send_request(conn, from, receipt);
                // Its `Removed` record waits for the receipt's record to be durable (`ReceiptStored`).
                self.awaiting.hold(user, item);
            }
            Item::Receipt { .. } => {
                self.log.append_removed(user, &item);
            }
        }
        self.fill_deliveries(user);
    }

    /// READ from `user`: a Read receipt for `sender` only if `server_id` is a message from `sender`
    /// delivered to `user` and not read yet (this core stored and delivered it: the user's home core).
    fn handle_read(&mut self, conn: ConnId, user: UserId, server_id: u64, sender: UserId, now: Now) {
        if !self.unread.take(user, server_id, sender) {
            self.stats.read_refused += 1;
            tracing::debug!(
                core = %self.id, user, server_id, sender,
                "READ refused: not a message from that sender delivered to this user and unread"
            );
            return;
        }
        let receipt =
            ShardMsg::Receipt { to: sender, server_id, peer: user, kind: ReceiptKind::Read, time_us: now.wall_us };
        self.send_request(conn, sender, receipt);
    }

    // ---- messages between cores -----------------------------------------------------------------------

    fn handle_message(&mut self, from: ShardId, message: ShardMsg, now: Now) {
        match message {
            ShardMsg::Store { sender, client_msg_id, origin, to, body } => {
                match self.store(to, sender, client_msg_id, body, now) {
                    Ok((server_id, server_time_us, lsn)) => {
                        let answer = ShardMsg::Stored { sender, client_msg_id, origin, server_id, server_time_us };
                        if let Some((to, answer)) = self.log.answer_when_durable(lsn, from, answer) {
                            self.send_to_shard(to, answer);
                        }
                    }
                    Err(code) => self.send_to_shard(from, ShardMsg::Refused { sender, client_msg_id, origin, code }),
                }
            }
            ShardMsg::Stored { sender, client_msg_id, origin, server_id, server_time_us } => {
                let prior = PriorSend::Stored { server_id, server_time_us };
                self.answer_copies(sender, client_msg_id, origin, prior, now);
            }
            ShardMsg::Refused { sender, client_msg_id, origin, code } => {
                // Remembered, not forgotten: a retry already on its way (sent from a new connection before
                // this REJECT reached the client) would otherwise be tried afresh and could be stored, and if
                // its ACK were lost the client would hold a REJECT for a message that is delivered.
                self.answer_copies(sender, client_msg_id, origin, PriorSend::Refused { code }, now);
            }
            ShardMsg::Receipt { to, server_id, peer, kind, time_us } => {
                // The message waits on `peer`'s home core until this receipt is durable (Read ones do not).
                let answer = matches!(kind, ReceiptKind::Delivered | ReceiptKind::Expired)
                    .then_some(ShardMsg::ReceiptStored { recipient: peer, server_id });
                if !self.user_exists(to) {
                    // A sender that no longer exists: nobody to tell.
                    if let Some(answer) = answer {
                        self.send_to_shard(from, answer);
                    }
                    return;
                }
                self.stats.receipts_queued += 1;
                let id = self.next_item_id();
                let item = Item::Receipt { id, server_id, peer, kind, time_us };
                let lsn = self.log.append_item(&durability::item_record(to, &item));
                self.note_undurable(lsn, id, to);
                self.queue.push(to, item);
                self.fill_deliveries(to);
                if let Some((to, answer)) = answer.and_then(|answer| self.log.answer_when_durable(lsn, from, answer)) {
                    self.send_to_shard(to, answer);
                }
            }
            ShardMsg::ReceiptStored { recipient, server_id } => {
                if let Some(item) = self.awaiting.release(recipient, server_id) {
                    self.log.append_removed(recipient, &item);
                }
            }
        }
    }

    /// Puts a message in `to`'s queue on this, `to`'s home core, and appends it to the log. Returns its
    /// server id, time and log sequence number.
    fn store(
        &mut self,
        to: UserId,
        sender: UserId,
        client_msg_id: u64,
        body: Box<[u8]>,
        now: Now,
    ) -> Result<(u64, u64, u64), RejectCode> {
        debug_assert_eq!(home_core(to, self.config.cores), self.id);
        if !self.user_exists(to) {
            return Err(RejectCode::UnknownRecipient);
        }
        if self.log.is_failed() {
            return Err(RejectCode::StorageUnavailable);
        }
        self.queue.check_room(to, body.len(), self.awaiting.body_bytes())?;
        let id = self.next_item_id();
        let time_us = now.wall_us;
        let record = LogRecord::Message { item_id: id, to, sender, client_msg_id, time_us, body };
        let lsn = self.log.append_item(&record);
        self.note_undurable(lsn, id, to);
        let LogRecord::Message { body, .. } = record else { unreachable!("built as a message above") };
        self.queue.push(to, Item::Message { id, from: sender, client_msg_id, time_us, body });
        self.stats.messages_stored += 1;
        self.fill_deliveries(to);
        Ok((id, time_us, lsn))
    }

    /// The answer to a SEND came back: every copy of it is answered on the connection it came on, if that
    /// connection still serves the sender (a copy whose connection is gone is answered by the client's retry
    /// on its new one), and remembered for the copies still to come.
    fn answer_copies(&mut self, sender: UserId, client_msg_id: u64, origin: ConnId, prior: PriorSend, now: Now) {
        let settled = self.dedup.settle(sender, client_msg_id, prior, now.mono_us);
        if let (PriorSend::Stored { .. }, Some(since_us)) = (prior, settled.since_us) {
            self.stats.send_stored_us.record(now.mono_us.saturating_sub(since_us));
        }
        // Answer all before settling any: during shutdown, settling the last SEND of a connection ends its
        // session with GOAWAY, and an answer written after that would be lost.
        for &conn in std::iter::once(&origin).chain(&settled.copies) {
            if self.conns.get(conn).is_some_and(|connection| connection.stage == (Stage::Active { user: sender })) {
                self.answer(conn, client_msg_id, prior);
            } else if let PriorSend::Refused { code } = prior {
                self.stats.count_reject(code);
            }
        }
        for &conn in std::iter::once(&origin).chain(&settled.copies) {
            self.settle_send(conn, now);
        }
    }

    /// Writes the ACK or REJECT that `prior` says to `conn`.
    fn answer(&mut self, conn: ConnId, client_msg_id: u64, prior: PriorSend) {
        match prior {
            PriorSend::Stored { server_id, server_time_us } => {
                self.write(conn, &ServerFrame::Ack { client_msg_id, server_id, server_time_us });
            }
            PriorSend::Refused { code } => self.reject(conn, client_msg_id, code),
        }
    }

    /// One SEND of `origin` was answered.
    fn settle_send(&mut self, origin: ConnId, now: Now) {
        let Some(connection) = self.conns.get_mut(origin) else { return };
        let was_blocked = connection.sends_inflight >= SEND_INFLIGHT_MAX;
        connection.sends_inflight = connection.sends_inflight.saturating_sub(1);
        if self.shutting_down {
            self.goaway_when_settled(origin);
        } else if was_blocked {
            self.resume(origin, now);
        }
    }

    /// Item `id` of `user`, made here, waits for its record (`lsn`) before it is delivered.
    fn note_undurable(&mut self, lsn: u64, id: u64, user: UserId) {
        if self.log.durability().waits_for_sync() {
            self.undurable_items.push_back((lsn, id & ITEM_SEQ_MASK, user));
        }
    }

    fn next_item_id(&mut self) -> u64 {
        self.item_seq += 1;
        assert!(self.item_seq <= ITEM_SEQ_MASK, "item ids of one core fit in 48 bits");
        (u64::from(self.id.0) << 48) | self.item_seq
    }

    /// Queues a request for `user`'s home core on behalf of `conn`, pausing `conn` if that outbox is full.
    fn send_request(&mut self, conn: ConnId, user: UserId, message: ShardMsg) {
        let home = home_core(user, self.config.cores);
        self.send_to_shard(home, message);
        if home != self.id
            && self.outboxes[home.index()].requests() >= MESH_OUTBOX_REQUESTS_MAX
            && let Some(connection) = self.conns.get_mut(conn)
        {
            connection.paused_for_mesh = true;
            self.mesh_waiters[home.index()].push(conn);
        }
    }

    fn send_to_home(&mut self, user: UserId, message: ShardMsg) {
        self.send_to_shard(home_core(user, self.config.cores), message);
    }

    fn send_to_shard(&mut self, shard: ShardId, message: ShardMsg) {
        if shard == self.id {
            self.local.push_back(message);
        } else {
            self.outboxes[shard.index()].push(message);
            self.mesh_ready[shard.index()] = true;
        }
    }

    /// Handles messages this core sent to itself.
    fn run_local(&mut self, now: Now) {
        while let Some(message) = self.local.pop_front() {
            self.handle_message(self.id, message, now);
        }
    }

    // ---- connection output ----------------------------------------------------------------------------

    fn write(&mut self, conn: ConnId, frame: &ServerFrame<'_>) {
        let Some(connection) = self.conns.get_mut(conn) else { return };
        if connection.outbound.is_empty() {
            self.wakeups.push(conn);
            if connection.outbound.capacity() == 0 {
                connection.outbound = self.buffers.take();
            }
        }
        wire::encode_server(frame, &mut connection.outbound);
    }

    fn reject(&mut self, conn: ConnId, client_msg_id: u64, code: RejectCode) {
        self.stats.count_reject(code);
        self.write(conn, &ServerFrame::Reject { client_msg_id, code });
    }

    /// Writes queued items to `user`'s session while the window and the outbound buffer allow.
    fn fill_deliveries(&mut self, user: UserId) {
        let Some(&conn) = self.sessions.get(&user) else { return };
        let Some(connection) = self.conns.get_mut(conn) else { return };
        if connection.stage != (Stage::Active { user }) || self.shutting_down {
            return;
        }
        let was_empty = connection.outbound.is_empty();
        let (core, durable_seq) = (u64::from(self.id.0), self.durable_item_seq);
        let waits_for_sync = self.log.durability().waits_for_sync();
        // Items of other cores' ids were recovered, so durable; this core's are durable up to `durable_seq`.
        let durable =
            |item: &Item| !waits_for_sync || item.id() >> 48 != core || item.id() & ITEM_SEQ_MASK <= durable_seq;
        while connection.outbound.len() < OUTBOUND_BYTES_MAX && self.queue.unacknowledged(user) < DELIVERY_WINDOW_MAX {
            let Some(item) = self.queue.next_unwritten_if(user, durable) else { break };
            if connection.outbound.capacity() == 0 {
                connection.outbound = self.buffers.take();
            }
            let frame = match item {
                Item::Message { id, from, time_us, body, .. } => {
                    ServerFrame::Deliver { item_id: *id, from: *from, server_time_us: *time_us, body }
                }
                Item::Receipt { id, server_id, peer, kind, time_us } => ServerFrame::Receipt {
                    item_id: *id,
                    server_id: *server_id,
                    peer: *peer,
                    kind: *kind,
                    server_time_us: *time_us,
                },
            };
            wire::encode_server(&frame, &mut connection.outbound);
            self.stats.deliveries_written += u64::from(matches!(frame, ServerFrame::Deliver { .. }));
        }
        if was_empty && !connection.outbound.is_empty() {
            self.wakeups.push(conn);
        }
    }

    /// Writes ERROR and closes the connection after it.
    fn fail(&mut self, conn: ConnId, code: ErrorCode, text: &str) {
        self.stats.count_error(code);
        self.write(conn, &ServerFrame::Error { code, text });
        self.close_after_flush(conn);
    }

    /// Writes GOAWAY and closes the connection after it.
    fn goaway(&mut self, conn: ConnId, reason: GoawayReason) {
        if self.conns.get(conn).is_none_or(|c| c.stage == Stage::Closing) {
            return;
        }
        self.write(conn, &ServerFrame::Goaway { reason });
        self.close_after_flush(conn);
    }

    /// During shutdown: GOAWAY once no SEND of the connection waits for an answer.
    fn goaway_when_settled(&mut self, conn: ConnId) {
        match self.conns.get(conn) {
            Some(connection) if connection.sends_inflight == 0 && !connection.awaits_registration_answer() => {
                self.goaway(conn, GoawayReason::ShuttingDown)
            }
            _ => {}
        }
    }

    fn close_after_flush(&mut self, conn: ConnId) {
        let Some(connection) = self.conns.get_mut(conn) else { return };
        let previous = std::mem::replace(&mut connection.stage, Stage::Closing);
        self.buffers.give(std::mem::take(&mut connection.partial));
        self.handoffs.remove(&conn);
        self.wakeups.push(conn);
        if let Stage::Active { user } = previous {
            self.end_session(user, conn);
        }
    }

    /// `conn` no longer serves `user`: items written to it and not acknowledged go out again next time.
    fn end_session(&mut self, user: UserId, conn: ConnId) {
        if self.sessions.get(&user) == Some(&conn) {
            self.sessions.remove(&user);
            self.queue.rewind(user);
        }
    }
}

/// What keeps a shutting-down core from quiescing (all zero and false: nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownLeft {
    /// Connections still open (GOAWAY sent, or being closed).
    pub connections: usize,
    /// Messages for users of this core not yet handled.
    pub local_messages: usize,
    /// Messages waiting to go to other cores.
    pub outbox_messages: usize,
    /// A log write is in flight or records wait for one.
    pub log_busy: bool,
    /// New device generations not yet durable in the device log.
    pub device_records: usize,
}

impl ShutdownLeft {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl std::fmt::Display for ShutdownLeft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} connections, {} local messages, {} messages for other cores, {} device records, log {}",
            self.connections,
            self.local_messages,
            self.outbox_messages,
            self.device_records,
            if self.log_busy { "busy" } else { "idle" }
        )
    }
}

/// Whether `user` is in the range of phone numbers registration accepts.
fn is_phone(user: UserId) -> bool {
    (crate::account::PHONE_MIN..=crate::account::PHONE_MAX).contains(&user)
}
