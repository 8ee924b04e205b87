//! The rustls server settings ringline serves with: TLS 1.3 and 1.2 with ring's cipher suites, ALPN
//! `ringline/1` (a client offering only other protocols is refused, one offering none is served), no client
//! certificates, no early data, and session resumption: TLS 1.3 tickets from one ticket key rotator shared by
//! every core (a client reconnecting lands on any core), and a bounded TLS 1.2 session cache.
//!
//! Owns the resumption state that must outlive a certificate reload (`Resumption`); builds a fresh
//! `ServerConfig` per identity. Does no I/O.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};

use crate::limits::{TLS12_SESSION_CACHE_ENTRIES, TLS13_TICKETS_PER_HANDSHAKE};

use super::identity::{ServerIdentity, TlsSetupError, crypto_provider};

/// Session resumption state, kept across certificate reloads so that tickets issued before a reload still
/// resume after it.
#[derive(Clone)]
pub struct Resumption {
    ticketer: Arc<dyn ProducesTickets>,
    sessions: Arc<dyn StoresServerSessions>,
}

impl std::fmt::Debug for Resumption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resumption").field("ticket_lifetime_s", &self.ticketer.lifetime()).finish_non_exhaustive()
    }
}

impl Resumption {
    /// A new ticket key (ChaCha20-Poly1305, rotated every 6 hours by rustls; the previous key still decrypts)
    /// and an empty session cache.
    pub fn new() -> Result<Self, TlsSetupError> {
        let ticketer = rustls::crypto::ring::Ticketer::new().map_err(TlsSetupError::Settings)?;
        Ok(Self { ticketer, sessions: ServerSessionMemoryCache::new(TLS12_SESSION_CACHE_ENTRIES) })
    }
}

/// The settings for new handshakes with `identity`.
pub fn server_config(identity: &ServerIdentity, resumption: &Resumption) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let mut config = ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Settings)?
        .with_no_client_auth()
        .with_cert_resolver(identity.resolver());
    config.alpn_protocols = vec![wire::TLS_ALPN_PROTOCOL.to_vec()];
    config.ticketer = resumption.ticketer.clone();
    config.session_storage = resumption.sessions.clone();
    config.send_tls13_tickets = TLS13_TICKETS_PER_HANDSHAKE;
    config.max_early_data_size = 0;
    Ok(Arc::new(config))
}
