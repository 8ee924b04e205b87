//! Messaging behaviour against a real engine on loopback: cross-core chat, receipts, offline delivery in
//! order, duplicate SENDs, limits, second logins, slow readers and forged READs.

mod support;

use support::{Frame, Got, TestServer};
use wire::{ClientFrame, GoawayReason, ReceiptKind, RejectCode};

#[test]
fn users_on_different_home_cores_chat_with_receipts() {
    let server = TestServer::start("cross-core", 2, 200, &[]);
    let (alice, bob) = server.users_on_different_cores();
    assert_ne!(server.home(alice.0), server.home(bob.0), "the test needs two home cores");
    let mut a = server.login(alice);
    let mut b = server.login(bob);

    a.send(1, bob.0, b"a giant monster is attacking the Golden Gate Bridge");
    let server_id = a.expect_ack(1);
    let (item_id, from, body) = b.expect_deliver();
    assert_eq!((item_id, from), (server_id, alice.0));
    assert_eq!(body, b"a giant monster is attacking the Golden Gate Bridge");
    b.delivered(item_id);
    match a.recv_significant() {
        Got::Frame(Frame::Receipt { server_id: about, peer, kind: ReceiptKind::Delivered, .. }) => {
            assert_eq!((about, peer), (server_id, bob.0))
        }
        other => panic!("expected a delivered receipt, got {other:?}"),
    }

    b.send(1, alice.0, b"let's build giant robots");
    let reply_id = b.expect_ack(1);
    let (item_id, from, _) = a.expect_deliver();
    assert_eq!((item_id, from), (reply_id, bob.0));
    // A READ counts once the message is acknowledged; one that names a message alice never got does not.
    a.send_frame(&ClientFrame::Read { server_id, sender: bob.0 });
    a.delivered(item_id);
    a.send_frame(&ClientFrame::Read { server_id: reply_id, sender: bob.0 });
    match b.recv_significant() {
        Got::Frame(Frame::Receipt { server_id, kind: ReceiptKind::Delivered, .. }) => assert_eq!(server_id, reply_id),
        other => panic!("expected a delivered receipt, got {other:?}"),
    }
    match b.recv_significant() {
        Got::Frame(Frame::Receipt { server_id, kind: ReceiptKind::Read, peer, .. }) => {
            assert_eq!((server_id, peer), (reply_id, alice.0))
        }
        other => panic!("expected a read receipt, got {other:?}"),
    }
}

#[test]
fn offline_messages_arrive_in_order_on_reconnect_and_receipts_reach_an_offline_sender() {
    let server = TestServer::start("offline", 2, 200, &[]);
    let (alice, bob) = server.users_on_different_cores();
    let mut a = server.login(alice);
    let mut server_ids = Vec::new();
    for n in 0..100u64 {
        a.send(n, bob.0, format!("message {n}").as_bytes());
    }
    for n in 0..100u64 {
        server_ids.push(a.expect_ack(n));
    }
    drop(a);

    let mut b = server.login(bob);
    assert_eq!(b.queued_at_login, 100);
    for (n, expected) in server_ids.iter().enumerate() {
        let (item_id, from, body) = b.expect_deliver();
        assert_eq!((item_id, from), (*expected, alice.0));
        assert_eq!(body, format!("message {n}").as_bytes(), "in order");
        b.delivered(item_id);
    }

    // Alice was offline while Bob acknowledged: the receipts wait for her.
    let mut a = server.login(alice);
    let mut receipts = Vec::new();
    while receipts.len() < 100 {
        match a.recv_significant() {
            Got::Frame(Frame::Receipt { item_id, server_id, kind: ReceiptKind::Delivered, .. }) => {
                receipts.push(server_id);
                a.delivered(item_id);
            }
            other => panic!("expected receipts, got {other:?}"),
        }
    }
    receipts.sort_unstable();
    let mut expected = server_ids.clone();
    expected.sort_unstable();
    assert_eq!(receipts, expected);
}

#[test]
fn unacknowledged_deliveries_come_again_after_reconnect() {
    let server = TestServer::start("redeliver", 2, 200, &[]);
    let (alice, bob) = server.users_on_different_cores();
    let mut a = server.login(alice);
    let mut b = server.login(bob);
    a.send(1, bob.0, b"first");
    a.send(2, bob.0, b"second");
    let first = a.expect_ack(1);
    let second = a.expect_ack(2);
    assert_eq!(b.expect_deliver().0, first);
    assert_eq!(b.expect_deliver().0, second);
    b.delivered(first);
    // A PING after the DELIVERED: its PONG says the server has processed the DELIVERED (frames of one
    // connection are handled in order). Without it, the next login may replace this connection first, and
    // the DELIVERED of a replaced connection is not read: the message would (rightly) come again.
    b.send_frame(&ClientFrame::Ping { nonce: 9 });
    assert_eq!(b.recv_significant_or_pong(), Got::Frame(Frame::Pong { nonce: 9 }));
    drop(b);
    // Only the acknowledged one is gone; the other comes again, same id.
    let mut b = server.login(bob);
    assert_eq!(b.queued_at_login, 1);
    assert_eq!(b.expect_deliver().0, second);
}

#[test]
fn a_retried_send_is_stored_once() {
    let server = TestServer::start("dedup", 2, 200, &[]);
    let (alice, bob) = server.users_on_different_cores();
    let mut a = server.login(alice);
    a.send(7, bob.0, b"once");
    let server_id = a.expect_ack(7);
    drop(a);
    let mut a = server.login(alice);
    a.send(7, bob.0, b"once");
    assert_eq!(a.expect_ack(7), server_id, "the retry gets the first ACK");
    a.send(8, bob.0, b"twice");
    let next = a.expect_ack(8);
    let mut b = server.login(bob);
    assert_eq!(b.queued_at_login, 2);
    assert_eq!(b.expect_deliver().0, server_id);
    assert_eq!(b.expect_deliver().0, next);
}

#[test]
fn limits_refuse_with_explicit_rejects() {
    let server = TestServer::start("limits", 2, 200, &["--queue-messages-max", "3"]);
    let (alice, bob) = server.users_on_different_cores();
    let mut a = server.login(alice);
    for n in 0..3 {
        a.send(n, bob.0, b"fits");
        a.expect_ack(n);
    }
    a.send(3, bob.0, b"does not fit");
    assert_eq!(
        a.recv_significant(),
        Got::Frame(Frame::Reject { client_msg_id: 3, code: RejectCode::RecipientQueueFull })
    );
    a.send(4, 42, b"to nobody");
    assert_eq!(
        a.recv_significant(),
        Got::Frame(Frame::Reject { client_msg_id: 4, code: RejectCode::UnknownRecipient })
    );
    a.send(5, bob.0, b"");
    assert_eq!(a.recv_significant(), Got::Frame(Frame::Reject { client_msg_id: 5, code: RejectCode::BodyInvalid }));
    // Refused messages were not stored; the three that fit are all there.
    let mut b = server.login(bob);
    assert_eq!(b.queued_at_login, 3);
    for _ in 0..3 {
        let (item_id, _, body) = b.expect_deliver();
        assert_eq!(body, b"fits");
        b.delivered(item_id);
    }
    // Once drained (the receipts prove Bob's acknowledgements were processed), the queue takes messages
    // again. A retry of the refused id gets the same REJECT (it could have crossed that REJECT); the id with
    // another body is refused as a reuse; a new id is stored.
    for _ in 0..3 {
        match a.recv_significant() {
            Got::Frame(Frame::Receipt { kind: ReceiptKind::Delivered, item_id, .. }) => a.delivered(item_id),
            other => panic!("expected a receipt, got {other:?}"),
        }
    }
    a.send(3, bob.0, b"does not fit");
    assert_eq!(
        a.recv_significant(),
        Got::Frame(Frame::Reject { client_msg_id: 3, code: RejectCode::RecipientQueueFull })
    );
    a.send(3, bob.0, b"fits now");
    assert_eq!(
        a.recv_significant(),
        Got::Frame(Frame::Reject { client_msg_id: 3, code: RejectCode::ClientMsgIdReused })
    );
    a.send(6, bob.0, b"fits now");
    a.expect_ack(6);
}

#[test]
fn a_second_login_replaces_the_first_and_loses_nothing() {
    let server = TestServer::start("second-login", 2, 200, &[]);
    let (alice, bob) = server.users_on_different_cores();
    let mut a = server.login(alice);
    let mut b1 = server.login(bob);
    a.send(1, bob.0, b"to the first device");
    let id = a.expect_ack(1);
    assert_eq!(b1.expect_deliver().0, id);
    // Not acknowledged by the first connection when the second arrives.
    let mut b2 = server.login(bob);
    assert_eq!(b1.recv_until_closed(), vec![Got::Frame(Frame::Goaway { reason: GoawayReason::Replaced })]);
    assert_eq!(b2.queued_at_login, 1);
    assert_eq!(b2.expect_deliver().0, id);
    a.send(2, bob.0, b"to the second device");
    let second = a.expect_ack(2);
    assert_eq!(b2.expect_deliver().0, second);
}

#[test]
fn a_slow_reader_gets_everything_in_order_once_it_reads() {
    let server = TestServer::start("slow-reader", 2, 200, &[]);
    let (alice, bob) = server.users_on_different_cores();
    let mut a = server.login(alice);
    let mut b = server.login(bob);
    // Far more than the outbound buffer and the kernel's socket buffers hold while Bob does not read.
    let body = vec![b'x'; 4096];
    let count = 3_000u64;
    let sender = std::thread::spawn(move || {
        let mut ids = Vec::new();
        for n in 0..count {
            a.send(n, bob.0, &body);
        }
        for n in 0..count {
            ids.push(a.expect_ack(n));
        }
        ids
    });
    let ids = sender.join().expect("sender");
    for expected in ids {
        let (item_id, from, body) = b.expect_deliver();
        assert_eq!((item_id, from, body.len()), (expected, alice.0, 4096));
        b.delivered(item_id);
    }
}

#[test]
fn forged_reads_give_their_victim_nothing_and_leave_its_sends_accepted() {
    // Issue 17: 20,000 READs naming a victim, for messages the forger never received, gave the victim 20,000
    // Read receipts and filled its receipt backlog, so its SENDs got REJECT(SenderBacklogFull).
    let server = TestServer::start("forged-reads", 2, 200, &[]);
    let (alice, mallory) = server.users_on_different_cores();
    let mut a = server.login(alice);
    let mut m = server.login(mallory);
    a.send(1, mallory.0, b"hello mallory");
    let server_id = a.expect_ack(1);
    let (item_id, _, _) = m.expect_deliver();
    m.delivered(item_id);
    match a.recv_significant() {
        Got::Frame(Frame::Receipt { server_id: about, kind: ReceiptKind::Delivered, .. }) => {
            assert_eq!(about, server_id)
        }
        other => panic!("expected a delivered receipt, got {other:?}"),
    }
    // More READs naming alice than her receipt backlog holds, for messages mallory never got; then one
    // READ of the message she did get, whose receipt travels the same way behind them.
    let mut flood = Vec::new();
    for n in 1..=ringline_core::limits::SENDER_RECEIPTS_MAX as u64 + 1 {
        wire::encode_client(&ClientFrame::Read { server_id: server_id + n, sender: alice.0 }, &mut flood);
    }
    wire::encode_client(&ClientFrame::Read { server_id, sender: alice.0 }, &mut flood);
    m.write_raw(&flood);
    match a.recv_significant() {
        Got::Frame(Frame::Receipt { server_id: about, kind: ReceiptKind::Read, peer, .. }) => {
            assert_eq!((about, peer), (server_id, mallory.0), "the only Read receipt is for the real message")
        }
        other => panic!("expected a read receipt, got {other:?}"),
    }
    a.send(2, mallory.0, b"still sending");
    a.expect_ack(2);
}
