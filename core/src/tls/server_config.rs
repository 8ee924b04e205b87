//! The rustls server settings ringline serves with: TLS 1.3 and 1.2 with ring's cipher suites in the
//! server's order (AES-128-GCM first: its SHA-256 key schedule costs less than AES-256-GCM's SHA-384, which
//! rustls clients prefer; ChaCha20-Poly1305 for clients without AES), ALPN `ringline/1` (a client offering
//! only other protocols is refused, one offering none is served), no client certificates, no early data, and
//! session resumption: TLS 1.3 tickets from one ticket key rotator shared by every core (a client
//! reconnecting lands on any core), and a bounded TLS 1.2 session cache.
//!
//! Owns the resumption state that must outlive a certificate reload (`Resumption`); builds a fresh
//! `ServerConfig` per identity. Does no I/O.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};
use rustls::{ServerConfig, SupportedCipherSuite};

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

/// The cipher suites, in the server's order of preference.
fn cipher_suites() -> Vec<SupportedCipherSuite> {
    use rustls::crypto::ring::cipher_suite::{
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, TLS13_AES_128_GCM_SHA256,
        TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
    };
    vec![
        TLS13_AES_128_GCM_SHA256,
        TLS13_AES_256_GCM_SHA384,
        TLS13_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]
}

/// The settings for new handshakes with `identity`.
pub fn server_config(identity: &ServerIdentity, resumption: &Resumption) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let provider = CryptoProvider { cipher_suites: cipher_suites(), ..(*crypto_provider()).clone() };
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Settings)?
        .with_no_client_auth()
        .with_cert_resolver(identity.resolver());
    config.alpn_protocols = vec![wire::TLS_ALPN_PROTOCOL.to_vec()];
    config.ticketer = resumption.ticketer.clone();
    config.session_storage = resumption.sessions.clone();
    config.send_tls13_tickets = TLS13_TICKETS_PER_HANDSHAKE;
    config.max_early_data_size = 0;
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}
