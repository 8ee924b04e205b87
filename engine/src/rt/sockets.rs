//! The sockets of one core's connections, by the connection's shard slot, and the queue of connections
//! with something to do. A slot is a descriptor, the generation of the connection using it and four flags:
//! this is all the runtime keeps for an idle plain connection (no buffer, no task, no future). A TLS
//! connection also has its boxed `TlsSession` in a second vector beside the slots, which exists only once the
//! core has had a TLS connection: plain connections pay nothing for TLS on a server without it.
//!
//! Owns the descriptors and TLS sessions: removing a slot hands both to the caller, dropping the table closes
//! the rest. Does not make system calls and knows nothing of the protocol.
//!
//! Invariant: a connection is in the ready queue at most once (`queued`), so the queue is bounded by the
//! connections of the core.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use ringline_core::shard::ConnId;
use ringline_core::tls::TlsSession;

#[derive(Debug, Default)]
struct Slot {
    fd: Option<OwnedFd>,
    generation: u32,
    /// Epoll reported input and a read has not yet shown it all taken (EAGAIN, or a short read while the
    /// peer has not hung up): events are edges.
    readable: bool,
    /// Epoll reported end of input or an error: read until EOF or EAGAIN, as a short read may be followed
    /// by an end of input that no new event will announce.
    hung_up: bool,
    /// In the ready queue.
    queued: bool,
    /// The connection speaks TLS (its session is in `SocketTable::tls`, unless taken out for a moment).
    tls: bool,
}

/// One core's connection sockets.
#[derive(Debug, Default)]
pub struct SocketTable {
    slots: Vec<Slot>,
    /// TLS sessions by slot index; grown only as far as the highest slot a TLS connection used.
    tls: Vec<Option<Box<TlsSession>>>,
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

    /// Puts the socket of a new connection (and its TLS session, if it speaks TLS) in its slot and queues
    /// the connection (there may be input already, and the shard may have written to it).
    pub fn insert(&mut self, conn: ConnId, fd: OwnedFd, tls: Option<Box<TlsSession>>) {
        let index = conn.index as usize;
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, Slot::default);
        }
        let slot = &mut self.slots[index];
        assert!(slot.fd.is_none(), "connection slot {index} already holds a socket");
        *slot = Slot {
            fd: Some(fd),
            generation: conn.generation,
            readable: true,
            hung_up: false,
            queued: false,
            tls: tls.is_some(),
        };
        if let Some(session) = tls {
            if self.tls.len() <= index {
                self.tls.resize_with(index + 1, || None);
            }
            self.tls[index] = Some(session);
        }
        self.len += 1;
        self.enqueue(conn);
    }

    /// Takes the socket of a connection, and its TLS session if any, out of the table.
    pub fn remove(&mut self, conn: ConnId) -> Option<(OwnedFd, Option<Box<TlsSession>>)> {
        let slot = self.slot_mut(conn)?;
        let fd = slot.fd.take()?;
        slot.readable = false;
        slot.hung_up = false;
        let tls = std::mem::take(&mut slot.tls);
        self.len -= 1;
        let session = if tls { self.tls.get_mut(conn.index as usize).and_then(Option::take) } else { None };
        Some((fd, session))
    }

    /// Whether the connection speaks TLS.
    pub fn is_tls(&self, conn: ConnId) -> bool {
        self.slot(conn).is_some_and(|slot| slot.tls)
    }

    /// The connection's TLS session, unless it is taken out.
    pub fn tls(&self, conn: ConnId) -> Option<&TlsSession> {
        if !self.is_tls(conn) {
            return None;
        }
        self.tls.get(conn.index as usize).and_then(Option::as_deref)
    }

    /// Takes the connection's TLS session out for a moment (so the caller holds no borrow of the table while
    /// it works with it); `put_tls` returns it.
    pub fn take_tls(&mut self, conn: ConnId) -> Option<Box<TlsSession>> {
        if !self.is_tls(conn) {
            return None;
        }
        self.tls.get_mut(conn.index as usize).and_then(Option::take)
    }

    /// Returns a session taken with `take_tls`. A connection closed meanwhile drops it.
    pub fn put_tls(&mut self, conn: ConnId, session: Box<TlsSession>) {
        if self.is_tls(conn)
            && let Some(place) = self.tls.get_mut(conn.index as usize)
        {
            *place = Some(session);
        }
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

    /// Whether epoll has reported an end of input or an error for the connection.
    pub fn is_hung_up(&self, conn: ConnId) -> bool {
        self.slot(conn).is_some_and(|slot| slot.hung_up)
    }

    /// Records that epoll reported an end of input or an error (it stays so for the connection's life).
    pub fn set_hung_up(&mut self, conn: ConnId) {
        if let Some(slot) = self.slot_mut(conn) {
            slot.hung_up = true;
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

    /// Whether `conn` waits in the ready queue.
    pub fn is_queued(&self, conn: ConnId) -> bool {
        self.slot(conn).is_some_and(|slot| slot.queued)
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
        table.insert(first, socket(), None);
        table.enqueue(first);
        assert_eq!(table.ready_len(), 1);
        assert_eq!(table.pop_ready(), Some(first));
        assert_eq!(table.pop_ready(), None);
        assert!(table.is_readable(first));
        table.set_readable(first, false);
        assert!(!table.is_readable(first));
        assert!(!table.is_hung_up(first));
        table.set_hung_up(first);
        assert!(table.is_hung_up(first));

        table.enqueue(first);
        assert!(table.remove(first).is_some());
        assert_eq!(table.pop_ready(), None, "a removed connection is skipped");
        let second = ConnId { index: 3, generation: 2 };
        table.insert(second, socket(), None);
        assert!(table.fd(first).is_none());
        assert!(table.remove(first).is_none());
        assert!(table.fd(second).is_some());
        assert!(!table.is_hung_up(second), "a new connection in the slot has not hung up");
        assert_eq!(table.len(), 1);
        assert!(table.tls.is_empty(), "no TLS connection, no TLS vector");
    }

    fn new_session() -> Box<TlsSession> {
        use ringline_core::tls::{DevCertificate, Resumption, ServerIdentity, server_config};
        let dev = DevCertificate::generate(&["localhost".to_owned()]).expect("dev");
        let path = std::path::Path::new("-");
        let identity =
            ServerIdentity::from_pem(dev.cert_pem.as_bytes(), path, dev.key_pem.as_bytes(), path).expect("identity");
        let config = server_config(&identity, &Resumption::new().expect("resumption")).expect("config");
        Box::new(TlsSession::new(config, 0).expect("session"))
    }

    #[test]
    fn a_tls_session_stays_with_its_slot_and_leaves_with_its_socket() {
        let mut table = SocketTable::default();
        let plain = ConnId { index: 0, generation: 0 };
        let tls = ConnId { index: 5, generation: 0 };
        table.insert(plain, socket(), None);
        table.insert(tls, socket(), Some(new_session()));
        assert!(!table.is_tls(plain) && table.tls(plain).is_none());
        assert!(table.is_tls(tls) && table.tls(tls).is_some());

        let taken = table.take_tls(tls).expect("taken");
        assert!(table.is_tls(tls), "still a TLS connection while its session is out");
        assert!(table.tls(tls).is_none());
        table.put_tls(tls, taken);
        assert!(table.tls(tls).is_some());

        let (_, session) = table.remove(tls).expect("removed");
        assert!(session.is_some(), "the session leaves with the socket");
        let (_, session) = table.remove(plain).expect("removed");
        assert!(session.is_none());

        // A connection closed while its session was out: putting it back drops it, and the slot's next
        // connection is plain.
        let again = ConnId { index: 5, generation: 1 };
        table.insert(tls, socket(), Some(new_session()));
        let taken = table.take_tls(tls).expect("taken");
        drop(table.remove(tls));
        table.put_tls(tls, taken);
        table.insert(again, socket(), None);
        assert!(!table.is_tls(again) && table.tls(again).is_none());
    }
}
