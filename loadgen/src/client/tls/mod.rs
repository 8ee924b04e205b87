//! `--tls`: the client side of TLS for native-protocol connections, with rustls (`ring` provider), ALPN
//! `ringline/1`. Inside TLS the bytes are exactly the native protocol, so TLS is a layer between the socket and
//! the protocol driver, and the driver does not know it is there.
//!
//! - [`TlsClient`] (`client.rs`): one per agent. The trusted roots, the ALPN and the server name rule; it opens a
//!   [`TlsConnection`] per TCP connection.
//! - [`TlsConnection`] (`connection.rs`): one connection's TLS state, sans-IO: ciphertext in, plaintext to the
//!   driver; plaintext from the driver, ciphertext out; the handshake's kind (full or resumed) and latency.
//! - [`SessionTickets`] (`session_tickets.rs`): what one user remembers between its connections (TLS 1.3
//!   tickets), so a reconnect resumes as a phone's would, and a first connect does a full handshake.
//! - [`HandshakeStats`] (`handshake_stats.rs`): counts and latency histograms of handshakes, merged across
//!   cores and agents.
//!
//! Nothing here touches a socket or a clock: the agent runtime feeds bytes and times.

mod client;
mod connection;
mod handshake_stats;
mod session_tickets;

pub use client::{ALPN_RINGLINE, TlsClient, TlsSetupError};
pub use connection::{HandshakeDone, HandshakeKind, TlsConnection, TlsInputError};
pub use handshake_stats::HandshakeStats;
pub use session_tickets::SessionTickets;

/// Why a TLS connection cannot go on; the runtime closes it (and reconnects with backoff).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A TLS protocol failure: the server's certificate refused (untrusted, expired, wrong name), an alert from
    /// the server, a corrupt record. Fatal to the connection.
    #[error("tls: {0}")]
    Protocol(#[from] rustls::Error),
    /// rustls refused more ciphertext (its buffer for an unfinished record is full): the server sent a record
    /// over the size TLS allows.
    #[error("tls: input refused: {0}")]
    InputRefused(std::io::Error),
}

impl TlsError {
    /// The failure's name as counted in reports, after `tls/`: `certificate_unknown_issuer`,
    /// `certificate_expired`, `alert_handshake_failure`, `no_application_protocol`, …
    pub fn name(&self) -> String {
        match self {
            TlsError::Protocol(rustls::Error::InvalidCertificate(error)) => {
                format!("certificate_{}", snake_case(&variant_name(&format!("{error:?}"))))
            }
            TlsError::Protocol(rustls::Error::AlertReceived(alert)) => {
                format!("alert_{}", snake_case(&variant_name(&format!("{alert:?}"))))
            }
            TlsError::Protocol(error) => snake_case(&variant_name(&format!("{error:?}"))),
            TlsError::InputRefused(_) => "input_refused".to_owned(),
        }
    }

    /// Whether the server's certificate was refused (not trusted, expired, not for this name, …).
    pub fn is_certificate_error(&self) -> bool {
        matches!(self, TlsError::Protocol(rustls::Error::InvalidCertificate(_)))
    }
}

/// The enum variant an error's `Debug` text starts with (`ExpiredContext { .. }` → `Expired`: rustls adds
/// `Context` variants that carry details; the name counts the kind).
fn variant_name(debug: &str) -> String {
    let name: String = debug.chars().take_while(|c| c.is_ascii_alphanumeric()).take(64).collect();
    match name.strip_suffix("Context") {
        Some(stripped) if !stripped.is_empty() => stripped.to_owned(),
        _ if name.is_empty() => "other".to_owned(),
        _ => name,
    }
}

/// `UnknownIssuer` → `unknown_issuer`.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (index, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if index > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{AlertDescription, CertificateError};

    #[test]
    fn failures_have_short_stable_names() {
        let unknown = TlsError::Protocol(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer));
        assert_eq!(unknown.name(), "certificate_unknown_issuer");
        assert!(unknown.is_certificate_error());
        let expired = TlsError::Protocol(rustls::Error::InvalidCertificate(CertificateError::Expired));
        assert_eq!(expired.name(), "certificate_expired");
        let alert = TlsError::Protocol(rustls::Error::AlertReceived(AlertDescription::HandshakeFailure));
        assert_eq!(alert.name(), "alert_handshake_failure");
        assert!(!alert.is_certificate_error());
        assert_eq!(TlsError::Protocol(rustls::Error::NoApplicationProtocol).name(), "no_application_protocol");
        assert_eq!(variant_name("ExpiredContext { time: 1 }"), "Expired");
        assert_eq!(variant_name("Context"), "Context");
        assert_eq!(variant_name(""), "other");
    }
}
