//! When a client connection next owes the server a keepalive: one interval after the connection came up, then
//! one interval after each keepalive. Every chat driver holds one; what a keepalive is (PING, `<r/>`, a space)
//! and whether the session is up to send it are the driver's. It reads no clock: times come in.

/// The keepalive interval of one connection and when the next keepalive is due.
#[derive(Debug)]
pub struct KeepaliveClock {
    interval_us: u64,
    next_us: u64,
}

impl KeepaliveClock {
    pub fn new(interval_us: u64) -> Self {
        Self { interval_us, next_us: 0 }
    }

    /// A connection is up: the first keepalive is due one interval from now.
    pub fn restart(&mut self, now_us: u64) {
        self.next_us = now_us.saturating_add(self.interval_us);
    }

    /// Whether a keepalive is due at `now_us`; if so, the next is due one interval later.
    pub fn take_due(&mut self, now_us: u64) -> bool {
        if now_us < self.next_us {
            return false;
        }
        self.restart(now_us);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_one_interval_after_the_restart_then_after_each_keepalive() {
        let mut clock = KeepaliveClock::new(1_000);
        clock.restart(5_000);
        assert!(!clock.take_due(5_999));
        assert!(clock.take_due(6_000));
        assert!(!clock.take_due(6_999));
        assert!(clock.take_due(7_500));
        assert!(!clock.take_due(8_499));
        assert!(clock.take_due(8_500));
    }
}
