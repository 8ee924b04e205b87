//! One core's TLS: the settings its TLS listener gives new handshakes (its own copy of the process's current
//! `ServerConfig`, taken again when a certificate reload bumps the generation), the handshakes in progress
//! with their deadline (`--tls-handshake-timeout`) and their limit, the pool of TLS record buffers and the
//! core's TLS counters. The per-connection layer is `ringline_core::tls::TlsSession`, kept beside the socket in
//! `SocketTable`; the I/O loop (`conn.rs`) moves bytes through it.
//!
//! Owns no socket and makes no system call. Never shared between cores.
//!
//! Limits: at most `TLS_HANDSHAKES_IN_PROGRESS_PER_CORE_MAX` handshakes in progress (the I/O loop stops
//! accepting on the TLS listener at the limit); the list of connections to check for the deadline holds at
//! most twice that (it is compacted when it reaches it).

use std::cell::RefCell;
use std::sync::Arc;

use rustls::ServerConfig;

use ringline_core::buffer_pool::BufferPool;
use ringline_core::limits::TLS_HANDSHAKES_IN_PROGRESS_PER_CORE_MAX;
use ringline_core::shard::ConnId;
use ringline_core::tls::{HandshakeDone, TlsFailure, TlsSession, TlsStats};

use super::sockets::SocketTable;
use super::tls_reload::TlsCertificates;

/// A core's TLS state.
pub struct CoreTls {
    certificates: Arc<TlsCertificates>,
    /// This core's copy of the settings for new handshakes, and their generation.
    config: RefCell<(u64, Arc<ServerConfig>)>,
    handshake_timeout_us: u64,
    /// Connections that were handshaking when last looked at.
    handshaking: RefCell<Vec<ConnId>>,
    /// Buffers for incomplete and unwritten TLS records.
    pub pool: RefCell<BufferPool>,
    pub stats: RefCell<TlsStats>,
}

impl CoreTls {
    pub fn new(certificates: Arc<TlsCertificates>, handshake_timeout_us: u64) -> Self {
        let (generation, shared) = certificates.current();
        Self {
            certificates,
            config: RefCell::new((generation, Arc::new(ServerConfig::clone(&shared)))),
            handshake_timeout_us,
            handshaking: RefCell::new(Vec::new()),
            pool: RefCell::new(BufferPool::default()),
            stats: RefCell::new(TlsStats::default()),
        }
    }

    /// Takes the process's current settings if a reload changed them. A copy per core, so handshakes on
    /// different cores do not share the settings' reference count.
    pub fn refresh_config(&self) {
        if self.config.borrow().0 == self.certificates.generation() {
            return;
        }
        let (generation, shared) = self.certificates.current();
        *self.config.borrow_mut() = (generation, Arc::new(ServerConfig::clone(&shared)));
    }

    /// Whether another handshake may start; counts the times it may not.
    pub fn may_accept(&self) -> bool {
        let mut stats = self.stats.borrow_mut();
        let room = (stats.handshakes_in_progress as usize) < TLS_HANDSHAKES_IN_PROGRESS_PER_CORE_MAX;
        if !room {
            stats.handshake_limit_waits += 1;
        }
        room
    }

    /// The TLS layer for a connection accepted now.
    pub fn new_session(&self, now_us: u64) -> Option<Box<TlsSession>> {
        let config = self.config.borrow().1.clone();
        match TlsSession::new(config, now_us) {
            Ok(session) => Some(Box::new(session)),
            Err(error) => {
                tracing::warn!(%error, "cannot start a TLS connection; closing it");
                None
            }
        }
    }

    /// `session` now belongs to connection `conn` of this core (accepted, or adopted from another core).
    pub fn session_added(&self, conn: ConnId, session: &TlsSession, sockets: &SocketTable) {
        let mut stats = self.stats.borrow_mut();
        stats.connections += 1;
        if !session.is_handshaking() {
            return;
        }
        stats.handshakes_in_progress += 1;
        let mut handshaking = self.handshaking.borrow_mut();
        if handshaking.len() >= 2 * TLS_HANDSHAKES_IN_PROGRESS_PER_CORE_MAX {
            handshaking.retain(|&conn| sockets.tls(conn).is_some_and(TlsSession::is_handshaking));
        }
        handshaking.push(conn);
    }

    /// `session` leaves this core (closed, or handed to another core).
    pub fn session_removed(&self, session: &TlsSession) {
        let mut stats = self.stats.borrow_mut();
        stats.connections = stats.connections.saturating_sub(1);
        if session.is_handshaking() {
            stats.handshakes_in_progress = stats.handshakes_in_progress.saturating_sub(1);
        }
    }

    pub fn handshake_done(&self, done: HandshakeDone) {
        let mut stats = self.stats.borrow_mut();
        stats.handshakes_in_progress = stats.handshakes_in_progress.saturating_sub(1);
        if done.resumed {
            stats.handshakes_resumed += 1;
        } else {
            stats.handshakes_full += 1;
        }
        stats.handshake_us.record(done.took_us);
    }

    pub fn count_failure(&self, failure: TlsFailure) {
        self.stats.borrow_mut().count_failure(failure);
    }

    /// Connections whose handshake is past its deadline, into `out`; forgets those no longer handshaking.
    pub fn expired_handshakes(&self, sockets: &SocketTable, now_us: u64, out: &mut Vec<ConnId>) {
        let timeout_us = self.handshake_timeout_us;
        self.handshaking.borrow_mut().retain(|&conn| match sockets.tls(conn) {
            Some(session) if session.is_handshaking() => {
                if session.accepted_us().saturating_add(timeout_us) <= now_us {
                    out.push(conn);
                    return false;
                }
                true
            }
            _ => false,
        });
    }
}
