//! Deduplication of retried SENDs on the sender's home core. Remembers `(sender, client_msg_id)` for the
//! dedup window, bounded per core; a retry of a stored message is answered with the first ACK, a retry of
//! a refused one with the first REJECT, a retry of one still in flight is dropped (its answer is on the way).
//! Owns only this memory, not the messages.

use std::collections::{HashMap, VecDeque};

use wire::UserId;

/// What is known about an earlier SEND with the same ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriorSend {
    /// Forwarded to the recipient's home core, not answered yet.
    InFlight,
    /// Stored as `server_id` at `server_time_us`.
    Stored { server_id: u64, server_time_us: u64 },
    /// Refused by the recipient's home core with `code`. Remembered like a stored one: a retry that crossed
    /// the REJECT (sent from a new connection before the REJECT arrived) must get the same answer, or it
    /// could be stored while the client, having read the REJECT, takes the message for refused.
    Refused { code: wire::RejectCode },
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    prior: PriorSend,
    remembered_us: u64,
}

/// Recently seen SENDs of this core's users.
#[derive(Debug)]
pub struct SendDedup {
    entries: HashMap<(UserId, u64), Entry>,
    order: VecDeque<(u64, UserId, u64)>,
    entries_max: usize,
    window_us: u64,
}

impl SendDedup {
    pub fn new(entries_max: usize, window_us: u64) -> Self {
        Self { entries: HashMap::new(), order: VecDeque::new(), entries_max, window_us }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn get(&self, sender: UserId, client_msg_id: u64) -> Option<PriorSend> {
        self.entries.get(&(sender, client_msg_id)).map(|entry| entry.prior)
    }

    /// When a SEND still in flight was first remembered (for the SEND → Stored latency).
    pub fn in_flight_since(&self, sender: UserId, client_msg_id: u64) -> Option<u64> {
        self.entries
            .get(&(sender, client_msg_id))
            .filter(|entry| entry.prior == PriorSend::InFlight)
            .map(|entry| entry.remembered_us)
    }

    /// Records what is now known of a SEND, evicting the oldest entries past the limit.
    pub fn remember(&mut self, sender: UserId, client_msg_id: u64, prior: PriorSend, now_us: u64) {
        self.entries.insert((sender, client_msg_id), Entry { prior, remembered_us: now_us });
        self.order.push_back((now_us, sender, client_msg_id));
        while self.entries.len() > self.entries_max || self.order.len() > 2 * self.entries_max.max(1) {
            if !self.evict_oldest() {
                break;
            }
        }
    }

    /// Drops entries older than the window.
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
        usize::from(crate::memory_trim::shrink_if_oversized(&mut self.entries))
            + usize::from(crate::memory_trim::shrink_if_oversized(&mut self.order))
    }

    fn evict_oldest(&mut self) -> bool {
        let Some((at, sender, client_msg_id)) = self.order.pop_front() else { return false };
        // The key may have been remembered again later; only its newest record decides.
        if self.entries.get(&(sender, client_msg_id)).is_some_and(|entry| entry.remembered_us == at) {
            self.entries.remove(&(sender, client_msg_id));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_within_window_and_bound() {
        let mut dedup = SendDedup::new(3, 1_000);
        dedup.remember(1, 1, PriorSend::InFlight, 0);
        dedup.remember(1, 1, PriorSend::Stored { server_id: 9, server_time_us: 5 }, 10);
        assert_eq!(dedup.get(1, 1), Some(PriorSend::Stored { server_id: 9, server_time_us: 5 }));
        for id in 2..=4 {
            dedup.remember(1, id, PriorSend::InFlight, 20);
        }
        assert_eq!(dedup.len(), 3, "bounded");
        assert_eq!(dedup.get(1, 1), None, "the oldest went first");
        dedup.expire(1_020);
        assert_eq!(dedup.len(), 0);
    }

    #[test]
    fn a_refresh_is_not_evicted_by_its_older_record() {
        let mut dedup = SendDedup::new(10, 100);
        dedup.remember(7, 1, PriorSend::InFlight, 0);
        dedup.remember(7, 1, PriorSend::Stored { server_id: 1, server_time_us: 1 }, 50);
        dedup.expire(120);
        assert!(dedup.get(7, 1).is_some(), "the record made at 50 lives until 150");
        dedup.expire(150);
        assert_eq!(dedup.get(7, 1), None);
    }
}
