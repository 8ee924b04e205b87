//! The sockets of one core's connections, by the connection's shard slot, and the queue of connections
//! with something to do. A slot is a descriptor, the generation of the connection using it and two flags:
//! this is all the runtime keeps for an idle connection (no buffer, no task, no future).
//!
//! Owns the descriptors: removing a slot hands its descriptor to the caller, dropping the table closes the
//! rest. Does not make system calls and knows nothing of the protocol.
//!
//! Invariant: a connection is in the ready queue at most once (`queued`), so the queue is bounded by the
//! connections of the core.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::shard::ConnId;

#[derive(Debug, Default)]
struct Slot {
    fd: Option<OwnedFd>,
    generation: u32,
    /// Epoll reported input and a read has not yet returned EAGAIN since (events are edges).
    readable: bool,
    /// In the ready queue.
    queued: bool,
}

/// One core's connection sockets.
#[derive(Debug, Default)]
pub struct SocketTable {
    slots: Vec<Slot>,
    ready: VecDeque<ConnId>,
    len: usize,
}

impl SocketTable {
    fn slot(&self, conn: ConnId) -> Option<&Slot> {
        self.slots.get(conn.index as usize).filter(|slot| slot.fd.is_some() && slot.generation == conn.generation)
    }

    fn slot_mut(&mut self, conn: ConnId) -> Option<&mut Slot> {
        self.slots.get_mut(conn.index as usize).filter(|slot| slot.fd.is_some() && slot.generation == conn.generation)
    }

    /// Sockets held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Puts the socket of a new connection in its slot and queues the connection (there may be input
    /// already, and the shard may have written to it).
    pub fn insert(&mut self, conn: ConnId, fd: OwnedFd) {
        let index = conn.index as usize;
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, Slot::default);
        }
        let slot = &mut self.slots[index];
        assert!(slot.fd.is_none(), "connection slot {index} already holds a socket");
        *slot = Slot { fd: Some(fd), generation: conn.generation, readable: true, queued: false };
        self.len += 1;
        self.enqueue(conn);
    }

    /// Takes the socket of a connection out of the table.
    pub fn remove(&mut self, conn: ConnId) -> Option<OwnedFd> {
        let slot = self.slot_mut(conn)?;
        let fd = slot.fd.take();
        slot.readable = false;
        self.len -= 1;
        fd
    }

    pub fn fd(&self, conn: ConnId) -> Option<RawFd> {
        self.slot(conn).and_then(|slot| slot.fd.as_ref()).map(AsRawFd::as_raw_fd)
    }

    pub fn is_readable(&self, conn: ConnId) -> bool {
        self.slot(conn).is_some_and(|slot| slot.readable)
    }

    pub fn set_readable(&mut self, conn: ConnId, readable: bool) {
        if let Some(slot) = self.slot_mut(conn) {
            slot.readable = readable;
        }
    }

    /// Queues `conn` to be served, unless it is queued already or gone.
    pub fn enqueue(&mut self, conn: ConnId) {
        let Some(slot) = self.slot_mut(conn) else { return };
        if !slot.queued {
            slot.queued = true;
            self.ready.push_back(conn);
        }
    }

    /// The next connection to serve.
    pub fn pop_ready(&mut self) -> Option<ConnId> {
        while let Some(conn) = self.ready.pop_front() {
            if let Some(slot) = self.slot_mut(conn) {
                slot.queued = false;
                return Some(conn);
            }
        }
        None
    }

    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket() -> OwnedFd {
        std::os::unix::net::UnixStream::pair().expect("socketpair").0.into()
    }

    #[test]
    fn a_connection_is_queued_once_and_a_stale_handle_misses() {
        let mut table = SocketTable::default();
        let first = ConnId { index: 3, generation: 1 };
        table.insert(first, socket());
        table.enqueue(first);
        assert_eq!(table.ready_len(), 1);
        assert_eq!(table.pop_ready(), Some(first));
        assert_eq!(table.pop_ready(), None);
        assert!(table.is_readable(first));
        table.set_readable(first, false);
        assert!(!table.is_readable(first));

        table.enqueue(first);
        assert!(table.remove(first).is_some());
        assert_eq!(table.pop_ready(), None, "a removed connection is skipped");
        let second = ConnId { index: 3, generation: 2 };
        table.insert(second, socket());
        assert!(table.fd(first).is_none());
        assert!(table.remove(first).is_none());
        assert!(table.fd(second).is_some());
        assert_eq!(table.len(), 1);
    }
}
