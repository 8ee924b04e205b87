//! The XMPP driver fed recorded server bytes (shapes as ejabberd 23 and prosody 0.12 send them), sans-IO.

use super::*;
use crate::limits::SEND_BACKLOG_MAX;

const EJABBERD_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' id='16432872961437913157' from='localhost' version='1.0' \
    xml:lang='en'>";
const EJABBERD_FEATURES: &str = "<stream:features><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' \
    node='http://www.process-one.net/en/ejabberd/' ver='abc='/><register xmlns='http://jabber.org/features/iq-register'/>\
    <mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism><mechanism>SCRAM-SHA-1\
    </mechanism><mechanism>X-OAUTH2</mechanism></mechanisms></stream:features>";
const EJABBERD_SUCCESS: &str = "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";
const EJABBERD_BOUND_FEATURES: &str = "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
    <session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session><c xmlns='http://jabber.org/protocol/caps' \
    hash='sha-1' node='http://www.process-one.net/en/ejabberd/' ver='abc='/><sm xmlns='urn:xmpp:sm:2'/>\
    <sm xmlns='urn:xmpp:sm:3'/><csi xmlns='urn:xmpp:csi:0'/></stream:features>";
const BIND_RESULT: &str = "<iq xml:lang='en' id='lg-bind' type='result'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
    <jid>user1@localhost/lg</jid></bind></iq>";
const ENABLED: &str = "<enabled xmlns='urn:xmpp:sm:3'/>";

fn realm() -> Arc<XmppRealm> {
    Arc::new(XmppRealm { user_prefix: "user".into(), domain: "localhost".into() })
}

fn session() -> XmppSession {
    XmppSession::new(realm(), 1, "secret", 64, 1_000_000, 1 << 32)
}

fn body(seq: u64) -> MessageBody {
    MessageBody { run_id: 9, sender: 1, recipient: 2, pair_seq: seq, scheduled_us: 10 }
}

/// Everything the session wants to write, as text; marks it written.
fn written(session: &mut XmppSession) -> String {
    let bytes = session.transmit().to_vec();
    session.handle_transmitted(bytes.len());
    String::from_utf8(bytes).expect("the driver writes UTF-8")
}

fn feed(session: &mut XmppSession, server: &str) -> Vec<SessionEvent> {
    let mut events = Vec::new();
    session.handle_input(server.as_bytes(), &mut events).expect("valid server bytes");
    events
}

/// Logs in against ejabberd's transcript; returns the events of the last step.
fn login_ejabberd(session: &mut XmppSession) -> Vec<SessionEvent> {
    session.handle_connected(0);
    written(session);
    feed(session, &format!("{EJABBERD_HEADER}{EJABBERD_FEATURES}"));
    written(session);
    feed(session, EJABBERD_SUCCESS);
    written(session);
    feed(session, &format!("{EJABBERD_HEADER}{EJABBERD_BOUND_FEATURES}"));
    written(session);
    feed(session, BIND_RESULT);
    written(session);
    feed(session, ENABLED)
}

fn message_text(id: u64, seq: u64) -> String {
    let mut raw = Vec::new();
    body(seq).encode(64, &mut raw);
    format!(
        "<message to='user2@localhost' id='lg{id:x}' type='chat'><body>{}</body><request xmlns='urn:xmpp:receipts'/></message>",
        BASE64.encode(&raw)
    )
}

#[test]
fn ejabberd_login_step_by_step() {
    let mut session = session();
    session.handle_connected(0);
    let open = written(&mut session);
    assert!(open.starts_with("<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client'"), "{open}");
    assert!(feed(&mut session, EJABBERD_HEADER).is_empty());
    assert!(feed(&mut session, EJABBERD_FEATURES).is_empty());
    // base64("\0user1\0secret")
    assert_eq!(
        written(&mut session),
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AHVzZXIxAHNlY3JldA==</auth>"
    );
    feed(&mut session, EJABBERD_SUCCESS);
    assert!(written(&mut session).contains("<stream:stream to='localhost'"));
    feed(&mut session, &format!("{EJABBERD_HEADER}{EJABBERD_BOUND_FEATURES}"));
    assert_eq!(
        written(&mut session),
        "<iq type='set' id='lg-bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>lg</resource></bind></iq>"
    );
    assert!(feed(&mut session, BIND_RESULT).is_empty());
    // Session is optional at ejabberd: straight to stream management.
    assert_eq!(written(&mut session), "<enable xmlns='urn:xmpp:sm:3'/>");
    assert!(!session.is_online());
    assert_eq!(feed(&mut session, ENABLED), vec![SessionEvent::Welcome { queued: 0 }]);
    assert_eq!(written(&mut session), "<presence/>");
    assert!(session.is_online());
    assert!(session.stream_management_enabled());
}

#[test]
fn the_transcript_split_into_single_bytes_logs_in_the_same() {
    let server = format!(
        "{EJABBERD_HEADER}{EJABBERD_FEATURES}{EJABBERD_SUCCESS}{EJABBERD_HEADER}{EJABBERD_BOUND_FEATURES}{BIND_RESULT}{ENABLED}"
    );
    let mut session = session();
    session.handle_connected(0);
    let mut events = Vec::new();
    for byte in server.as_bytes().chunks(1) {
        session.handle_input(byte, &mut events).expect("valid");
    }
    assert_eq!(events, vec![SessionEvent::Welcome { queued: 0 }]);
    assert!(session.is_online());
}

#[test]
fn prosody_with_required_session_and_no_stream_management_acks_by_receipt() {
    let header = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xml:lang='en' \
        xmlns:stream='http://etherx.jabber.org/streams' id='x1' version='1.0' from='localhost'>";
    let features = "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism>\
        </mechanisms></stream:features>";
    let bound = "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><required/></bind>\
        <session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></stream:features>";
    let mut session = session();
    session.handle_connected(0);
    feed(&mut session, &format!("{header}{features}"));
    feed(&mut session, EJABBERD_SUCCESS);
    feed(&mut session, &format!("{header}{bound}"));
    written(&mut session);
    feed(&mut session, "<iq type='result' id='lg-bind'/>");
    assert_eq!(
        written(&mut session),
        "<iq type='set' id='lg-sess'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>"
    );
    assert_eq!(feed(&mut session, "<iq type='result' id='lg-sess'/>"), vec![SessionEvent::Welcome { queued: 0 }]);
    assert_eq!(written(&mut session), "<presence/>");
    assert!(!session.stream_management_enabled());
    let message = session.try_queue_send(body(1)).expect("room");
    assert_eq!(written(&mut session), message_text(1 << 32, 1));
    let receipt = "<message from='user2@localhost/lg' to='user1@localhost/lg' id='lgr-lg100000000'>\
        <received xmlns='urn:xmpp:receipts' id='lg100000000'/></message>";
    assert_eq!(
        feed(&mut session, receipt),
        vec![
            SessionEvent::Acked { message, server_id: 1 << 32 },
            SessionEvent::Receipt { server_id: 1 << 32, peer: 2, kind: ReceiptKind::Delivered },
        ]
    );
    assert_eq!(session.sends_pending(), 0);
}

#[test]
fn chat_with_stream_management_acks_delivers_and_receipts() {
    let mut session = session();
    login_ejabberd(&mut session);
    written(&mut session);
    let first = session.try_queue_send(body(1)).expect("room");
    let second = session.try_queue_send(body(2)).expect("room");
    assert_eq!(
        written(&mut session),
        format!(
            "{}<r xmlns='urn:xmpp:sm:3'/>{}<r xmlns='urn:xmpp:sm:3'/>",
            message_text(1 << 32, 1),
            message_text((1 << 32) + 1, 2)
        )
    );
    // Presence was stanza 1, the messages 2 and 3: h=2 acks the first only.
    assert_eq!(
        feed(&mut session, "<a xmlns='urn:xmpp:sm:3' h='2'/>"),
        vec![SessionEvent::Acked { message: first, server_id: first.client_msg_id }]
    );
    assert_eq!(
        feed(&mut session, "<a xmlns='urn:xmpp:sm:3' h='3'/>"),
        vec![SessionEvent::Acked { message: second, server_id: second.client_msg_id }]
    );
    // A delivery from user2 asking for a receipt, then the server's ack request.
    let mut raw = Vec::new();
    let incoming = MessageBody { run_id: 9, sender: 2, recipient: 1, pair_seq: 1, scheduled_us: 5 };
    incoming.encode(64, &mut raw);
    let deliver = format!(
        "<message from='user2@localhost/lg' to='user1@localhost' id='lg2a' type='chat' xml:lang='en'>\
         <body>{}</body><request xmlns='urn:xmpp:receipts'/></message><r xmlns='urn:xmpp:sm:3'/>",
        BASE64.encode(&raw)
    );
    assert_eq!(
        feed(&mut session, &deliver),
        vec![SessionEvent::Delivered { item_id: 0x2a, from: 2, body: Ok(incoming) }]
    );
    assert_eq!(
        written(&mut session),
        "<message to='user2@localhost/lg' id='lgr-lg2a'><received xmlns='urn:xmpp:receipts' id='lg2a'/></message>\
         <a xmlns='urn:xmpp:sm:3' h='1'/>"
    );
    // With stream management, a receipt is only a receipt.
    let receipt =
        "<message from='user2@localhost/lg' id='x'><received xmlns='urn:xmpp:receipts' id='lg100000000'/></message>";
    assert_eq!(
        feed(&mut session, receipt),
        vec![SessionEvent::Receipt { server_id: 1 << 32, peer: 2, kind: ReceiptKind::Delivered }]
    );
    // A foreign body is reported as such, not as a crash.
    let foreign = "<message from='user2@localhost/lg' id='hello'><body>not base64!</body></message>";
    assert_eq!(
        feed(&mut session, foreign),
        vec![SessionEvent::Delivered { item_id: 0, from: 2, body: Err(BodyError::Encoding) }]
    );
}

#[test]
fn unacked_messages_are_sent_again_with_the_same_ids_after_reconnect() {
    let mut session = session();
    login_ejabberd(&mut session);
    let message = session.try_queue_send(body(1)).expect("room");
    written(&mut session);
    session.handle_disconnected();
    // Scheduled while offline: waits in the backlog.
    let later = session.try_queue_send(body(2)).expect("room");
    assert!(session.transmit().is_empty());
    login_ejabberd(&mut session);
    assert_eq!(
        written(&mut session),
        format!(
            "<presence/>{}<r xmlns='urn:xmpp:sm:3'/>{}<r xmlns='urn:xmpp:sm:3'/>",
            message_text(message.client_msg_id, 1),
            message_text(later.client_msg_id, 2)
        )
    );
    assert_eq!(feed(&mut session, "<a xmlns='urn:xmpp:sm:3' h='3'/>").len(), 2);
    assert_eq!(session.sends_pending(), 0);
}

#[test]
fn errors_refusals_and_server_requests() {
    let mut session = session();
    login_ejabberd(&mut session);
    written(&mut session);
    let message = session.try_queue_send(body(1)).expect("room");
    written(&mut session);
    let bounce = "<message from='user2@localhost' id='lg100000000' type='error'><error type='cancel'>\
        <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>";
    assert_eq!(
        feed(&mut session, bounce),
        vec![SessionEvent::Rejected { message, code: RejectCode::UnknownRecipient }]
    );
    // XEP-0199 ping from the server is answered; other requests get service-unavailable.
    feed(&mut session, "<iq from='localhost' id='p1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_eq!(written(&mut session), "<iq type='result' id='p1' to='localhost'/>");
    feed(&mut session, "<iq from='localhost' id='v&amp;1' type='get'><query xmlns='jabber:iq:version'/></iq>");
    assert!(written(&mut session).starts_with("<iq type='error' id='v&amp;1' to='localhost'><error type='cancel'>"));
    // Both stanzas count toward our h.
    feed(&mut session, "<r xmlns='urn:xmpp:sm:3'/>");
    assert_eq!(written(&mut session), "<a xmlns='urn:xmpp:sm:3' h='3'/>");
    let conflict =
        "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>";
    assert_eq!(feed(&mut session, conflict), vec![SessionEvent::Goaway { reason: GoawayReason::Replaced }]);
    assert!(session.is_closing());
}

#[test]
fn login_refusals_are_clear() {
    let mut session = session();
    session.handle_connected(0);
    feed(&mut session, &format!("{EJABBERD_HEADER}{EJABBERD_FEATURES}"));
    let failure = "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>";
    assert_eq!(feed(&mut session, failure), vec![SessionEvent::ServerError { code: ErrorCode::AuthFailed }]);
    assert!(session.is_closing());

    let mut events = Vec::new();
    session.handle_connected(0);
    let tls = format!(
        "{EJABBERD_HEADER}<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>\
         </stream:features>"
    );
    assert_eq!(session.handle_input(tls.as_bytes(), &mut events), Err(XmppError::TlsRequired));
    session.handle_connected(0);
    let scram_only = format!(
        "{EJABBERD_HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
         <mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features>"
    );
    assert_eq!(session.handle_input(scram_only.as_bytes(), &mut events), Err(XmppError::NoPlainMechanism));
    session.handle_connected(0);
    assert!(matches!(
        session.handle_input(format!("{EJABBERD_HEADER}<message/>").as_bytes(), &mut events),
        Err(XmppError::Unexpected { .. })
    ));
    session.handle_connected(0);
    assert!(matches!(
        session.handle_input(b"plain text", &mut events),
        Err(XmppError::Stream(StreamError::TextOutsideStanza))
    ));
}

#[test]
fn keepalive_asks_for_acks_or_pings_with_whitespace() {
    let mut session = session();
    login_ejabberd(&mut session);
    written(&mut session);
    session.handle_timeout(999_999);
    assert!(written(&mut session).is_empty());
    session.handle_timeout(1_000_000);
    assert_eq!(written(&mut session), " ");
    session.try_queue_send(body(1)).expect("room");
    written(&mut session);
    session.handle_timeout(2_000_000);
    assert_eq!(written(&mut session), "<r xmlns='urn:xmpp:sm:3'/>");
    session.handle_close();
    assert_eq!(written(&mut session), "</stream:stream>");
    assert!(session.is_closing());
    session.handle_close();
    assert!(written(&mut session).is_empty());
}

#[test]
fn backlog_is_bounded_and_ids_parse_strictly() {
    let mut session = session();
    for seq in 0..SEND_BACKLOG_MAX as u64 {
        session.try_queue_send(body(seq)).expect("room");
    }
    assert_eq!(session.try_queue_send(body(0)), Err(SendRefused::BacklogFull));
    assert_eq!(parse_message_id("lg2a"), Some(0x2a));
    assert_eq!(parse_message_id("lg"), None);
    assert_eq!(parse_message_id("lg12345678901234567"), None);
    assert_eq!(parse_message_id("purple1"), None);
}
