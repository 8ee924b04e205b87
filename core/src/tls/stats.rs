//! Counters of one core's TLS connections, read by the runtime for metrics. Owns numbers only: plain `u64`s and
//! a histogram updated on the core's own thread, never shared. What the runtime counts: handshakes done by
//! kind, handshakes refused by reason, connections and handshakes in progress, and how long handshakes took.

use crate::metrics::LatencyHistogram;

/// Why a TLS connection ended before (or, for `BadRecord`, after) its handshake completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// The first byte was not a TLS handshake record: plaintext (HTTP, the native protocol) on the TLS port.
    Plaintext,
    /// rustls refused the handshake (malformed records, no common cipher suite or version, an alert from the
    /// client, e.g. because it does not trust our certificate).
    BadHandshake,
    /// The client's SNI names a host our certificate does not cover.
    WrongSni,
    /// The client offers ALPN protocols, none of them `ringline/1`.
    NoAlpn,
    /// The handshake did not finish within `--tls-handshake-timeout` (slowloris, a stalled client).
    Timeout,
    /// The client closed the connection (or it failed) during the handshake.
    Eof,
    /// A record after the handshake could not be decrypted or was out of place.
    BadRecord,
}

impl TlsFailure {
    pub const ALL: [Self; 7] =
        [Self::Plaintext, Self::BadHandshake, Self::WrongSni, Self::NoAlpn, Self::Timeout, Self::Eof, Self::BadRecord];

    /// The `reason` label in the metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::BadHandshake => "bad_handshake",
            Self::WrongSni => "wrong_sni",
            Self::NoAlpn => "no_alpn",
            Self::Timeout => "timeout",
            Self::Eof => "eof",
            Self::BadRecord => "bad_record",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One core's TLS numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsStats {
    /// Full handshakes completed (a HelloRetryRequest round included).
    pub handshakes_full: u64,
    /// Handshakes that resumed a session (a ticket, or a TLS 1.2 session id).
    pub handshakes_resumed: u64,
    /// Connections that ended in a failure, by `TlsFailure` (index = declaration order).
    pub failures: [u64; TlsFailure::ALL.len()],
    /// TLS connections on the core now, any stage.
    pub connections: u64,
    /// Handshakes in progress on the core now.
    pub handshakes_in_progress: u64,
    /// Times the core found its limit of handshakes in progress reached and left new TLS connections in the
    /// listen backlog.
    pub handshake_limit_waits: u64,
    /// Time from accept to handshake complete.
    pub handshake_us: LatencyHistogram,
}

impl TlsStats {
    pub fn count_failure(&mut self, failure: TlsFailure) {
        self.failures[failure.index()] += 1;
    }

    pub fn failures_of(&self, failure: TlsFailure) -> u64 {
        self.failures[failure.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_has_its_own_counter_and_name() {
        let mut stats = TlsStats::default();
        for (n, failure) in TlsFailure::ALL.iter().enumerate() {
            for _ in 0..=n {
                stats.count_failure(*failure);
            }
        }
        for (n, failure) in TlsFailure::ALL.iter().enumerate() {
            assert_eq!(stats.failures_of(*failure), n as u64 + 1, "{}", failure.name());
        }
        let mut names: Vec<_> = TlsFailure::ALL.iter().map(|failure| failure.name()).collect();
        names.dedup();
        assert_eq!(names.len(), TlsFailure::ALL.len());
    }
}
