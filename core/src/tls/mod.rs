//! TLS for the native protocol, sans-IO. Inside TLS the bytes are exactly the native protocol; this module
//! only turns records into those bytes and back, and says who may connect:
//! - `session`: `TlsSession`, one connection's TLS layer over rustls' unbuffered API (the caller owns the
//!   buffers; an idle connection holds none), classified failures.
//! - `identity`: the certificate chain and key from PEM, checked; the SNI check.
//! - `server_config`: the rustls settings (versions, ALPN `ringline/1`, tickets, session cache).
//! - `dev_cert`: the certificate of `ringline tls dev-cert`, self-signed, made with rcgen (the engine writes it).
//! - `stats`: a core's TLS counters.
//!
//! It does no socket I/O, reads no file and keeps no clock: the engine's `rt/` reads and writes the sockets, runs the handshake timeout
//! and swaps settings when the certificate is reloaded. The shard never sees TLS.

mod dev_cert;
mod identity;
mod server_config;
mod session;
mod stats;

pub use dev_cert::{DEV_CERT_DEFAULT_NAMES, DevCertError, DevCertificate};
pub use identity::{ServerIdentity, TlsSetupError, crypto_provider, sha256_fingerprint};
pub use server_config::{Resumption, server_config};
pub use session::{HandshakeDone, Received, TlsError, TlsSession};
pub use stats::{TlsFailure, TlsStats};
