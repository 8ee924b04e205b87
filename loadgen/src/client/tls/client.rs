//! [`TlsClient`]: what every TLS connection of an agent shares — the rustls client configuration (the `ring`
//! provider, TLS 1.3 and 1.2, the trusted roots from `--ca` or the spawned engines' dev certificate, ALPN
//! `ringline/1`) and the rule for the server name: `--tls-server-name` if given (verified and sent as SNI), else
//! the target's IP address (verified against the certificate's IP names; no SNI is sent for an address).
//! It opens one [`TlsConnection`] per TCP connection with that user's [`SessionTickets`]. No sockets, no clock.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use super::{SessionTickets, TlsConnection, TlsError};
use crate::limits::TLS_ROOTS_PEM_BYTES_MAX;

/// The ALPN protocol id of ringline's native protocol over TLS (`wire` names it for both ends).
pub const ALPN_RINGLINE: &[u8] = wire::TLS_ALPN_PROTOCOL;

/// Why the TLS client could not be set up from the run's flags.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    #[error("the trusted certificates file is {bytes} bytes, over {TLS_ROOTS_PEM_BYTES_MAX}")]
    RootsTooLarge { bytes: usize },
    #[error("the trusted certificates file is not PEM: {0}")]
    RootsPem(String),
    #[error("the trusted certificates file holds no `BEGIN CERTIFICATE` block")]
    NoRoots,
    #[error("certificate {index} of the trusted certificates file cannot be a root: {error}")]
    BadRoot { index: usize, error: rustls::Error },
    #[error("`{0}` is not a DNS name or IP address for --tls-server-name")]
    ServerName(String),
    #[error("rustls refused the client configuration: {0}")]
    Config(rustls::Error),
}

/// The TLS side every connection of an agent shares.
#[derive(Debug)]
pub struct TlsClient {
    /// Shared by every connection; each connect clones it with that user's ticket store (the store is the only
    /// per-user part, and rustls keys its stores by server name alone, which all of an agent's users share).
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
    roots: usize,
    /// Whether a reconnect offers the user's ticket (`--tls-no-resumption` turns it off).
    resumption: bool,
}

impl TlsClient {
    /// `roots_pem`: PEM certificates to trust. `server_name`: the name to verify and send as SNI; `None` for
    /// the target's IP address.
    pub fn new(roots_pem: &[u8], server_name: Option<&str>) -> Result<Self, TlsSetupError> {
        if roots_pem.len() > TLS_ROOTS_PEM_BYTES_MAX {
            return Err(TlsSetupError::RootsTooLarge { bytes: roots_pem.len() });
        }
        let mut roots = RootCertStore::empty();
        for (index, certificate) in CertificateDer::pem_slice_iter(roots_pem).enumerate() {
            let certificate = certificate.map_err(|error| TlsSetupError::RootsPem(error.to_string()))?;
            roots.add(certificate).map_err(|error| TlsSetupError::BadRoot { index, error })?;
        }
        if roots.is_empty() {
            return Err(TlsSetupError::NoRoots);
        }
        let server_name = match server_name {
            None => None,
            Some(name) => {
                Some(ServerName::try_from(name.to_owned()).map_err(|_| TlsSetupError::ServerName(name.to_owned()))?)
            }
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsSetupError::Config)?
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![ALPN_RINGLINE.to_vec()];
        Ok(Self { config: Arc::new(config), server_name, roots: roots.len(), resumption: true })
    }

    /// Every handshake full, no ticket offered or kept: to measure what resumption saves.
    pub fn without_resumption(self) -> Self {
        Self { resumption: false, ..self }
    }

    /// How many certificates are trusted.
    pub fn roots(&self) -> usize {
        self.roots
    }

    /// Starts the TLS side of a connection to `target` (its ClientHello is ready to write at once), resuming
    /// with one of `tickets` if it holds any. `connect_started_us`: when the TCP connect began, for the
    /// handshake latency.
    pub fn connect(
        &self,
        target: SocketAddr,
        tickets: &Arc<SessionTickets>,
        connect_started_us: u64,
    ) -> Result<TlsConnection, TlsError> {
        let mut config = ClientConfig::clone(&self.config);
        config.resumption = if self.resumption { Resumption::store(tickets.clone()) } else { Resumption::disabled() };
        let name = self.server_name.clone().unwrap_or_else(|| ServerName::IpAddress(target.ip().into()));
        let connection = ClientConnection::new(Arc::new(config), name)?;
        Ok(TlsConnection::new(connection, connect_started_us))
    }
}
