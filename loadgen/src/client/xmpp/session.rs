//! One XMPP client connection as a sans-IO state machine behind `ChatDriver`: stream open, SASL PLAIN, stream
//! restart, resource bind, session (only if the server requires it), XEP-0198 stream management, initial
//! presence, then chat. It owns the connection's outbound bytes, its inbound parser (`stream.rs`), its unacked
//! messages and its backlog, each bounded (`limits.rs`, `stream.rs`), and touches no socket or clock.
//!
//! Mapping to the protocol-neutral events:
//! - `Welcome` once bound, stream management enabled (if offered) and initial presence written;
//! - `Acked` when the server's XEP-0198 `<a h=…/>` covers the message's stanza; a server without stream
//!   management acks nothing, so there a message counts as acked when its XEP-0184 receipt arrives;
//! - `Rejected` for a `<message type='error'>` answering one of our ids;
//! - `Delivered` for a `<message>` with a `<body>` (the loadgen body, base64); its XEP-0184 `<request/>` is
//!   answered with `<received/>` at once;
//! - `Receipt` for a `<received id=…/>`;
//! - `Goaway` / `ServerError` for `<stream:error>`, SASL `<failure/>` and `</stream:stream>`.
//!
//! Ids: a message's id is `lg` + its client_msg_id in hex. The same number is the ledger's server id (acks carry
//! no id of their own), the recipient's item id and the receipt's id, so all three meet in the ledger. After a
//! reconnect, unacked messages are sent again with the same ids (no XEP-0198 resumption): a copy delivered
//! twice then shows as `redelivered`, not as a duplicate.
//! Keepalive: `<r/>` when messages are unacked (it recovers a lost ack too), else a whitespace ping.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use quick_xml::escape::escape;
use wire::{ErrorCode, GoawayReason, ReceiptKind, RejectCode};

use super::XmppRealm;
use super::stream::{Element, StreamError, StreamItem, StreamParser};
use crate::client::body::{BodyError, MessageBody};
use crate::client::driver::{ChatDriver, OutgoingMessage, SendRefused, SessionEvent, consume_written};
use crate::client::keepalive::KeepaliveClock;
use crate::client::send_backlog::SendBacklog;
use crate::limits::{OUTBOUND_BYTES_MAX, UNACKED_SENDS_MAX};

const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_SM: &str = "urn:xmpp:sm:3";
const NS_RECEIPTS: &str = "urn:xmpp:receipts";
const NS_PING: &str = "urn:xmpp:ping";
/// The resource every loadgen connection binds (a reconnect replaces the old session of the same user).
const RESOURCE: &str = "lg";
const BIND_ID: &str = "lg-bind";
const SESSION_ID: &str = "lg-sess";

/// Why an XMPP session cannot go on; the runtime closes the connection and reconnects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XmppError {
    #[error("{0}")]
    Stream(#[from] StreamError),
    #[error("the server offers no SASL PLAIN (enable plain auth for load tests)")]
    NoPlainMechanism,
    #[error("the server requires STARTTLS (loadgen speaks plaintext XMPP: disable starttls_required)")]
    TlsRequired,
    #[error("resource bind failed: {detail}")]
    BindFailed { detail: String },
    #[error("session establishment failed")]
    SessionFailed,
    #[error("unexpected <{name}> while {phase}")]
    Unexpected { name: String, phase: &'static str },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Offline,
    /// Stream header written, waiting for `<stream:features>`; `authenticated` after SASL success.
    Features {
        authenticated: bool,
    },
    Authenticating,
    Binding,
    Session,
    EnablingStreamManagement,
    Online,
    Closing,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Offline => "offline",
            Phase::Features { authenticated: false } => "waiting for stream features",
            Phase::Features { authenticated: true } => "waiting for post-auth stream features",
            Phase::Authenticating => "authenticating",
            Phase::Binding => "binding a resource",
            Phase::Session => "establishing a session",
            Phase::EnablingStreamManagement => "enabling stream management",
            Phase::Online => "online",
            Phase::Closing => "closing",
        }
    }
}

/// XEP-0198 counters of the current stream, both from `<enable/>` on.
#[derive(Debug, Default, Clone, Copy)]
struct StreamManagement {
    /// Stanzas written since `<enable/>`: the number the server's `h` counts up to.
    outbound: u32,
    /// Stanzas received since `<enabled/>`: our `h`.
    inbound: u32,
}

#[derive(Debug, Clone, Copy)]
struct Unacked {
    /// This message's stanza number in the current stream (meaningless without stream management).
    stanza: u32,
    message: OutgoingMessage,
}

/// The client side of one XMPP c2s connection (one user).
#[derive(Debug)]
pub struct XmppSession {
    realm: Arc<XmppRealm>,
    user: u64,
    password: Box<str>,
    phase: Phase,
    body_bytes: u32,
    keepalive: KeepaliveClock,
    stream_management_offered: bool,
    session_required: bool,
    /// `Some` once the server said `<enabled/>` on this stream.
    stream_management: Option<StreamManagement>,
    /// Bytes not yet written. Bounded by OUTBOUND_BYTES_MAX for messages; control stanzas may pass it.
    outbound: Vec<u8>,
    parser: StreamParser,
    /// Messages written and not acked, in send order. At most UNACKED_SENDS_MAX.
    unacked: VecDeque<Unacked>,
    /// Messages scheduled and not written yet. At most SEND_BACKLOG_MAX.
    backlog: SendBacklog,
}

impl XmppSession {
    /// `client_msg_id_base` makes message ids unique across runs.
    pub fn new(
        realm: Arc<XmppRealm>,
        user: u64,
        password: &str,
        body_bytes: u32,
        ping_interval_us: u64,
        client_msg_id_base: u64,
    ) -> Self {
        Self {
            realm,
            user,
            password: password.into(),
            phase: Phase::Offline,
            body_bytes,
            keepalive: KeepaliveClock::new(ping_interval_us),
            stream_management_offered: false,
            session_required: false,
            stream_management: None,
            outbound: Vec::new(),
            parser: StreamParser::default(),
            unacked: VecDeque::new(),
            backlog: SendBacklog::new(client_msg_id_base),
        }
    }

    pub fn user(&self) -> u64 {
        self.user
    }

    pub fn is_online(&self) -> bool {
        self.phase == Phase::Online
    }

    pub fn is_closing(&self) -> bool {
        self.phase == Phase::Closing
    }

    /// Whether the server enabled XEP-0198 on the current stream.
    pub fn stream_management_enabled(&self) -> bool {
        self.stream_management.is_some()
    }

    /// Messages scheduled and not yet answered (unacked or in the backlog).
    pub fn sends_pending(&self) -> usize {
        self.unacked.len() + self.backlog.len()
    }

    /// A TCP connection is up: open the stream.
    pub fn handle_connected(&mut self, now_us: u64) {
        self.outbound.clear();
        self.parser.reset();
        self.stream_management = None;
        self.stream_management_offered = false;
        self.session_required = false;
        self.write_stream_header();
        self.phase = Phase::Features { authenticated: false };
        self.keepalive.restart(now_us);
    }

    /// The connection is gone. Unacked messages stay and are sent again first after the next login.
    pub fn handle_disconnected(&mut self) {
        self.phase = Phase::Offline;
        self.outbound = Vec::new();
        self.parser.reset();
        self.stream_management = None;
    }

    /// Schedules a message. Written at once when online and within limits, else kept in the bounded backlog.
    pub fn try_queue_send(&mut self, body: MessageBody) -> Result<OutgoingMessage, SendRefused> {
        let message = self.backlog.push(body)?;
        self.promote_backlog();
        Ok(message)
    }

    /// Keepalive once the interval has passed.
    pub fn handle_timeout(&mut self, now_us: u64) {
        if self.phase == Phase::Online && self.keepalive.take_due(now_us) {
            if self.stream_management.is_some() && !self.unacked.is_empty() {
                self.write_ack_request();
            } else {
                self.outbound.push(b' ');
            }
        }
    }

    /// The runtime closes the connection on purpose: end the stream, so the server ends the session now rather
    /// than keep it for XEP-0198 resumption.
    pub fn handle_close(&mut self) {
        if !matches!(self.phase, Phase::Offline | Phase::Closing) {
            self.outbound.extend_from_slice(b"</stream:stream>");
            self.phase = Phase::Closing;
        }
    }

    pub fn transmit(&self) -> &[u8] {
        &self.outbound
    }

    pub fn handle_transmitted(&mut self, written: usize) {
        consume_written(&mut self.outbound, written);
    }

    /// Bytes read from the connection: parses every complete element, answers what needs answering and appends
    /// what happened to `events`.
    pub fn handle_input(&mut self, input: &[u8], events: &mut Vec<SessionEvent>) -> Result<(), XmppError> {
        let mut items = Vec::new();
        self.parser.handle_input(input, &mut items)?;
        for item in items {
            if self.phase == Phase::Closing {
                break;
            }
            match item {
                StreamItem::Header => {}
                StreamItem::End => {
                    self.phase = Phase::Closing;
                    events.push(SessionEvent::Goaway { reason: GoawayReason::ShuttingDown });
                }
                StreamItem::Element(element) => self.handle_element(&element, events)?,
            }
        }
        Ok(())
    }

    fn handle_element(&mut self, element: &Element, events: &mut Vec<SessionEvent>) -> Result<(), XmppError> {
        let local = element.local_name();
        if element.name.starts_with("stream:") && local == "error" {
            self.phase = Phase::Closing;
            events.push(stream_error_event(element));
            return Ok(());
        }
        match (self.phase, local) {
            (Phase::Features { authenticated: false }, "features") => {
                if element.child("starttls").is_some_and(|starttls| starttls.child("required").is_some()) {
                    return Err(XmppError::TlsRequired);
                }
                let plain = element.child("mechanisms").is_some_and(|mechanisms| {
                    mechanisms.children.iter().any(|mechanism| mechanism.text.trim() == "PLAIN")
                });
                if !plain {
                    return Err(XmppError::NoPlainMechanism);
                }
                self.write_auth();
                self.phase = Phase::Authenticating;
            }
            (Phase::Authenticating, "success") => {
                // A new stream on the same connection; the parser reads the server's new header as an item.
                self.write_stream_header();
                self.phase = Phase::Features { authenticated: true };
            }
            (Phase::Authenticating, "failure") => {
                self.phase = Phase::Closing;
                events.push(SessionEvent::ServerError { code: ErrorCode::AuthFailed });
            }
            (Phase::Features { authenticated: true }, "features") => {
                self.stream_management_offered = element
                    .children
                    .iter()
                    .any(|child| child.local_name() == "sm" && child.attribute("xmlns") == Some(NS_SM));
                self.session_required =
                    element.child("session").is_some_and(|session| session.child("optional").is_none());
                let _ = write!(
                    self.outbound_text(),
                    "<iq type='set' id='{BIND_ID}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
                     <resource>{RESOURCE}</resource></bind></iq>"
                );
                self.phase = Phase::Binding;
            }
            (Phase::Binding, "iq") if element.attribute("id") == Some(BIND_ID) => {
                if element.attribute("type") != Some("result") {
                    let detail = element.child("error").map_or_else(|| "no reason".to_owned(), error_condition);
                    return Err(XmppError::BindFailed { detail });
                }
                if self.session_required {
                    let _ = write!(
                        self.outbound_text(),
                        "<iq type='set' id='{SESSION_ID}'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>"
                    );
                    self.phase = Phase::Session;
                } else {
                    self.after_bind(events);
                }
            }
            (Phase::Session, "iq") if element.attribute("id") == Some(SESSION_ID) => {
                if element.attribute("type") != Some("result") {
                    return Err(XmppError::SessionFailed);
                }
                self.after_bind(events);
            }
            (Phase::EnablingStreamManagement, "enabled") => {
                self.stream_management = Some(StreamManagement::default());
                self.go_online(events);
            }
            (Phase::EnablingStreamManagement, "failed") => self.go_online(events),
            (Phase::Online | Phase::Binding | Phase::Session | Phase::EnablingStreamManagement, _) => {
                self.handle_online(element, events)
            }
            (phase, _) => {
                return Err(XmppError::Unexpected { name: element.name.clone(), phase: phase.name() });
            }
        }
        Ok(())
    }

    /// Stanzas and stream-management elements, once authenticated.
    fn handle_online(&mut self, element: &Element, events: &mut Vec<SessionEvent>) {
        match element.local_name() {
            "r" => {
                let handled = self.stream_management.map_or(0, |sm| sm.inbound);
                let _ = write!(self.outbound_text(), "<a xmlns='{NS_SM}' h='{handled}'/>");
            }
            "a" => {
                if let Some(handled) = element.attribute("h").and_then(|h| h.parse::<u32>().ok()) {
                    self.handle_ack(handled, events);
                }
            }
            name @ ("message" | "presence" | "iq") => {
                if let Some(sm) = self.stream_management.as_mut() {
                    sm.inbound = sm.inbound.wrapping_add(1);
                }
                match name {
                    "message" => self.handle_message(element, events),
                    "iq" => self.handle_iq(element),
                    _ => {}
                }
            }
            // Other nonzas (e.g. a server's own `<enabled/>` repeat) carry nothing the run needs.
            _ => {}
        }
    }

    fn handle_message(&mut self, element: &Element, events: &mut Vec<SessionEvent>) {
        let id = element.attribute("id");
        let from = element.attribute("from");
        if element.attribute("type") == Some("error") {
            let client_msg_id = id.and_then(parse_message_id).unwrap_or(0);
            match self.take_unacked(client_msg_id) {
                Some(message) => {
                    events.push(SessionEvent::Rejected { message, code: reject_code(element) });
                    self.promote_backlog();
                }
                None => events.push(SessionEvent::AnswerUnmatched { client_msg_id }),
            }
            return;
        }
        if let Some(received) = element.child("received") {
            let server_id = received.attribute("id").and_then(parse_message_id);
            let peer = from.and_then(|jid| self.realm.user_of_jid(jid));
            if let (Some(server_id), Some(peer)) = (server_id, peer) {
                if self.stream_management.is_none()
                    && let Some(message) = self.take_unacked(server_id)
                {
                    events.push(SessionEvent::Acked { message, server_id });
                    self.promote_backlog();
                }
                events.push(SessionEvent::Receipt { server_id, peer, kind: ReceiptKind::Delivered });
            } else {
                events.push(SessionEvent::AnswerUnmatched { client_msg_id: server_id.unwrap_or(0) });
            }
        }
        if let Some(body) = element.child("body") {
            let item_id = id.and_then(parse_message_id).unwrap_or(0);
            let sender = from.and_then(|jid| self.realm.user_of_jid(jid)).unwrap_or(0);
            let decoded = BASE64
                .decode(body.text.trim())
                .map_err(|_| BodyError::Encoding)
                .and_then(|bytes| MessageBody::decode(&bytes));
            if element.child("request").is_some_and(|request| request.attribute("xmlns") == Some(NS_RECEIPTS))
                && let (Some(id), Some(from)) = (id, from)
            {
                let (to, id) = (escape(from), escape(id));
                let _ = write!(
                    self.outbound_text(),
                    "<message to='{to}' id='lgr-{id}'><received xmlns='{NS_RECEIPTS}' id='{id}'/></message>"
                );
                self.count_outbound_stanza();
            }
            events.push(SessionEvent::Delivered { item_id, from: sender, body: decoded });
        }
    }

    fn handle_iq(&mut self, element: &Element) {
        let Some(id) = element.attribute("id") else { return };
        if !matches!(element.attribute("type"), Some("get" | "set")) {
            return;
        }
        let id = escape(id).into_owned();
        let to = element.attribute("from").map(|from| format!(" to='{}'", escape(from))).unwrap_or_default();
        if element.child("ping").is_some_and(|ping| ping.attribute("xmlns") == Some(NS_PING)) {
            let _ = write!(self.outbound_text(), "<iq type='result' id='{id}'{to}/>");
        } else {
            let _ = write!(
                self.outbound_text(),
                "<iq type='error' id='{id}'{to}><error type='cancel'><service-unavailable \
                 xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
            );
        }
        self.count_outbound_stanza();
    }

    fn handle_ack(&mut self, handled: u32, events: &mut Vec<SessionEvent>) {
        if self.stream_management.is_none() {
            return;
        }
        while let Some(front) = self.unacked.front() {
            // Stanza numbers wrap at 2^32: `front` is covered when it is at most `handled` modulo 2^32.
            if handled.wrapping_sub(front.stanza) >= 1 << 31 {
                break;
            }
            let Some(acked) = self.unacked.pop_front() else { break };
            let message = acked.message;
            events.push(SessionEvent::Acked { message, server_id: message.client_msg_id });
        }
        self.promote_backlog();
    }

    fn after_bind(&mut self, events: &mut Vec<SessionEvent>) {
        if self.stream_management_offered {
            let _ = write!(self.outbound_text(), "<enable xmlns='{NS_SM}'/>");
            self.stream_management = None;
            self.phase = Phase::EnablingStreamManagement;
        } else {
            self.go_online(events);
        }
    }

    fn go_online(&mut self, events: &mut Vec<SessionEvent>) {
        // Stanzas count from `<enable/>`; nothing but `<enable/>` was written since.
        self.outbound.extend_from_slice(b"<presence/>");
        self.count_outbound_stanza();
        self.phase = Phase::Online;
        events.push(SessionEvent::Welcome { queued: 0 });
        // Send again what the last connection left unacked, in order, with the same ids.
        let unacked = std::mem::take(&mut self.unacked);
        for mut entry in unacked {
            entry.stanza = self.write_message(&entry.message);
            self.unacked.push_back(entry);
        }
        if !self.unacked.is_empty() && self.stream_management.is_some() {
            self.write_ack_request();
        }
        self.promote_backlog();
    }

    /// Writes backlog messages while online and within the outbound and unacked limits, then asks for an ack.
    fn promote_backlog(&mut self) {
        let mut wrote = false;
        while self.phase == Phase::Online
            && self.unacked.len() < UNACKED_SENDS_MAX
            && self.outbound.len() < OUTBOUND_BYTES_MAX
        {
            let Some(message) = self.backlog.pop_front() else { break };
            let stanza = self.write_message(&message);
            self.unacked.push_back(Unacked { stanza, message });
            wrote = true;
        }
        if wrote && self.stream_management.is_some() {
            self.write_ack_request();
        }
    }

    /// Writes one chat message; returns its stanza number.
    fn write_message(&mut self, message: &OutgoingMessage) -> u32 {
        let mut raw = Vec::with_capacity(self.body_bytes as usize);
        message.body.encode(self.body_bytes as usize, &mut raw);
        let to = self.realm.jid(message.body.recipient);
        let id = message.client_msg_id;
        let _ = write!(self.outbound_text(), "<message to='{to}' id='lg{id:x}' type='chat'><body>");
        let encoded = BASE64.encode(&raw);
        self.outbound.extend_from_slice(encoded.as_bytes());
        let _ = write!(self.outbound_text(), "</body><request xmlns='{NS_RECEIPTS}'/></message>");
        self.count_outbound_stanza()
    }

    fn write_ack_request(&mut self) {
        let _ = write!(self.outbound_text(), "<r xmlns='{NS_SM}'/>");
    }

    fn write_stream_header(&mut self) {
        let domain = escape(self.realm.domain.as_str()).into_owned();
        let _ = write!(
            self.outbound_text(),
            "<?xml version='1.0'?><stream:stream to='{domain}' xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
        );
    }

    fn write_auth(&mut self) {
        let localpart = self.realm.localpart(self.user);
        let mut credentials = Vec::with_capacity(localpart.len() + self.password.len() + 2);
        credentials.push(0);
        credentials.extend_from_slice(localpart.as_bytes());
        credentials.push(0);
        credentials.extend_from_slice(self.password.as_bytes());
        let encoded = BASE64.encode(&credentials);
        let _ = write!(self.outbound_text(), "<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{encoded}</auth>");
    }

    /// Counts a stanza written on this stream; returns its number (1 for the first after `<enable/>`).
    fn count_outbound_stanza(&mut self) -> u32 {
        match self.stream_management.as_mut() {
            Some(sm) => {
                sm.outbound = sm.outbound.wrapping_add(1);
                sm.outbound
            }
            None => 0,
        }
    }

    fn take_unacked(&mut self, client_msg_id: u64) -> Option<OutgoingMessage> {
        let index = self.unacked.iter().position(|entry| entry.message.client_msg_id == client_msg_id)?;
        self.unacked.remove(index).map(|entry| entry.message)
    }

    fn outbound_text(&mut self) -> OutboundText<'_> {
        OutboundText(&mut self.outbound)
    }
}

/// `fmt::Write` into the outbound bytes.
struct OutboundText<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for OutboundText<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        self.0.extend_from_slice(text.as_bytes());
        Ok(())
    }
}

/// The number in a loadgen message id (`lg` + hex); `None` for anyone else's ids.
pub fn parse_message_id(id: &str) -> Option<u64> {
    let hex = id.strip_prefix("lg")?;
    if hex.is_empty() || hex.len() > 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The defined condition of an `<error>` element (its first child that is not `<text>`).
fn error_condition(error: &Element) -> String {
    error
        .children
        .iter()
        .find(|child| child.local_name() != "text")
        .map_or_else(|| "undefined-condition".to_owned(), |child| child.local_name().to_owned())
}

fn stream_error_event(element: &Element) -> SessionEvent {
    match error_condition(element).as_str() {
        "conflict" => SessionEvent::Goaway { reason: GoawayReason::Replaced },
        "system-shutdown" => SessionEvent::Goaway { reason: GoawayReason::ShuttingDown },
        "connection-timeout" => SessionEvent::Goaway { reason: GoawayReason::IdleTimeout },
        "policy-violation" | "resource-constraint" => SessionEvent::ServerError { code: ErrorCode::Overloaded },
        "not-authorized" => SessionEvent::ServerError { code: ErrorCode::AuthFailed },
        "not-well-formed" | "invalid-xml" | "bad-format" | "invalid-namespace" => {
            SessionEvent::ServerError { code: ErrorCode::Malformed }
        }
        "internal-server-error" => SessionEvent::ServerError { code: ErrorCode::Internal },
        _ => SessionEvent::ServerError { code: ErrorCode::Other(0) },
    }
}

fn reject_code(message: &Element) -> RejectCode {
    let condition = message.child("error").map(error_condition).unwrap_or_default();
    match condition.as_str() {
        "service-unavailable" | "item-not-found" | "recipient-unavailable" | "remote-server-not-found" => {
            RejectCode::UnknownRecipient
        }
        "resource-constraint" | "policy-violation" => RejectCode::RecipientQueueFull,
        "not-acceptable" | "bad-request" => RejectCode::BodyInvalid,
        _ => RejectCode::Other(0),
    }
}

impl ChatDriver for XmppSession {
    type Error = XmppError;

    fn user(&self) -> u64 {
        XmppSession::user(self)
    }
    fn handle_connected(&mut self, now_us: u64) {
        XmppSession::handle_connected(self, now_us)
    }
    fn handle_disconnected(&mut self) {
        XmppSession::handle_disconnected(self)
    }
    fn handle_input(&mut self, input: &[u8], events: &mut Vec<SessionEvent>) -> Result<(), XmppError> {
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

#[cfg(test)]
mod tests;
