//! Connections of one core: a generation-checked slab of small records. Owns per-connection protocol state
//! (stage, buffers that exist only while they hold bytes, counters); owns no socket and no task (the runtime
//! does). Invariant: an idle connection owns no heap buffer: `outbound` and `partial` are freed when empty.

use wire::UserId;

use crate::account::SourceKey;

/// A connection's handle. The generation makes a handle to a closed connection miss instead of reaching the
/// connection that reuses its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub index: u32,
    pub generation: u32,
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Accepted, waiting for HELLO (or registering: REGISTER_REQUEST / REGISTER_VERIFY, then HELLO).
    Handshaking,
    /// HELLO accepted on a core that is not the user's home; the socket moves there.
    HandingOff,
    /// Logged in as `user` on the user's home core.
    Active { user: UserId },
    /// Writing its last frames (ERROR or GOAWAY); reads nothing more.
    Closing,
}

/// Per-connection state. Small on purpose: capacity is bytes per idle connection.
#[derive(Debug)]
pub struct Connection {
    pub stage: Stage,
    /// Encoded frames not yet written to the socket.
    pub outbound: Vec<u8>,
    /// Received bytes not yet processed: a partial frame, or frames held back while reading is paused.
    pub partial: Vec<u8>,
    /// SENDs forwarded to a home core and not yet answered.
    pub sends_inflight: u32,
    /// The client's address, folded, for the registration limits per source.
    pub source: SourceKey,
    /// Monotonic time of the last frame received, for the idle timeout.
    pub last_frame_us: u64,
    /// Monotonic time the socket last took outbound bytes: a client that reads is not idle, even while the
    /// server does not read it (its outbound buffer is full).
    pub last_written_us: u64,
    /// Waiting for room in a peer core's outbox.
    pub paused_for_mesh: bool,
    /// Close without flushing (shutdown grace expired, or the socket failed).
    pub close_now: bool,
    /// A registration step waiting for the runtime's answer (a PIN handover, a device record made durable):
    /// the connection reads nothing until the answer (PIN_SENT, REGISTERED, or the refusal), so answers keep
    /// the order of the requests.
    pub awaiting: Option<RegistrationStep>,
    /// Waits in the shard's list of connections to serve (`Output::Serve`): queued there once until given out.
    pub queued_to_serve: bool,
}

/// A registration step whose answer the runtime gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationStep {
    /// The PIN is on its way to the PIN sender (`Output::SendPin`).
    PinHandover,
    /// The new device generation is on its way to the device log (`Output::RecordDevice`).
    DeviceRecord,
}

impl Connection {
    /// Whether a registration step of this connection waits for the runtime (a PIN handover, a device record).
    pub fn awaits_registration_answer(&self) -> bool {
        self.awaiting.is_some()
    }

    pub fn new(now_us: u64, source: SourceKey) -> Self {
        Self {
            stage: Stage::Handshaking,
            outbound: Vec::new(),
            partial: Vec::new(),
            sends_inflight: 0,
            source,
            last_frame_us: now_us,
            last_written_us: now_us,
            paused_for_mesh: false,
            close_now: false,
            awaiting: None,
            queued_to_serve: false,
        }
    }

    /// The last time the client did something: sent a frame, or read some of what the server wrote.
    pub fn last_progress_us(&self) -> u64 {
        self.last_frame_us.max(self.last_written_us)
    }

    pub fn user(&self) -> Option<UserId> {
        match self.stage {
            Stage::Active { user } => Some(user),
            _ => None,
        }
    }
}

struct Slot {
    generation: u32,
    connection: Option<Connection>,
}

/// The connections of one core.
#[derive(Default)]
pub struct ConnTable {
    slots: Vec<Slot>,
    free: Vec<u32>,
    len: usize,
}

impl ConnTable {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn insert(&mut self, connection: Connection) -> ConnId {
        self.len += 1;
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            debug_assert!(slot.connection.is_none());
            slot.generation = slot.generation.wrapping_add(1);
            slot.connection = Some(connection);
            return ConnId { index, generation: slot.generation };
        }
        let index = u32::try_from(self.slots.len()).expect("connections per core are capped below u32::MAX");
        self.slots.push(Slot { generation: 0, connection: Some(connection) });
        ConnId { index, generation: 0 }
    }

    pub fn get(&self, id: ConnId) -> Option<&Connection> {
        let slot = self.slots.get(id.index as usize)?;
        if slot.generation == id.generation { slot.connection.as_ref() } else { None }
    }

    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Connection> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation == id.generation { slot.connection.as_mut() } else { None }
    }

    pub fn remove(&mut self, id: ConnId) -> Option<Connection> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        let connection = slot.connection.take()?;
        self.free.push(id.index);
        self.len -= 1;
        Some(connection)
    }

    /// Slots, live or free: the range of `index` for `id_at`.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// The handle of the live connection in slot `index`, if any.
    pub fn id_at(&self, index: usize) -> Option<ConnId> {
        let slot = self.slots.get(index)?;
        slot.connection.as_ref().map(|_| ConnId { index: index as u32, generation: slot.generation })
    }

    /// Outbound bytes of all live connections, and how many of them hold at least `full_bytes`. O(slots):
    /// for the metrics snapshot once per publish interval, not for the hot path.
    pub fn outbound_totals(&self, full_bytes: usize) -> (u64, u64) {
        let mut bytes = 0u64;
        let mut full = 0u64;
        for connection in self.slots.iter().filter_map(|slot| slot.connection.as_ref()) {
            bytes += connection.outbound.len() as u64;
            full += u64::from(connection.outbound.len() >= full_bytes);
        }
        (bytes, full)
    }

    /// Handles of every live connection.
    pub fn ids(&self) -> Vec<ConnId> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.connection.is_some())
            .map(|(index, slot)| ConnId { index: index as u32, generation: slot.generation })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_handle_misses_after_its_slot_is_reused() {
        let mut table = ConnTable::default();
        let first = table.insert(Connection::new(0, SourceKey::UNKNOWN));
        assert!(table.remove(first).is_some());
        let second = table.insert(Connection::new(0, SourceKey::UNKNOWN));
        assert_eq!(second.index, first.index);
        assert!(table.get(first).is_none());
        assert!(table.remove(first).is_none());
        assert!(table.get(second).is_some());
        assert_eq!(table.len(), 1);
        assert_eq!(table.ids(), vec![second]);
    }
}
