//! Deduplication of retried SENDs on the sender's home core. Remembers `(sender, client_msg_id)` with the
//! fingerprint of the SEND's recipient and body: while the first copy is in flight (with every other copy
//! that waits for the same answer, by connection), then its answer for the dedup window, bounded per core.
//! A retry of a stored message is answered with the first ACK, a retry of a refused one with the first
//! REJECT, and a SEND that reuses the id for another recipient or body is told apart (the shard refuses it).
//! Owns only this memory, not the messages, and writes no frame: the shard answers each copy on the
//! connection it came on.
//!
//! Invariants: a key is in at most one of the two maps. In-flight entries are never evicted (their answer
//! always comes back from the recipient's home core, and each copy counts against its connection's
//! `SEND_INFLIGHT_MAX`, which bounds them); answered entries are bounded by `entries_max` and the window.

use std::collections::{HashMap, VecDeque};

use wire::{RejectCode, UserId};

use super::connection::ConnId;

/// How the recipient's home core answered a SEND.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriorSend {
    /// Stored as `server_id` at `server_time_us`.
    Stored { server_id: u64, server_time_us: u64 },
    /// Refused by the recipient's home core with `code`. Remembered like a stored one: a retry that crossed
    /// the REJECT (sent from a new connection before the REJECT arrived) must get the same answer, or it
    /// could be stored while the client, having read the REJECT, takes the message for refused.
    Refused { code: RejectCode },
}

/// What is known of a SEND's ids, checked against its fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not seen within the window: a new message.
    New,
    /// The same message, forwarded and not answered yet.
    InFlight,
    /// The same message, answered.
    Answered(PriorSend),
    /// The id was used for another recipient or body.
    Reused,
}

/// A SEND forwarded to the recipient's home core, waiting for its answer.
#[derive(Debug)]
struct InFlight {
    fingerprint: u64,
    since_us: u64,
    /// Connections of copies that arrived after the first (whose own connection is in the `Store`
    /// request): each gets the answer too. Empty, so unallocated, in the common case.
    copies: Vec<ConnId>,
}

#[derive(Debug, Clone, Copy)]
struct Answered {
    prior: PriorSend,
    fingerprint: u64,
    remembered_us: u64,
}

/// The first copy's answer has come: the copies that waited with it, and since when it was in flight.
#[derive(Debug, Default)]
pub struct Settled {
    pub since_us: Option<u64>,
    pub copies: Vec<ConnId>,
}

/// Recently seen SENDs of this core's users.
#[derive(Debug)]
pub struct SendDedup {
    in_flight: HashMap<(UserId, u64), InFlight>,
    answered: HashMap<(UserId, u64), Answered>,
    order: VecDeque<(u64, UserId, u64)>,
    entries_max: usize,
    window_us: u64,
}

impl SendDedup {
    pub fn new(entries_max: usize, window_us: u64) -> Self {
        Self { in_flight: HashMap::new(), answered: HashMap::new(), order: VecDeque::new(), entries_max, window_us }
    }

    /// SENDs remembered, in flight or answered.
    pub fn len(&self) -> usize {
        self.in_flight.len() + self.answered.len()
    }

    /// What is known of `(sender, client_msg_id)` for a SEND whose recipient and body hash to `fingerprint`.
    pub fn look_up(&self, sender: UserId, client_msg_id: u64, fingerprint: u64) -> Seen {
        let key = (sender, client_msg_id);
        let (known, seen) = if let Some(entry) = self.in_flight.get(&key) {
            (entry.fingerprint, Seen::InFlight)
        } else if let Some(entry) = self.answered.get(&key) {
            (entry.fingerprint, Seen::Answered(entry.prior))
        } else {
            return Seen::New;
        };
        if known == fingerprint { seen } else { Seen::Reused }
    }

    /// A new SEND is forwarded; its first copy's connection travels with the request.
    pub fn begin(&mut self, sender: UserId, client_msg_id: u64, fingerprint: u64, now_us: u64) {
        let key = (sender, client_msg_id);
        self.answered.remove(&key);
        let previous = self.in_flight.insert(key, InFlight { fingerprint, since_us: now_us, copies: Vec::new() });
        assert!(previous.is_none(), "a SEND in flight is joined, not begun again");
    }

    /// Another copy of a SEND in flight arrived on `conn`: it is answered with the first.
    pub fn join(&mut self, sender: UserId, client_msg_id: u64, conn: ConnId) {
        if let Some(entry) = self.in_flight.get_mut(&(sender, client_msg_id)) {
            entry.copies.push(conn);
        }
    }

    /// The SEND's answer came: it is remembered for the window, and the copies that waited are returned.
    pub fn settle(&mut self, sender: UserId, client_msg_id: u64, prior: PriorSend, now_us: u64) -> Settled {
        let Some(entry) = self.in_flight.remove(&(sender, client_msg_id)) else {
            debug_assert!(false, "an answer for a SEND that is not in flight: {sender} {client_msg_id}");
            return Settled::default();
        };
        self.remember(sender, client_msg_id, entry.fingerprint, prior, now_us);
        Settled { since_us: Some(entry.since_us), copies: entry.copies }
    }

    /// Records an answered SEND (recovery, or `settle`), evicting the oldest answered entries past the limit.
    pub fn remember(&mut self, sender: UserId, client_msg_id: u64, fingerprint: u64, prior: PriorSend, now_us: u64) {
        self.answered.insert((sender, client_msg_id), Answered { prior, fingerprint, remembered_us: now_us });
        self.order.push_back((now_us, sender, client_msg_id));
        while self.answered.len() > self.entries_max || self.order.len() > 2 * self.entries_max.max(1) {
            if !self.evict_oldest() {
                break;
            }
        }
    }

    /// Drops answered entries older than the window.
    pub fn expire(&mut self, now_us: u64) {
        while let Some(&(at, _, _)) = self.order.front() {
            if at.saturating_add(self.window_us) > now_us {
                break;
            }
            self.evict_oldest();
        }
    }

    /// Gives back the room a burst of SENDs left behind (`memory_trim`). Returns the containers shrunk.
    pub fn shrink_if_oversized(&mut self) -> usize {
        usize::from(crate::memory_trim::shrink_if_oversized(&mut self.answered))
            + usize::from(crate::memory_trim::shrink_if_oversized(&mut self.in_flight))
            + usize::from(crate::memory_trim::shrink_if_oversized(&mut self.order))
    }

    fn evict_oldest(&mut self) -> bool {
        let Some((at, sender, client_msg_id)) = self.order.pop_front() else { return false };
        // The key may have been remembered again later; only its newest record decides.
        if self.answered.get(&(sender, client_msg_id)).is_some_and(|entry| entry.remembered_us == at) {
            self.answered.remove(&(sender, client_msg_id));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORED: PriorSend = PriorSend::Stored { server_id: 9, server_time_us: 5 };
    const CONN: ConnId = ConnId { index: 3, generation: 1 };

    #[test]
    fn remembers_within_window_and_bound() {
        let mut dedup = SendDedup::new(3, 1_000);
        dedup.begin(1, 1, 77, 0);
        assert_eq!(dedup.look_up(1, 1, 77), Seen::InFlight);
        let settled = dedup.settle(1, 1, STORED, 10);
        assert_eq!(settled.since_us, Some(0));
        assert_eq!(dedup.look_up(1, 1, 77), Seen::Answered(STORED));
        for id in 2..=4 {
            dedup.remember(1, id, 77, STORED, 20);
        }
        assert_eq!(dedup.len(), 3, "bounded");
        assert_eq!(dedup.look_up(1, 1, 77), Seen::New, "the oldest went first");
        dedup.expire(1_020);
        assert_eq!(dedup.len(), 0);
    }

    #[test]
    fn a_refresh_is_not_evicted_by_its_older_record() {
        let mut dedup = SendDedup::new(10, 100);
        dedup.remember(7, 1, 5, STORED, 0);
        dedup.remember(7, 1, 5, STORED, 50);
        dedup.expire(120);
        assert_ne!(dedup.look_up(7, 1, 5), Seen::New, "the record made at 50 lives until 150");
        dedup.expire(150);
        assert_eq!(dedup.look_up(7, 1, 5), Seen::New);
    }

    #[test]
    fn another_recipient_or_body_under_the_same_id_is_a_reuse() {
        let mut dedup = SendDedup::new(10, 100);
        dedup.begin(7, 1, 5, 0);
        assert_eq!(dedup.look_up(7, 1, 6), Seen::Reused, "in flight");
        dedup.settle(7, 1, PriorSend::Refused { code: RejectCode::RecipientQueueFull }, 1);
        assert_eq!(dedup.look_up(7, 1, 6), Seen::Reused, "answered");
        assert_eq!(dedup.look_up(7, 2, 6), Seen::New, "another id");
        assert_eq!(dedup.look_up(8, 1, 6), Seen::New, "another sender");
    }

    #[test]
    fn in_flight_sends_are_never_evicted_and_hand_back_their_copies() {
        let mut dedup = SendDedup::new(1, 100);
        dedup.begin(7, 1, 5, 0);
        dedup.join(7, 1, CONN);
        dedup.join(7, 1, CONN);
        for id in 2..10 {
            dedup.remember(7, id, 5, STORED, 1_000);
        }
        dedup.expire(10_000);
        assert_eq!(dedup.look_up(7, 1, 5), Seen::InFlight, "neither the bound nor the window drops it");
        let settled = dedup.settle(7, 1, STORED, 10_000);
        assert_eq!(settled.copies, vec![CONN, CONN]);
        assert_eq!(dedup.look_up(7, 1, 5), Seen::Answered(STORED));
    }
}
