//! A connection's life and the core's: accepting and adopting connections, closing them, the timeouts (handshake,
//! idle, queue expiry), giving burst memory back, and the orderly shutdown (GOAWAY, settle, quiesce). Does not
//! read frames (`input.rs`) or write them (`output.rs`).

use wire::{ErrorCode, GoawayReason, ReceiptKind};

use crate::account::SourceKey;
use crate::limits::{CONNECTIONS_PER_SHARD_MAX, OUTBOUND_BYTES_MAX, POOLED_BUFFERS_RESERVE};

use super::connection::{ConnId, Connection, Stage};
use super::mesh::{Outbox, ShardMsg};
use super::offline_queue::Item;
use super::{ConnectionsFull, Flow, Handoff, Now, Shard};

impl Shard {
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
