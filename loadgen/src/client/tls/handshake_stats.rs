//! [`HandshakeStats`]: what a core, an agent or a whole run saw of TLS handshakes — full, resumed and failed
//! counts, and latency histograms (TCP connect to handshake done) for all handshakes and per kind. Merged
//! bucket by bucket like every loadgen histogram. Counts only; the runtime decides what to record.

use super::{HandshakeDone, HandshakeKind};
use crate::latency::{HistogramError, LatencyHistogram};

/// Handshake counts and latencies.
#[derive(Debug, Clone, Default)]
pub struct HandshakeStats {
    pub full: u64,
    pub resumed: u64,
    /// Connections whose handshake did not finish after bytes went through the socket: the certificate refused,
    /// an alert, a close or timeout mid-handshake. (A TCP connect that fails is a connect error, not this.)
    pub failures: u64,
    /// Every finished handshake.
    pub latency: LatencyHistogram,
    pub latency_full: LatencyHistogram,
    pub latency_resumed: LatencyHistogram,
}

impl HandshakeStats {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&mut self, done: HandshakeDone) {
        self.latency.record(done.latency_us);
        match done.kind {
            HandshakeKind::Full => {
                self.full += 1;
                self.latency_full.record(done.latency_us);
            }
            HandshakeKind::Resumed => {
                self.resumed += 1;
                self.latency_resumed.record(done.latency_us);
            }
        }
    }

    pub fn record_failure(&mut self) {
        self.failures += 1;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &HandshakeStats) -> Result<(), HistogramError> {
        self.full += other.full;
        self.resumed += other.resumed;
        self.failures += other.failures;
        self.latency.merge(&other.latency)?;
        self.latency_full.merge(&other.latency_full)?;
        self.latency_resumed.merge(&other.latency_resumed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_counted_apart_and_merge_adds_up() {
        let mut core_a = HandshakeStats::new();
        core_a.record(HandshakeDone { kind: HandshakeKind::Full, latency_us: 900 });
        core_a.record(HandshakeDone { kind: HandshakeKind::Resumed, latency_us: 300 });
        core_a.record_failure();
        let mut core_b = HandshakeStats::new();
        core_b.record(HandshakeDone { kind: HandshakeKind::Full, latency_us: 1_100 });
        let mut agent = HandshakeStats::new();
        agent.merge(&core_a).expect("same bounds");
        agent.merge(&core_b).expect("same bounds");
        assert_eq!((agent.full, agent.resumed, agent.failures), (2, 1, 1));
        assert_eq!(agent.latency.count(), 3);
        assert_eq!(agent.latency_full.count(), 2);
        assert_eq!(agent.latency_resumed.summary().max, agent.latency_resumed.summary().p50);
        assert!(agent.latency_resumed.summary().max < agent.latency_full.summary().p50);
    }
}
