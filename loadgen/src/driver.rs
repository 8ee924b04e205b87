//! The seam between the agent runtime and a chat protocol. The runtime (`agent/core.rs`) owns sockets, timers
//! and accounting; a driver owns one connection's protocol state and speaks in protocol-neutral
//! [`SessionEvent`]s (welcome, acked, rejected, delivered, receipt, goaway, error). ringline's native protocol is
//! [`ClientSession`]; XMPP is [`XmppSession`] (stream negotiation and SASL before its `Welcome`, XEP-0198 acks
//! as `Acked`, XEP-0184 receipts as `Receipt`, string ids mapped to u64 ids). [`AnyDriver`] is what an agent core
//! holds: one of them, chosen per run by `--protocol`.
//! Drivers are sans-IO: bytes and times in, bytes and events out.

use std::sync::Arc;

use wire::UserKey;

use crate::body::MessageBody;
use crate::session::{ClientSession, OutgoingMessage, SendRefused, SessionError, SessionEvent};
use crate::xmpp::{XmppRealm, XmppSession};

/// Drops the first `written` bytes of a driver's outbound buffer, and frees the buffer once it is empty and
/// larger than `OUTBOUND_KEEP_BYTES_MAX`. Every driver's `handle_transmitted` is this.
pub fn consume_written(outbound: &mut Vec<u8>, written: usize) {
    let written = written.min(outbound.len());
    outbound.drain(..written);
    if outbound.is_empty() && outbound.capacity() > crate::limits::OUTBOUND_KEEP_BYTES_MAX {
        *outbound = Vec::new();
    }
}

/// One client connection of some chat protocol, as the agent runtime drives it.
pub trait ChatDriver {
    /// The user this connection logs in as.
    fn user(&self) -> u64;
    /// A TCP connection is up: queue the login.
    fn handle_connected(&mut self, now_us: u64);
    /// The connection is gone; unacknowledged sends stay and are retried after the next login.
    fn handle_disconnected(&mut self);
    /// Bytes arrived; events for the runtime are appended to `events`.
    fn handle_input(&mut self, input: &[u8], events: &mut Vec<SessionEvent>) -> Result<(), SessionError>;
    /// Time passed: keepalives.
    fn handle_timeout(&mut self, now_us: u64);
    /// The runtime is about to close the connection on purpose (end of the run): queue the protocol's goodbye,
    /// if it has one, for one last best-effort write.
    fn handle_close(&mut self);
    /// Schedules a message; refused when the driver's bounded backlog is full.
    fn try_queue_send(&mut self, body: MessageBody) -> Result<OutgoingMessage, SendRefused>;
    /// Bytes to write now, and how many were written.
    fn transmit(&self) -> &[u8];
    fn handle_transmitted(&mut self, written: usize);
    /// Logged in and serving.
    fn is_online(&self) -> bool;
    /// The server is closing the connection on purpose (GOAWAY, ERROR, or the protocol's equivalent).
    fn is_closing(&self) -> bool;
}

impl ChatDriver for XmppSession {
    fn user(&self) -> u64 {
        XmppSession::user(self)
    }
    fn handle_connected(&mut self, now_us: u64) {
        XmppSession::handle_connected(self, now_us)
    }
    fn handle_disconnected(&mut self) {
        XmppSession::handle_disconnected(self)
    }
    fn handle_input(&mut self, input: &[u8], events: &mut Vec<SessionEvent>) -> Result<(), SessionError> {
        XmppSession::handle_input(self, input, events)
    }
    fn handle_timeout(&mut self, now_us: u64) {
        XmppSession::handle_timeout(self, now_us)
    }
    fn handle_close(&mut self) {
        XmppSession::handle_close(self)
    }
    fn try_queue_send(&mut self, body: MessageBody) -> Result<OutgoingMessage, SendRefused> {
        XmppSession::try_queue_send(self, body)
    }
    fn transmit(&self) -> &[u8] {
        XmppSession::transmit(self)
    }
    fn handle_transmitted(&mut self, written: usize) {
        XmppSession::handle_transmitted(self, written)
    }
    fn is_online(&self) -> bool {
        XmppSession::is_online(self)
    }
    fn is_closing(&self) -> bool {
        XmppSession::is_closing(self)
    }
}

impl ChatDriver for ClientSession {
    fn user(&self) -> u64 {
        ClientSession::user(self)
    }
    fn handle_connected(&mut self, now_us: u64) {
        ClientSession::handle_connected(self, now_us)
    }
    fn handle_disconnected(&mut self) {
        ClientSession::handle_disconnected(self)
    }
    fn handle_input(&mut self, input: &[u8], events: &mut Vec<SessionEvent>) -> Result<(), SessionError> {
        ClientSession::handle_input(self, input, events)
    }
    fn handle_timeout(&mut self, now_us: u64) {
        ClientSession::handle_timeout(self, now_us)
    }
    /// The native protocol has no goodbye: the server ends the session when the socket closes.
    fn handle_close(&mut self) {}
    fn try_queue_send(&mut self, body: MessageBody) -> Result<OutgoingMessage, SendRefused> {
        ClientSession::try_queue_send(self, body)
    }
    fn transmit(&self) -> &[u8] {
        ClientSession::transmit(self)
    }
    fn handle_transmitted(&mut self, written: usize) {
        ClientSession::handle_transmitted(self, written)
    }
    fn is_online(&self) -> bool {
        ClientSession::is_online(self)
    }
    fn is_closing(&self) -> bool {
        ClientSession::is_closing(self)
    }
}

/// Who a connection logs in as, per protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverUser {
    Native(UserKey),
    Xmpp { user: u64, password: Arc<str>, realm: Arc<XmppRealm> },
}

impl DriverUser {
    pub fn user(&self) -> u64 {
        match self {
            DriverUser::Native(key) => key.user,
            DriverUser::Xmpp { user, .. } => *user,
        }
    }
}

/// The driver of one connection, whichever protocol the run speaks. The XMPP session is boxed so that native
/// runs, which hold the most connections, keep their small slots.
#[derive(Debug)]
pub enum AnyDriver {
    Native(ClientSession),
    Xmpp(Box<XmppSession>),
}

impl AnyDriver {
    pub fn new(user: &DriverUser, body_bytes: u32, ping_interval_us: u64, client_msg_id_base: u64) -> Self {
        match user {
            DriverUser::Native(key) => {
                AnyDriver::Native(ClientSession::new(*key, body_bytes, ping_interval_us, client_msg_id_base))
            }
            DriverUser::Xmpp { user, password, realm } => AnyDriver::Xmpp(Box::new(XmppSession::new(
                realm.clone(),
                *user,
                password,
                body_bytes,
                ping_interval_us,
                client_msg_id_base,
            ))),
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $driver:ident => $call:expr) => {
        match $self {
            AnyDriver::Native($driver) => $call,
            AnyDriver::Xmpp($driver) => $call,
        }
    };
}

impl ChatDriver for AnyDriver {
    fn user(&self) -> u64 {
        dispatch!(self, driver => driver.user())
    }
    fn handle_connected(&mut self, now_us: u64) {
        dispatch!(self, driver => driver.handle_connected(now_us))
    }
    fn handle_disconnected(&mut self) {
        dispatch!(self, driver => driver.handle_disconnected())
    }
    fn handle_input(&mut self, input: &[u8], events: &mut Vec<SessionEvent>) -> Result<(), SessionError> {
        dispatch!(self, driver => driver.handle_input(input, events))
    }
    fn handle_timeout(&mut self, now_us: u64) {
        dispatch!(self, driver => driver.handle_timeout(now_us))
    }
    fn handle_close(&mut self) {
        match self {
            AnyDriver::Native(_) => {}
            AnyDriver::Xmpp(driver) => driver.handle_close(),
        }
    }
    fn try_queue_send(&mut self, body: MessageBody) -> Result<OutgoingMessage, SendRefused> {
        dispatch!(self, driver => driver.try_queue_send(body))
    }
    fn transmit(&self) -> &[u8] {
        dispatch!(self, driver => driver.transmit())
    }
    fn handle_transmitted(&mut self, written: usize) {
        dispatch!(self, driver => driver.handle_transmitted(written))
    }
    fn is_online(&self) -> bool {
        dispatch!(self, driver => driver.is_online())
    }
    fn is_closing(&self) -> bool {
        dispatch!(self, driver => driver.is_closing())
    }
}
