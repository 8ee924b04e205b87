//! [`SessionTickets`]: the TLS sessions one user remembers between its connections, as a phone would: at most
//! TLS_TICKETS_PER_USER_MAX TLS 1.3 tickets (each resumption takes one; every handshake brings new ones), one
//! TLS 1.2 session, and the key exchange group the server chose. A user's first connect finds nothing and does
//! a full handshake; its reconnects resume.
//!
//! Why per user and not rustls's shared `ClientSessionMemoryCache`: rustls keys a store by server name, and all
//! of an agent's users connect to the same few names, so a shared store would hand one user's tickets to
//! another user's first connect (resumed handshakes where a real first login does a full one) and keep only
//! eight tickets per server, far too few for a reconnect storm. Holds only what rustls hands it; no I/O.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use rustls::NamedGroup;
use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;

use crate::limits::TLS_TICKETS_PER_USER_MAX;

/// One user's remembered TLS sessions. rustls calls it from the connection's own core only; the mutex is there
/// because rustls requires `Sync`, and is never contended.
#[derive(Default)]
pub struct SessionTickets {
    remembered: Mutex<Remembered>,
}

#[derive(Default)]
struct Remembered {
    /// The server everything below is for; a different name forgets it all.
    server_name: Option<ServerName<'static>>,
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    /// Oldest first; at most TLS_TICKETS_PER_USER_MAX.
    tls13: VecDeque<Tls13ClientSessionValue>,
}

impl Remembered {
    /// The state for `server_name`, forgetting another server's.
    fn for_server(&mut self, server_name: ServerName<'static>) -> &mut Self {
        if self.server_name.as_ref() != Some(&server_name) {
            *self = Remembered { server_name: Some(server_name), ..Default::default() };
        }
        self
    }

    fn is_for(&self, server_name: &ServerName<'_>) -> bool {
        self.server_name.as_ref().is_some_and(|name| name == server_name)
    }
}

impl SessionTickets {
    pub fn new() -> Self {
        Self::default()
    }

    /// TLS 1.3 tickets held now.
    pub fn tickets(&self) -> usize {
        self.lock().tls13.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Remembered> {
        // A panic elsewhere cannot leave this data half-written: every update is a single assignment or push.
        self.remembered.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for SessionTickets {
    /// Counts only: tickets carry secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let remembered = self.lock();
        f.debug_struct("SessionTickets")
            .field("server_name", &remembered.server_name)
            .field("tls13_tickets", &remembered.tls13.len())
            .field("tls12_session", &remembered.tls12.is_some())
            .finish()
    }
}

impl ClientSessionStore for SessionTickets {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.lock().for_server(server_name).kx_hint = Some(group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        let remembered = self.lock();
        remembered.kx_hint.filter(|_| remembered.is_for(server_name))
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.lock().for_server(server_name).tls12 = Some(value);
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        let remembered = self.lock();
        remembered.tls12.clone().filter(|_| remembered.is_for(server_name))
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        let mut remembered = self.lock();
        if remembered.is_for(server_name) {
            remembered.tls12 = None;
        }
    }

    fn insert_tls13_ticket(&self, server_name: ServerName<'static>, value: Tls13ClientSessionValue) {
        let mut remembered = self.lock();
        let tickets = &mut remembered.for_server(server_name).tls13;
        if tickets.len() >= TLS_TICKETS_PER_USER_MAX {
            tickets.pop_front();
        }
        tickets.push_back(value);
    }

    fn take_tls13_ticket(&self, server_name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        let mut remembered = self.lock();
        if !remembered.is_for(server_name) {
            return None;
        }
        remembered.tls13.pop_back()
    }
}
