//! The control connection's handshake, as checks without sockets: the shared agent token (`--agent-token`,
//! env `RINGLINE_AGENT_TOKEN`) compared in constant time, the agent's protocol and crate version against the
//! controller's, and the agent's clock offset (latency is measured across hosts against scheduled times, so
//! the clocks must agree). Also which listen addresses an agent may use without a token. Owns these rules and
//! their error texts; it reads and writes no connection (the agent and the controller do).

use std::net::SocketAddr;

/// Bumped on every change to the control messages that an older peer would misread.
pub const CONTROL_PROTOCOL_VERSION: u32 = 2;

/// This build's crate version; the controller and its agents must be the same build.
pub const LOADGEN_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The environment variable that carries the token when `--agent-token` is not given.
pub const AGENT_TOKEN_ENV: &str = "RINGLINE_AGENT_TOKEN";

/// Default bound on an agent's clock offset from the controller's (`--agent-clock-offset-max-ms`).
pub const CLOCK_OFFSET_MAX_MS_DEFAULT: u64 = 50;

/// A token longer than this is refused (it travels in one control line).
pub const AGENT_TOKEN_BYTES_MAX: usize = 1024;

/// Why a controller and an agent will not work together.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    #[error("agent token missing: this agent requires --agent-token (or {AGENT_TOKEN_ENV}) on the controller")]
    TokenMissing,
    #[error("agent token wrong: the controller's --agent-token does not match this agent's")]
    TokenWrong,
    #[error(
        "agent version mismatch: the controller is ringline-loadgen {controller} (control protocol \
         {controller_protocol}), the agent is ringline-loadgen {agent} (control protocol {agent_protocol}); \
         run the same build on every host"
    )]
    VersionMismatch { controller: String, controller_protocol: u32, agent: String, agent_protocol: u32 },
    #[error(
        "agent clock is {offset_ms:+.1} ms off the controller's (round trip {rtt_ms:.1} ms), over the \
         {max_ms} ms bound (--agent-clock-offset-max-ms): synchronise the hosts' clocks (chrony/NTP)"
    )]
    ClockOffset { offset_ms: f64, rtt_ms: f64, max_ms: u64 },
    #[error(
        "refusing to listen on {listen} without --agent-token (or {AGENT_TOKEN_ENV}): anyone who can reach \
         it could drive load from this host; without a token only a loopback address is allowed"
    )]
    ListenWithoutToken { listen: SocketAddr },
    #[error("--agent-token must be 1 to {AGENT_TOKEN_BYTES_MAX} bytes")]
    TokenLength,
}

/// True when both byte strings are equal, in time that depends on their lengths only.
pub fn tokens_equal(expected: &[u8], offered: &[u8]) -> bool {
    if expected.len() != offered.len() {
        return false;
    }
    let difference = expected.iter().zip(offered).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    // Keep the compiler from turning the fold into an early-exit comparison.
    std::hint::black_box(difference) == 0
}

/// A token is 1 to AGENT_TOKEN_BYTES_MAX bytes.
pub fn check_token_length(token: &str) -> Result<(), HandshakeError> {
    if token.is_empty() || token.len() > AGENT_TOKEN_BYTES_MAX {
        return Err(HandshakeError::TokenLength);
    }
    Ok(())
}

/// The agent's check of a controller's greeting: with a token of its own, the controller must offer the same.
pub fn check_token(expected: Option<&str>, offered: Option<&str>) -> Result<(), HandshakeError> {
    match (expected, offered) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(HandshakeError::TokenMissing),
        (Some(expected), Some(offered)) if tokens_equal(expected.as_bytes(), offered.as_bytes()) => Ok(()),
        (Some(_), Some(_)) => Err(HandshakeError::TokenWrong),
    }
}

/// An agent without a token listens on loopback only.
pub fn check_listen(listen: SocketAddr, token: Option<&str>) -> Result<(), HandshakeError> {
    if token.is_none() && !listen.ip().is_loopback() {
        return Err(HandshakeError::ListenWithoutToken { listen });
    }
    Ok(())
}

/// The controller's check of an agent's versions.
pub fn check_version(agent: &str, agent_protocol: u32) -> Result<(), HandshakeError> {
    if agent_protocol != CONTROL_PROTOCOL_VERSION || agent != LOADGEN_VERSION {
        let agent = if agent.is_empty() { "of an older build (no version in its greeting)" } else { agent };
        return Err(HandshakeError::VersionMismatch {
            controller: LOADGEN_VERSION.into(),
            controller_protocol: CONTROL_PROTOCOL_VERSION,
            agent: agent.into(),
            agent_protocol,
        });
    }
    Ok(())
}

/// One clock reading across the control connection: the controller sent its greeting at `sent_us`, the agent
/// read its clock as `agent_us` while answering, and the answer arrived at `received_us` (controller clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSample {
    pub sent_us: u64,
    pub agent_us: u64,
    pub received_us: u64,
}

impl ClockSample {
    /// The round trip, µs.
    pub fn rtt_us(&self) -> u64 {
        self.received_us.saturating_sub(self.sent_us)
    }

    /// The agent's clock minus the controller's, estimating the agent's reading at the round trip's midpoint.
    pub fn offset_us(&self) -> i64 {
        let midpoint = self.sent_us as i128 + (self.rtt_us() / 2) as i128;
        (self.agent_us as i128 - midpoint).clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    /// Refuses an offset over `max_ms` either way.
    pub fn check(&self, max_ms: u64) -> Result<(), HandshakeError> {
        let offset_us = self.offset_us();
        if offset_us.unsigned_abs() > max_ms.saturating_mul(1000) {
            return Err(HandshakeError::ClockOffset {
                offset_ms: offset_us as f64 / 1e3,
                rtt_ms: self.rtt_us() as f64 / 1e3,
                max_ms,
            });
        }
        Ok(())
    }
}

/// A fresh random token (for the local agents a run spawns): 32 hex digits.
pub fn random_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_content_and_length() {
        assert!(tokens_equal(b"secret", b"secret"));
        assert!(!tokens_equal(b"secret", b"secreT"));
        assert!(!tokens_equal(b"secret", b"secret2"));
        assert!(!tokens_equal(b"", b"x"));
    }

    #[test]
    fn an_agent_with_a_token_refuses_a_missing_or_wrong_one() {
        assert_eq!(check_token(Some("s3cret"), Some("s3cret")), Ok(()));
        assert_eq!(check_token(Some("s3cret"), None), Err(HandshakeError::TokenMissing));
        assert_eq!(check_token(Some("s3cret"), Some("guess")), Err(HandshakeError::TokenWrong));
        assert_eq!(check_token(None, Some("anything")), Ok(()));
        assert_eq!(check_token(None, None), Ok(()));
        assert!(HandshakeError::TokenWrong.to_string().contains("agent token wrong"));
    }

    #[test]
    fn only_loopback_without_a_token() {
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("literal");
        let v6_loopback: SocketAddr = "[::1]:9000".parse().expect("literal");
        let any: SocketAddr = "0.0.0.0:9000".parse().expect("literal");
        assert_eq!(check_listen(loopback, None), Ok(()));
        assert_eq!(check_listen(v6_loopback, None), Ok(()));
        assert_eq!(check_listen(any, Some("t")), Ok(()));
        let error = check_listen(any, None).expect_err("refused");
        assert!(error.to_string().contains("refusing to listen on 0.0.0.0:9000 without --agent-token"), "{error}");
        assert_eq!(check_token_length(""), Err(HandshakeError::TokenLength));
        assert_eq!(check_token_length(&"x".repeat(AGENT_TOKEN_BYTES_MAX + 1)), Err(HandshakeError::TokenLength));
        assert_eq!(check_token_length("ok"), Ok(()));
    }

    #[test]
    fn versions_must_match_and_the_error_names_both() {
        assert_eq!(check_version(LOADGEN_VERSION, CONTROL_PROTOCOL_VERSION), Ok(()));
        let error = check_version("0.0.1-other", CONTROL_PROTOCOL_VERSION).expect_err("refused").to_string();
        assert!(error.contains(LOADGEN_VERSION) && error.contains("0.0.1-other"), "{error}");
        let error = check_version(LOADGEN_VERSION, 1).expect_err("refused").to_string();
        assert!(error.contains("control protocol 1"), "{error}");
        let error = check_version("", 0).expect_err("refused").to_string();
        assert!(error.contains("older build"), "{error}");
    }

    #[test]
    fn clock_offset_is_estimated_at_the_round_trips_midpoint() {
        let in_step = ClockSample { sent_us: 1_000_000, agent_us: 1_000_500, received_us: 1_001_000 };
        assert_eq!(in_step.rtt_us(), 1000);
        assert_eq!(in_step.offset_us(), 0);
        assert_eq!(in_step.check(50), Ok(()));
        let ahead = ClockSample { sent_us: 1_000_000, agent_us: 1_080_500, received_us: 1_001_000 };
        assert_eq!(ahead.offset_us(), 80_000);
        let error = ahead.check(50).expect_err("refused");
        assert!(error.to_string().contains("+80.0 ms off"), "{error}");
        assert_eq!(ahead.check(100), Ok(()));
        let behind = ClockSample { sent_us: 1_000_000, agent_us: 900_000, received_us: 1_000_000 };
        assert_eq!(behind.offset_us(), -100_000);
        assert!(behind.check(50).is_err());
        let broken = ClockSample { sent_us: 5, agent_us: 0, received_us: 0 };
        assert_eq!(broken.rtt_us(), 0);
    }

    #[test]
    fn random_tokens_differ() {
        let token = random_token();
        assert_eq!(token.len(), 32);
        assert_ne!(token, random_token());
    }
}
