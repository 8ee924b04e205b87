//! One protocol behaviour per test, on the simulated runtime. Each asserts what the client sees (and, where
//! the protocol promises something about the server's state, what the shards hold); none depends on time
//! except virtual time.

use ringline_core::limits::{DELIVERY_WINDOW_MAX, OUTBOUND_BYTES_MAX};
use ringline_core::shard::QueueLimits;
use wire::{ClientFrame, ErrorCode, GoawayReason, ReceiptKind, RejectCode, UserId};

use super::harness::*;

fn acks(frames: &[Frame]) -> Vec<(u64, u64)> {
    frames
        .iter()
        .filter_map(|frame| match *frame {
            Frame::Server(OwnedServerFrame::Ack { client_msg_id, server_id, .. }) => Some((client_msg_id, server_id)),
            _ => None,
        })
        .collect()
}

fn rejects(frames: &[Frame]) -> Vec<(u64, RejectCode)> {
    frames
        .iter()
        .filter_map(|frame| match *frame {
            Frame::Server(OwnedServerFrame::Reject { client_msg_id, code }) => Some((client_msg_id, code)),
            _ => None,
        })
        .collect()
}

fn delivers(frames: &[Frame]) -> Vec<(u64, UserId, Vec<u8>)> {
    frames
        .iter()
        .filter_map(|frame| match frame {
            Frame::Server(OwnedServerFrame::Deliver { item_id, from, body, .. }) => {
                Some((*item_id, *from, body.clone()))
            }
            _ => None,
        })
        .collect()
}

fn receipts(frames: &[Frame]) -> Vec<(u64, UserId, ReceiptKind)> {
    frames
        .iter()
        .filter_map(|frame| match *frame {
            Frame::Server(OwnedServerFrame::Receipt { server_id, peer, kind, .. }) => Some((server_id, peer, kind)),
            _ => None,
        })
        .collect()
}

fn welcomes(frames: &[Frame]) -> Vec<u32> {
    frames
        .iter()
        .filter_map(|frame| match *frame {
            Frame::Server(OwnedServerFrame::Welcome { queued, .. }) => Some(queued),
            _ => None,
        })
        .collect()
}

/// The two-core setup most scenarios use: alice's home is core 0, bob's core 1.
fn two_cores(config: SimConfig) -> (Sim, UserId, UserId) {
    let sim = Sim::new(config);
    let alice = sim.user_homed_at(0, 0);
    let bob = sim.user_homed_at(1, 0);
    (sim, alice, bob)
}

fn login(sim: &mut Sim, client: ClientId, shard: usize) {
    let before = welcomes(sim.frames(client)).len();
    sim.connect(client, shard);
    sim.run();
    assert_eq!(welcomes(sim.frames(client)).len(), before + 1, "client {client} logged in: {:?}", sim.frames(client));
}

fn body(n: u64) -> Vec<u8> {
    format!("message {n}").into_bytes()
}

#[test]
fn chat_across_cores_acks_after_store_then_delivers_and_sends_receipts() {
    let (mut sim, alice, bob) = two_cores(SimConfig::new(seed_or(1), 2, 16));
    let a = sim.client(alice);
    let b = sim.client(bob);
    sim.clients[b].auto_delivered = false;
    // Each logs in on the other's home core: both connections are handed over.
    login(&mut sim, a, 1);
    login(&mut sim, b, 0);
    assert_eq!(sim.server_side(a).map(|(shard, _)| shard), Some(0), "alice is served by her home core");
    assert_eq!(sim.server_side(b).map(|(shard, _)| shard), Some(1), "bob is served by his home core");

    sim.send(a, 1, bob, b"hello bob");
    let mut steps = 0;
    while acks(sim.frames(a)).is_empty() {
        assert!(sim.step(), "the SEND settled without an ACK");
        steps += 1;
        assert!(steps < 1_000);
        if acks(sim.frames(a)).is_empty() {
            continue;
        }
        // The first time alice sees her ACK, bob's home core holds the message.
        assert_eq!(sim.shards[1].stats().messages_stored, 1, "ACK before the recipient's home core stored it");
    }
    sim.run();
    let [(1, server_id)] = acks(sim.frames(a))[..] else { panic!("one ACK: {:?}", sim.frames(a)) };
    assert_eq!(delivers(sim.frames(b)), vec![(server_id, alice, b"hello bob".to_vec())]);
    assert_eq!(sim.shards[1].queued_for(bob), 1, "kept until DELIVERED");
    assert!(receipts(sim.frames(a)).is_empty(), "no receipt before DELIVERED");

    sim.write_frame(b, &ClientFrame::Delivered { item_id: server_id });
    sim.run();
    assert_eq!(sim.shards[1].queued_for(bob), 0, "DELIVERED wipes the message");
    assert_eq!(receipts(sim.frames(a)), vec![(server_id, bob, ReceiptKind::Delivered)]);

    sim.write_frame(b, &ClientFrame::Read { server_id, sender: alice });
    sim.run();
    assert_eq!(
        receipts(sim.frames(a)),
        vec![(server_id, bob, ReceiptKind::Delivered), (server_id, bob, ReceiptKind::Read)]
    );
    assert_eq!(sim.shards[0].queued_for(alice), 0, "alice acknowledged her receipts");
    sim.assert_settled();
}

#[test]
fn a_read_receipt_comes_only_from_the_recipient_once_it_acknowledged_the_message() {
    // Issue 17: any user could send READ(server_id, victim) for messages it never received, and 20,000 of
    // them filled the victim's receipt backlog, so its SENDs were refused.
    let (mut sim, alice, bob) = two_cores(SimConfig::new(seed_or(18), 2, 16));
    let mallory = sim.user_homed_at(1, 1);
    let (a, b, m) = (sim.client(alice), sim.client(bob), sim.client(mallory));
    sim.clients[b].auto_delivered = false;
    login(&mut sim, a, 0);
    login(&mut sim, b, 1);
    login(&mut sim, m, 1);
    sim.send(a, 1, bob, b"for bob");
    sim.run();
    let [(1, server_id)] = acks(sim.frames(a))[..] else { panic!("{:?}", sim.frames(a)) };
    assert_eq!(delivers(sim.frames(b)).len(), 1);
    // Not acknowledged yet: not even bob's READ counts.
    sim.write_frame(b, &ClientFrame::Read { server_id, sender: alice });
    // Mallory, while alice is offline: a DELIVERED for bob's item, and more READs naming alice than
    // alice's receipt backlog holds, for the real message and for made-up ones.
    sim.disconnect(a);
    sim.write_frame(m, &ClientFrame::Delivered { item_id: server_id });
    let forged = ringline_core::limits::SENDER_RECEIPTS_MAX as u64 + 1;
    for n in 0..forged {
        let forged_id = if n % 2 == 0 { server_id } else { server_id + n };
        sim.write_frame(m, &ClientFrame::Read { server_id: forged_id, sender: alice });
    }
    sim.run();
    assert_eq!(sim.shards[1].queued_for(bob), 1, "mallory's DELIVERED wiped nothing");
    assert_eq!(sim.shards[0].queued_for(alice), 0, "no receipt for alice");
    assert_eq!(sim.shards[1].stats().read_refused, forged + 1);
    assert_eq!(sim.shards[1].stats().delivered_refused, 1);

    // Alice can still send; bob's DELIVERED and READ each give her one receipt; a second READ gives none.
    login(&mut sim, a, 0);
    sim.send(a, 2, bob, b"still sending");
    sim.write_frame(b, &ClientFrame::Delivered { item_id: server_id });
    sim.write_frame(b, &ClientFrame::Read { server_id, sender: alice });
    sim.write_frame(b, &ClientFrame::Read { server_id, sender: alice });
    sim.run();
    assert_eq!(acks(sim.frames(a)).len(), 2, "{:?}", rejects(sim.frames(a)));
    assert_eq!(
        receipts(sim.frames(a)),
        vec![(server_id, bob, ReceiptKind::Delivered), (server_id, bob, ReceiptKind::Read)]
    );
    assert_eq!(sim.shards[1].stats().read_refused, forged + 2);
    assert_eq!(sim.shards[1].unread_messages(), 0, "read messages are forgotten");
}

#[test]
fn offline_queue_is_delivered_in_order_and_receipts_wait_for_the_sender() {
    let (mut sim, alice, bob) = two_cores(SimConfig::new(seed_or(2), 2, 16));
    let a = sim.client(alice);
    let b = sim.client(bob);
    login(&mut sim, a, 0);
    for n in 0..20 {
        sim.send(a, n, bob, &body(n));
    }
    sim.run();
    let acked = acks(sim.frames(a));
    assert_eq!(acked.iter().map(|&(id, _)| id).collect::<Vec<_>>(), (0..20).collect::<Vec<_>>());
    assert_eq!(sim.shards[1].queued_for(bob), 20);
    sim.disconnect(a);
    sim.run();

    login(&mut sim, b, 0);
    assert_eq!(welcomes(sim.frames(b)), vec![20]);
    let got = delivers(sim.frames(b));
    let expected: Vec<_> = acked.iter().map(|&(n, server_id)| (server_id, alice, body(n))).collect();
    assert_eq!(got, expected, "in order, each once");
    assert_eq!(sim.shards[1].queued_for(bob), 0);
    assert_eq!(sim.shards[0].queued_for(alice), 20, "receipts wait for alice");

    sim.take_frames(a);
    login(&mut sim, a, 1);
    assert_eq!(welcomes(sim.frames(a)), vec![20]);
    let expected: Vec<_> = acked.iter().map(|&(_, server_id)| (server_id, bob, ReceiptKind::Delivered)).collect();
    assert_eq!(receipts(sim.frames(a)), expected);
    assert_eq!(sim.shards[0].queued_for(alice), 0);
}

#[test]
fn a_duplicate_send_is_stored_once_and_acked_with_the_same_server_id() {
    let (mut sim, alice, bob) = two_cores(SimConfig::new(seed_or(3), 2, 16));
    let a = sim.client(alice);
    let b = sim.client(bob);
    login(&mut sim, a, 0);
    // Twice back to back (the second may find the first in flight), then again after it is stored.
    sim.send(a, 7, bob, b"once");
    sim.send(a, 7, bob, b"once");
    sim.run();
    sim.send(a, 7, bob, b"once");
    sim.run();
    // And again from a new connection, on another core.
    sim.disconnect(a);
    login(&mut sim, a, 1);
    sim.send(a, 7, bob, b"once");
    sim.run();
    let acked = acks(sim.frames(a));
    assert!(acked.len() >= 3, "{acked:?}");
    assert!(acked.iter().all(|&(id, server_id)| id == 7 && server_id == acked[0].1), "{acked:?}");
    assert_eq!(sim.shards[1].stats().messages_stored, 1);

    login(&mut sim, b, 1);
    assert_eq!(delivers(sim.frames(b)), vec![(acked[0].1, alice, b"once".to_vec())]);
}

/// Alice logs in on her home core 0 and sends SEND 1 to bob; as soon as core 0 has read it (its answer not
/// back yet) she drops the connection and connects again (HELLO written, not processed yet).
fn send_then_reconnect_before_the_answer(sim: &mut Sim, a: ClientId, bob: UserId) {
    login(sim, a, 0);
    sim.send(a, 1, bob, b"x");
    while sim.shards[0].stats().messages_in == 0 {
        assert!(sim.step());
    }
    sim.disconnect(a);
    sim.connect(a, 0);
}

#[test]
fn a_send_retried_while_the_first_is_in_flight_on_another_connection_gets_one_ack() {
    let (mut sim, alice, bob) = two_cores(SimConfig::new(seed_or(4), 2, 16));
    let a = sim.client(alice);
    send_then_reconnect_before_the_answer(&mut sim, a, bob);
    sim.send(a, 1, bob, b"x");
    sim.run();
    let [(1, _)] = acks(sim.frames(a))[..] else { panic!("the retry is answered once: {:?}", sim.frames(a)) };
    assert_eq!(sim.shards[1].stats().messages_stored, 1);
}

#[test]
fn a_retry_after_a_reconnect_gets_one_ack_and_the_old_connections_copy_none() {
    // The leftover `session/answer_unmatched`: the first copy's answer went to the sender's current session,
    // so a client that logged in again before it came got it there, then a second ACK for its own retry.
    let (mut sim, alice, bob) = two_cores(SimConfig::new(seed_or(16), 2, 16));
    let a = sim.client(alice);
    // The new connection logs in while the first copy is on its way to bob's core.
    send_then_reconnect_before_the_answer(&mut sim, a, bob);
    sim.run();
    assert_eq!(sim.shards[1].stats().messages_stored, 1, "the first copy was stored");
    assert!(acks(sim.frames(a)).is_empty(), "the first copy's answer was for its own connection: {:?}", sim.frames(a));
    sim.send(a, 1, bob, b"x");
    sim.run();
    let [(1, server_id)] = acks(sim.frames(a))[..] else { panic!("one ACK for the retry: {:?}", sim.frames(a)) };
    assert_eq!(sim.shards[1].stats().messages_stored, 1);
    let b = sim.client(bob);
    login(&mut sim, b, 1);
    assert_eq!(delivers(sim.frames(b)), vec![(server_id, alice, b"x".to_vec())]);
}

#[test]
fn every_copy_of_a_send_is_answered_and_a_reused_id_is_refused() {
    let (mut sim, alice, bob) = two_cores(SimConfig::new(seed_or(17), 2, 16));
    let carol = sim.user_homed_at(1, 1);
    let a = sim.client(alice);
    login(&mut sim, a, 0);
    // In one write: two copies of one SEND, the same id with another body, and with another recipient.
    sim.send(a, 1, bob, b"same");
    sim.send(a, 1, bob, b"same");
    sim.send(a, 1, bob, b"other body");
    sim.send(a, 1, carol, b"same");
    sim.run();
    let acked = acks(sim.frames(a));
    assert_eq!(acked.len(), 2, "each copy gets its answer: {:?}", sim.frames(a));
    assert_eq!(acked[0], acked[1], "one message, one server id");
    let reused = vec![(1, RejectCode::ClientMsgIdReused); 2];
    assert_eq!(rejects(sim.frames(a)), reused);
    assert_eq!(sim.shards[1].stats().messages_stored, 1);
    // Once it is stored: a copy gets the first ACK, another message under the id the REJECT.
    sim.take_frames(a);
    sim.send(a, 1, bob, b"same");
    sim.send(a, 1, bob, b"other body");
    sim.run();
    assert_eq!(acks(sim.frames(a)), vec![acked[0]]);
    assert_eq!(rejects(sim.frames(a)), vec![(1, RejectCode::ClientMsgIdReused)]);
    let b = sim.client(bob);
    login(&mut sim, b, 1);
    assert_eq!(delivers(sim.frames(b)), vec![(acked[0].1, alice, b"same".to_vec())]);
    assert_eq!(sim.shards[1].queued_for(carol), 0, "nothing for carol");
}

#[test]
fn queue_limits_refuse_with_their_codes_and_every_send_is_answered_once() {
    let mut config = SimConfig::new(seed_or(5), 2, 16);
    config.queue = QueueLimits {
        messages_per_user_max: 3,
        bytes_per_user_max: 100,
        bytes_per_core_max: 250,
        age_max_us: u64::MAX,
    };
    let mut sim = Sim::new(config);
    let alice = sim.user_homed_at(0, 0);
    let [bob, carol, dave] = [0, 1, 2].map(|nth| sim.user_homed_at(1, nth));
    let a = sim.client(alice);
    login(&mut sim, a, 0);
    let mut expected = Vec::new();
    // Bob: three messages fit, the fourth is over the per-user count.
    for n in 0..4 {
        sim.send(a, n, bob, b"0123456789");
    }
    expected.push((3, RejectCode::RecipientQueueFull));
    // Carol: 90 bytes fit, 20 more are over the per-user bytes.
    sim.send(a, 10, carol, &[1; 90]);
    sim.send(a, 11, carol, &[1; 20]);
    expected.push((11, RejectCode::RecipientQueueBytesFull));
    // Dave: core 1 holds 30 + 90 = 120 bytes; 140 more are over the core's 250.
    sim.send(a, 20, dave, &[2; 90]);
    sim.send(a, 21, dave, &[2; 50]);
    expected.push((21, RejectCode::ServerQueueFull));
    sim.send(a, 30, 99, b"nobody");
    expected.push((30, RejectCode::UnknownRecipient));
    sim.send(a, 31, bob, b"");
    expected.push((31, RejectCode::BodyInvalid));
    sim.run();

    let mut got = rejects(sim.frames(a));
    got.sort_by_key(|&(id, _)| id);
    expected.sort_by_key(|&(id, _)| id);
    assert_eq!(got, expected);
    let mut acked: Vec<u64> = acks(sim.frames(a)).iter().map(|&(id, _)| id).collect();
    acked.sort_unstable();
    assert_eq!(acked, vec![0, 1, 2, 10, 20]);
    assert_eq!(sim.shards[1].queued_bytes(), 30 + 90 + 90);
    // A refused SEND is remembered like a stored one: a retry gets the same REJECT, even once there is room;
    // a new client id is a new message.
    let b = sim.client(bob);
    login(&mut sim, b, 1);
    sim.send(a, 3, bob, b"0123456789");
    sim.send(a, 4, bob, b"0123456789");
    sim.run();
    assert_eq!(rejects(sim.frames(a)).iter().filter(|&&(id, _)| id == 3).count(), 2, "{:?}", sim.frames(a));
    assert!(rejects(sim.frames(a)).iter().all(|&(id, code)| id != 3 || code == RejectCode::RecipientQueueFull));
    assert!(!acks(sim.frames(a)).iter().any(|&(id, _)| id == 3));
    assert!(acks(sim.frames(a)).iter().any(|&(id, _)| id == 4), "{:?}", sim.frames(a));
}

#[test]
fn an_expired_message_is_dropped_and_its_sender_told() {
    let mut config = SimConfig::new(seed_or(6), 2, 16);
    config.queue.age_max_us = 5_000_000;
    config.idle_timeout_us = 3_600_000_000;
    let (mut sim, alice, bob) = two_cores(config);
    let a = sim.client(alice);
    login(&mut sim, a, 0);
    sim.send(a, 1, bob, b"too late");
    sim.run();
    let [(1, server_id)] = acks(sim.frames(a))[..] else { panic!("{:?}", sim.frames(a)) };
    sim.disconnect(a);
    sim.advance(4_000_000);
    assert_eq!(sim.shards[1].queued_for(bob), 1, "not yet");
    sim.advance(2_000_000);
    assert_eq!(sim.shards[1].queued_for(bob), 0);
    assert_eq!(sim.shards[1].stats().expired, 1);

    let b = sim.client(bob);
    login(&mut sim, b, 1);
    assert_eq!(welcomes(sim.frames(b)), vec![0]);
    assert!(delivers(sim.frames(b)).is_empty());
    sim.take_frames(a);
    login(&mut sim, a, 0);
    assert_eq!(receipts(sim.frames(a)), vec![(server_id, bob, ReceiptKind::Expired)]);
}

fn error_of(frames: &[Frame]) -> Option<ErrorCode> {
    frames.iter().find_map(|frame| match *frame {
        Frame::Server(OwnedServerFrame::Error { code, .. }) => Some(code),
        _ => None,
    })
}

#[test]
fn bad_frames_get_an_error_and_close_only_their_connection() {
    let mut config = SimConfig::new(seed_or(7), 2, 32);
    config.frame_size_max = 1024;
    let (mut sim, alice, bob) = two_cores(config);
    let carol = sim.user_homed_at(1, 1);
    let a = sim.client(alice);
    let b = sim.client(bob);
    login(&mut sim, b, 1);
    login(&mut sim, a, 0);
    sim.send(a, 1, bob, b"acked before the error");
    sim.run();
    assert_eq!(acks(sim.frames(a)).len(), 1);

    let hello = |sim: &Sim, user: UserId, version: u16| {
        let key = sim.clients.iter().find(|client| client.user == user).map_or([0; 32], |client| client.key);
        let mut bytes = Vec::new();
        wire::encode_client(&ClientFrame::Hello { version, user, key }, &mut bytes);
        bytes
    };
    let too_large = (2_000u32).to_le_bytes().to_vec();
    let cases: Vec<(Vec<u8>, bool, ErrorCode)> = vec![
        (vec![0, 0, 0, 0], false, ErrorCode::Malformed),
        (vec![2, 0, 0, 0, 0x77, 0], false, ErrorCode::Malformed),
        (too_large.clone(), false, ErrorCode::FrameTooLarge),
        (too_large, true, ErrorCode::FrameTooLarge),
        // Before HELLO only PING (answered), PONG and registration are accepted.
        (vec![9, 0, 0, 0, wire::kind::DELIVERED, 1, 0, 0, 0, 0, 0, 0, 0], false, ErrorCode::UnexpectedFrame),
        (hello(&sim, alice, 1), true, ErrorCode::UnexpectedFrame),
        (hello(&sim, alice, 2), false, ErrorCode::UnsupportedVersion),
        (hello(&sim, carol, 1), false, ErrorCode::AuthFailed),
        (vec![5, 0, 0, 0, wire::kind::DELIVERED, 1, 2, 3, 4], true, ErrorCode::Malformed),
    ];
    for (index, (bytes, logged_in, code)) in cases.into_iter().enumerate() {
        // A user of its own per case: a login must not replace alice's or bob's session.
        let client = sim.client(sim.user(10 + index as u64));
        let shard = index % 2;
        if logged_in {
            login(&mut sim, client, shard);
        } else {
            sim.connect_silent(client, shard);
        }
        sim.write_raw(client, &bytes);
        sim.run();
        let frames = sim.frames(client);
        assert_eq!(error_of(frames), Some(code), "case {index}: {frames:?}");
        assert_eq!(frames.last(), Some(&Frame::Closed), "case {index}: closed after the error");
        assert!(!sim.is_connected(client));
    }
    // Bob was never disturbed and still gets his message; he can chat on.
    let got = delivers(sim.frames(b));
    assert_eq!(got.len(), 1);
    assert!(sim.is_connected(b));
    sim.send(b, 1, alice, b"still here");
    sim.run();
    assert_eq!(acks(sim.frames(b)).len(), 1);
}

#[test]
fn a_connection_without_hello_times_out_and_one_with_hello_does_not() {
    let mut config = SimConfig::new(seed_or(8), 2, 16);
    config.handshake_timeout_us = 2_000_000;
    let (mut sim, alice, _) = two_cores(config);
    let silent = sim.client(alice);
    sim.connect_silent(silent, 1);
    // Half a HELLO is not a HELLO.
    let mut hello = Vec::new();
    let key = sim.clients[silent].key;
    wire::encode_client(&ClientFrame::Hello { version: 1, user: alice, key }, &mut hello);
    sim.write_raw(silent, &hello[..10]);
    let a = sim.client(sim.user_homed_at(1, 0));
    login(&mut sim, a, 1);
    sim.advance(1_900_000);
    assert!(sim.is_connected(silent));
    sim.advance(300_000);
    assert!(
        matches!(
            sim.frames(silent),
            [Frame::Server(OwnedServerFrame::Error { code: ErrorCode::HandshakeTimeout, .. }), Frame::Closed]
        ),
        "{:?}",
        sim.frames(silent)
    );
    assert!(sim.is_connected(a), "{:?}", sim.frames(a));
}

#[test]
fn an_idle_connection_gets_goaway_and_a_pinging_one_stays() {
    let mut config = SimConfig::new(seed_or(9), 2, 16);
    config.idle_timeout_us = 1_000_000;
    let (mut sim, alice, bob) = two_cores(config);
    let a = sim.client(alice);
    let b = sim.client(bob);
    login(&mut sim, a, 0);
    login(&mut sim, b, 0);
    for nonce in 0..10 {
        sim.write_frame(b, &ClientFrame::Ping { nonce });
        sim.advance(400_000);
    }
    assert_eq!(sim.frames(a).last(), Some(&Frame::Closed));
    assert!(sim.frames(a).contains(&Frame::Server(OwnedServerFrame::Goaway { reason: GoawayReason::IdleTimeout })));
    assert!(sim.is_connected(b));
    let pongs =
        sim.frames(b).iter().filter(|frame| matches!(frame, Frame::Server(OwnedServerFrame::Pong { .. }))).count();
    assert_eq!(pongs, 10);
}

#[test]
fn a_second_login_replaces_the_first_and_loses_nothing() {
    let (mut sim, alice, bob) = two_cores(SimConfig::new(seed_or(10), 2, 16));
    let a = sim.client(alice);
    let first = sim.client(bob);
    let second = sim.client(bob);
    sim.clients[first].auto_delivered = false;
    login(&mut sim, a, 0);
    login(&mut sim, first, 1);
    for n in 0..5 {
        sim.send(a, n, bob, &body(n));
    }
    sim.run();
    let acked = acks(sim.frames(a));
    assert_eq!(delivers(sim.frames(first)).len(), 5, "written, never acknowledged");
    // The second device logs in on the other core and is handed over.
    login(&mut sim, second, 0);
    let frames = sim.frames(first);
    assert_eq!(
        frames[frames.len() - 2..],
        [Frame::Server(OwnedServerFrame::Goaway { reason: GoawayReason::Replaced }), Frame::Closed]
    );
    assert_eq!(welcomes(sim.frames(second)), vec![5]);
    let expected: Vec<_> = acked.iter().map(|&(n, server_id)| (server_id, alice, body(n))).collect();
    assert_eq!(delivers(sim.frames(second)), expected, "everything again, same ids, in order");
    assert_eq!(sim.shards[1].queued_for(bob), 0);
    assert_eq!(receipts(sim.frames(a)).len(), 5);
}

#[test]
fn a_slow_reader_loses_nothing_and_its_outbound_stays_bounded() {
    let mut config = SimConfig::new(seed_or(11), 2, 16);
    config.write_chunk_max = 700;
    config.socket_window_bytes = 4 * 1024;
    let (mut sim, alice, bob) = two_cores(config);
    let a = sim.client(alice);
    let b = sim.client(bob);
    login(&mut sim, b, 1);
    sim.clients[b].read_chunk_max = 512;
    let body_bytes = 2_000;
    let count = DELIVERY_WINDOW_MAX as u64 + 150;
    login(&mut sim, a, 0);
    for n in 0..count {
        let mut message = vec![b'.'; body_bytes];
        message[..8].copy_from_slice(&n.to_le_bytes());
        sim.send(a, n, bob, &message);
    }
    // Bob does not read until everything is stored: his connection's outbound fills up to its limit.
    sim.clients[b].reading = false;
    sim.run();
    assert_eq!(acks(sim.frames(a)).len() as u64, count);
    let frame_bytes = 4 + 1 + 24 + body_bytes;
    let bound = OUTBOUND_BYTES_MAX + frame_bytes;
    let (shard, conn) = sim.server_side(b).expect("bob is served");
    let waiting = sim.shards[shard].outbound(conn).len();
    assert!(waiting >= OUTBOUND_BYTES_MAX - frame_bytes && waiting <= bound, "outbound {waiting}");
    sim.clients[b].reading = true;
    sim.run();
    assert!(sim.outbound_bytes_seen_max <= bound, "outbound reached {} > {bound}", sim.outbound_bytes_seen_max);
    let got = delivers(sim.frames(b));
    let numbers: Vec<u64> =
        got.iter().map(|(_, _, body)| u64::from_le_bytes(body[..8].try_into().expect("8 bytes"))).collect();
    assert_eq!(numbers, (0..count).collect::<Vec<_>>(), "each once, in order");
    assert_eq!(sim.shards[1].queued_for(bob), 0);
}

#[test]
fn a_tiny_mesh_backs_pressure_up_to_the_senders_and_delivers_everything_in_order() {
    let mut config = SimConfig::new(seed_or(12), 2, 64);
    config.mesh_capacity = 1;
    config.drain_batches_max = 1;
    let mut sim = Sim::new(config);
    let senders: Vec<UserId> = (0..12).map(|nth| sim.user_homed_at(0, nth)).collect();
    let recipients: Vec<UserId> = (0..3).map(|nth| sim.user_homed_at(1, nth)).collect();
    let per_sender = 1_000u64;
    let sender_clients: Vec<ClientId> = senders.iter().map(|&user| sim.client(user)).collect();
    let recipient_clients: Vec<ClientId> = recipients.iter().map(|&user| sim.client(user)).collect();
    for &client in &recipient_clients {
        login(&mut sim, client, 1);
    }
    for &client in &sender_clients {
        login(&mut sim, client, 0);
    }
    for (index, &client) in sender_clients.iter().enumerate() {
        for n in 0..per_sender {
            let to = recipients[(n as usize + index) % recipients.len()];
            sim.send(client, n, to, &n.to_le_bytes());
        }
    }
    sim.run();
    let total = per_sender * senders.len() as u64;
    assert!(
        sim.outbox_seen_max >= ringline_core::limits::MESH_OUTBOX_REQUESTS_MAX,
        "the outbox filled up ({}), so the pause was exercised",
        sim.outbox_seen_max
    );
    let connections = senders.len() + recipients.len();
    assert!(sim.outbox_seen_max <= ringline_core::limits::MESH_OUTBOX_REQUESTS_MAX + connections, "requests bounded");
    assert_eq!(sim.channel_batches_seen_max, 1);
    for (index, &client) in sender_clients.iter().enumerate() {
        let acked = acks(sim.frames(client));
        assert_eq!(acked.len() as u64, per_sender, "sender {index}");
        assert_eq!(receipts(sim.frames(client)).len() as u64, per_sender, "sender {index} receipts");
    }
    let mut delivered = 0;
    for &client in &recipient_clients {
        let got = delivers(sim.frames(client));
        delivered += got.len() as u64;
        for &sender in &senders {
            let numbers: Vec<u64> = got
                .iter()
                .filter(|(_, from, _)| *from == sender)
                .map(|(_, _, body)| u64::from_le_bytes(body[..8].try_into().expect("8 bytes")))
                .collect();
            assert!(numbers.windows(2).all(|pair| pair[0] < pair[1]), "in order from {sender}: {numbers:?}");
        }
    }
    assert_eq!(delivered, total);
    sim.assert_settled();
}

#[test]
fn shutdown_answers_sends_in_flight_then_says_goaway_and_quiesces() {
    let (mut sim, alice, bob) = two_cores(SimConfig::new(seed_or(13), 2, 16));
    let a = sim.client(alice);
    let b = sim.client(bob);
    login(&mut sim, a, 0);
    login(&mut sim, b, 1);
    sim.send(a, 1, bob, b"in flight at shutdown");
    while sim.shards[0].stats().messages_in == 0 {
        assert!(sim.step());
    }
    assert!(acks(sim.frames(a)).is_empty());
    for shard in 0..2 {
        sim.shards[shard].begin_shutdown(sim.now);
    }
    let late = sim.client(sim.user_homed_at(1, 1));
    sim.connect(late, 1);
    sim.run();
    let frames = sim.frames(a);
    assert_eq!(acks(frames).len(), 1, "the SEND in flight is answered: {frames:?}");
    assert_eq!(
        frames[frames.len() - 2..],
        [Frame::Server(OwnedServerFrame::Goaway { reason: GoawayReason::ShuttingDown }), Frame::Closed]
    );
    let frames = sim.frames(b);
    assert_eq!(
        frames[frames.len() - 2..],
        [Frame::Server(OwnedServerFrame::Goaway { reason: GoawayReason::ShuttingDown }), Frame::Closed]
    );
    assert_eq!(
        sim.frames(late),
        [Frame::Server(OwnedServerFrame::Goaway { reason: GoawayReason::ShuttingDown }), Frame::Closed]
    );
    for shard in &sim.shards {
        assert!(shard.is_quiesced(), "{shard:?}");
    }
    assert_eq!(sim.shards[1].queued_for(bob), 1, "the message stays queued for bob");
}

#[test]
fn a_retry_that_crosses_its_reject_gets_the_same_reject_and_is_never_delivered() {
    // Found by the property run (seed 220 of the first version): a retry sent from a new connection before the
    // REJECT of the first attempt arrived was tried afresh, stored and delivered, while the client held the
    // REJECT (the retry's ACK was lost with its connection).
    let mut config = SimConfig::new(seed_or(14), 2, 16);
    config.queue.messages_per_user_max = 1;
    let (mut sim, alice, bob) = two_cores(config);
    let a = sim.client(alice);
    let b = sim.client(bob);
    login(&mut sim, a, 0);
    sim.send(a, 1, bob, b"fills bob's queue");
    sim.run();
    sim.send(a, 2, bob, b"refused");
    while sim.shards[0].stats().messages_in < 2 {
        assert!(sim.step());
    }
    // The first attempt is on its way to bob's core; the client drops the connection and logs in again, and
    // does not read yet, so it does not know of the REJECT when it retries.
    sim.disconnect(a);
    sim.clients[a].reading = false;
    sim.connect(a, 0);
    sim.run();
    assert_eq!(sim.shards[0].stats().rejects, 1, "the first attempt was refused");
    // Room again: bob takes his message.
    login(&mut sim, b, 1);
    assert_eq!(sim.shards[1].queued_for(bob), 0);
    sim.send(a, 2, bob, b"refused");
    sim.clients[a].reading = true;
    sim.run();
    // The first attempt's REJECT was for its own connection, which is gone; the retry gets the same one.
    let frames = sim.frames(a);
    assert_eq!(rejects(frames), vec![(2, RejectCode::RecipientQueueFull)]);
    assert!(acks(frames).iter().all(|&(id, _)| id != 2), "{frames:?}");
    assert_eq!(delivers(sim.frames(b)).len(), 1, "only the first message: {:?}", sim.frames(b));
}

#[test]
fn a_sender_past_its_in_flight_limit_is_paused_not_refused() {
    let mut config = SimConfig::new(seed_or(15), 2, 16);
    config.mesh_capacity = 1;
    config.drain_batches_max = 1;
    let (mut sim, alice, bob) = two_cores(config);
    let a = sim.client(alice);
    let b = sim.client(bob);
    login(&mut sim, a, 0);
    login(&mut sim, b, 1);
    let count = u64::from(ringline_core::limits::SEND_INFLIGHT_MAX) * 3;
    for n in 0..count {
        sim.send(a, n, bob, &n.to_le_bytes());
    }
    // One step reads all of it, but handles SENDs only up to the limit: none can be answered within the step.
    sim.step();
    assert_eq!(sim.shards[0].stats().messages_in, u64::from(ringline_core::limits::SEND_INFLIGHT_MAX));
    sim.run();
    assert!(rejects(sim.frames(a)).is_empty());
    let acked: Vec<u64> = acks(sim.frames(a)).iter().map(|&(id, _)| id).collect();
    assert_eq!(acked, (0..count).collect::<Vec<_>>(), "every SEND ACKed, in order");
    let numbers: Vec<u64> = delivers(sim.frames(b))
        .iter()
        .map(|(_, _, body)| u64::from_le_bytes(body[..8].try_into().expect("8 bytes")))
        .collect();
    assert_eq!(numbers, (0..count).collect::<Vec<_>>());
    assert_eq!(receipts(sim.frames(a)).len() as u64, count);
}

#[test]
fn registration_moves_to_the_home_core_issues_a_key_and_revokes_the_old_device() {
    let (mut sim, alice, _bob) = two_cores(SimConfig::new(seed_or(17), 2, 16));
    // Alice's provisioned device is logged in on her home core (0).
    let old = sim.client(alice);
    login(&mut sim, old, 0);

    // A new device registers alice's number on a connection the other core accepted: it moves to core 0.
    let new = sim.client_with_key(alice, [0; 32]);
    sim.connect_silent(new, 1);
    sim.write_frame(new, &ClientFrame::RegisterRequest { phone: alice });
    sim.run();
    assert!(
        matches!(sim.frames(new), [Frame::Server(OwnedServerFrame::PinSent { phone, .. })] if *phone == alice),
        "{:?}",
        sim.frames(new)
    );
    assert_eq!(sim.server_side(new).map(|(shard, _)| shard), Some(0), "registration is decided on the home core");
    let pins = sim.pins();
    let [issued] = pins[..] else { panic!("one PIN: {pins:?}") };
    assert_eq!(issued.phone, alice);

    // A wrong PIN is refused and the connection stays; the right one issues generation 1's key.
    sim.write_frame(new, &ClientFrame::RegisterVerify { phone: alice, pin: (issued.pin + 1) % 1_000_000 });
    sim.write_frame(new, &ClientFrame::RegisterVerify { phone: alice, pin: issued.pin });
    sim.run();
    let key = match &sim.frames(new)[1..] {
        [
            Frame::Server(OwnedServerFrame::RegisterRefused { .. }),
            Frame::Server(OwnedServerFrame::Registered { user, key }),
        ] => {
            assert_eq!(*user, alice);
            *key
        }
        other => panic!("expected REGISTER_REFUSED then REGISTERED: {other:?}"),
    };
    assert_eq!(sim.device_records(), [(alice, 1)], "the generation was recorded before its key left");
    // The old device is told and closed.
    let old_frames = sim.frames(old);
    assert!(
        old_frames.contains(&Frame::Server(OwnedServerFrame::Goaway { reason: GoawayReason::Revoked })),
        "{old_frames:?}"
    );

    // The new key logs in (the same connection, on the home core now); the old key is refused.
    sim.write_frame(new, &ClientFrame::Hello { version: wire::PROTOCOL_VERSION, user: alice, key });
    sim.run();
    assert_eq!(welcomes(sim.frames(new)).len(), 1, "{:?}", sim.frames(new));
    let stale = sim.client(alice);
    sim.connect(stale, 1);
    sim.run();
    assert!(
        matches!(
            sim.frames(stale).first(),
            Some(Frame::Server(OwnedServerFrame::Error { code: ErrorCode::AuthFailed, .. }))
        ),
        "{:?}",
        sim.frames(stale)
    );
}
