//! Shard behaviour that the engine's socket tests cannot see: which buffers a connection owns, and what
//! registration does at the end of a phone's device generations.

use std::sync::Arc;

use wire::{ClientFrame, Decoded, ErrorCode, RegisterRefusal, ServerFrame};

use crate::limits::POOLED_BUFFERS_RESERVE;

use super::test_frames::{decode_frames, feed, hand_over_pins, next_pin};
use super::*;
use crate::account::{Directory, KeyAuthority, ProvisionBatch, RegistrationLimits};

const NOW: Now = Now { mono_us: 1, wall_us: 1 };

fn one_core_shard() -> (Shard, KeyAuthority, UserId) {
    one_core_shard_with_generations(|_| HashMap::new())
}

/// One core's shard with ten provisioned users; `generations` gives the device generations it starts with
/// (as the devices log would), from the first user's id.
pub(super) fn one_core_shard_with_generations(
    generations: impl FnOnce(UserId) -> HashMap<UserId, u32>,
) -> (Shard, KeyAuthority, UserId) {
    let keys = KeyAuthority::new([7; 32]);
    let batch = ProvisionBatch { prefix: 1, width: 7, count: 10 };
    let user = batch.user(0).expect("a user");
    let config = ShardConfig {
        cores: 1,
        frame_size_max: crate::limits::FRAME_SIZE_MAX_DEFAULT,
        handshake_timeout_us: 10_000_000,
        idle_timeout_us: 180_000_000,
        queue: QueueLimits {
            messages_per_user_max: 100,
            bytes_per_user_max: 1 << 20,
            bytes_per_core_max: 1 << 24,
            age_max_us: 1 << 40,
        },
        dedup_entries_max: 100,
        dedup_window_us: 1_000_000,
        keys: keys.clone(),
        directory: Arc::new(Directory::new(vec![batch])),
        durability: Durability::Sync,
        log_segment_bytes_max: 1 << 20,
        generations: Arc::new(generations(user)),
        registration: RegistrationLimits::standard(600_000_000),
    };
    (Shard::new(ShardId(0), config), keys, user)
}

#[test]
fn a_connection_owns_buffers_only_while_they_hold_bytes() {
    let (mut shard, keys, user) = one_core_shard();
    let conn = shard.handle_accept(NOW).expect("room");
    let mut input = Vec::new();
    wire::encode_client(
        &ClientFrame::Hello { version: wire::PROTOCOL_VERSION, user, key: keys.derive(user, 0) },
        &mut input,
    );
    let hello_bytes = input.len();
    wire::encode_client(&ClientFrame::Ping { nonce: 9 }, &mut input);
    let split = input.len() - 3;

    shard.handle_bytes(conn, &input[..split], NOW);
    let connection = shard.conns.get(conn).expect("open");
    assert_eq!(connection.partial.len(), split - hello_bytes);
    assert!(connection.partial.capacity() > 0, "the partial PING is kept");

    shard.handle_bytes(conn, &input[split..], NOW);
    let connection = shard.conns.get(conn).expect("open");
    assert_eq!(connection.partial.capacity(), 0, "no partial frame, no buffer");
    let outbound = shard.outbound(conn).to_vec();
    let Ok(Decoded::Frame { frame: ServerFrame::Welcome { .. }, consumed }) =
        wire::decode_server(&outbound, usize::MAX)
    else {
        panic!("WELCOME first");
    };
    assert!(matches!(
        wire::decode_server(&outbound[consumed..], usize::MAX),
        Ok(Decoded::Frame { frame: ServerFrame::Pong { nonce: 9 }, .. })
    ));

    shard.consume_outbound(conn, 1, NOW);
    assert!(shard.conns.get(conn).expect("open").outbound.capacity() > 0, "bytes left, buffer kept");
    shard.consume_outbound(conn, outbound.len() - 1, NOW);
    let connection = shard.conns.get(conn).expect("open");
    assert_eq!(connection.outbound.capacity(), 0, "an idle connection owns no buffer");
    assert!(!shard.buffers.is_empty(), "the buffers went back to the pool");

    let pooled = shard.buffers.len();
    shard.handle_bytes(conn, &input[split..], NOW);
    assert_eq!(shard.buffers.len(), pooled - 1, "a partial frame takes a pooled buffer");
    shard.handle_closed(conn);
    assert_eq!(shard.buffers.len(), pooled, "closing gives it back");
}

#[test]
fn a_phone_at_its_last_device_generation_is_refused_and_its_device_keeps_working() {
    let (mut shard, keys, phone) = one_core_shard_with_generations(|user| HashMap::from([(user, u32::MAX)]));
    let new_device = shard.handle_accept(NOW).expect("room");
    feed(&mut shard, new_device, &ClientFrame::RegisterRequest { phone }, NOW);
    let pins = hand_over_pins(&mut shard, NOW);
    let [issued] = pins[..] else { panic!("one PIN: {pins:?}") };
    feed(&mut shard, new_device, &ClientFrame::RegisterVerify { phone, pin: issued.pin }, NOW);

    let frames = decode_frames(shard.outbound(new_device));
    assert!(
        matches!(
            frames[..],
            [ServerFrame::PinSent { .. }, ServerFrame::RegisterRefused { code: RegisterRefusal::Unavailable, .. }]
        ),
        "a right PIN with no generation left is refused, not answered with the current key: {frames:?}"
    );
    assert_eq!(shard.generations.get(&phone), Some(&u32::MAX), "nothing revoked");

    let old_device = shard.handle_accept(NOW).expect("room");
    let key = keys.derive(phone, u32::MAX);
    feed(&mut shard, old_device, &ClientFrame::Hello { version: wire::PROTOCOL_VERSION, user: phone, key }, NOW);
    let frames = decode_frames(shard.outbound(old_device));
    assert!(matches!(frames[..], [ServerFrame::Welcome { .. }]), "the device still logs in: {frames:?}");
}

#[test]
fn a_ping_before_hello_gets_its_pong_and_hello_still_works() {
    let (mut shard, keys, user) = one_core_shard();
    let conn = shard.handle_accept(NOW).expect("room");
    feed(&mut shard, conn, &ClientFrame::Ping { nonce: 41 }, NOW);
    feed(
        &mut shard,
        conn,
        &ClientFrame::Hello { version: wire::PROTOCOL_VERSION, user, key: keys.derive(user, 0) },
        NOW,
    );
    let frames = decode_frames(shard.outbound(conn));
    assert!(
        matches!(frames[..], [ServerFrame::Pong { nonce: 41 }, ServerFrame::Welcome { .. }]),
        "PONG, then WELCOME: {frames:?}"
    );
    assert_eq!(shard.conn_status(conn), ConnStatus::Open { may_read: true });
}

/// A logged-in connection that sends PINGs until its PONGs fill the outbound buffer and never reads them.
fn stalled_pinger(shard: &mut Shard, keys: &KeyAuthority, user: UserId) -> ConnId {
    let conn = shard.handle_accept(NOW).expect("room");
    feed(shard, conn, &ClientFrame::Hello { version: wire::PROTOCOL_VERSION, user, key: keys.derive(user, 0) }, NOW);
    let mut pings = Vec::new();
    for nonce in 0..4096 {
        wire::encode_client(&ClientFrame::Ping { nonce }, &mut pings);
    }
    let mut reads = 0;
    while shard.conn_status(conn) == (ConnStatus::Open { may_read: true }) {
        shard.handle_bytes(conn, &pings, NOW);
        reads += 1;
        assert!(reads < 1000, "the server must stop reading a client whose answers pile up");
    }
    conn
}

#[test]
fn a_client_that_never_reads_its_pongs_is_not_read_then_told_why_after_its_backlog() {
    let (mut shard, keys, user) = one_core_shard();
    let conn = stalled_pinger(&mut shard, &keys, user);
    assert_eq!(shard.conn_status(conn), ConnStatus::Open { may_read: false }, "backpressure, not a close");
    let idle_us = shard.config.idle_timeout_us;

    // Half an idle timeout later the client reads a little: that is progress, so it is not idle.
    let half = Now { mono_us: NOW.mono_us + idle_us / 2, wall_us: 1 };
    let welcome = wire::encode_server(
        &ServerFrame::Welcome { version: wire::PROTOCOL_VERSION, server_time_us: 0, queued: 0 },
        &mut Vec::new(),
    );
    shard.consume_outbound(conn, welcome, half);
    let later = Now { mono_us: NOW.mono_us + idle_us + idle_us / 4, wall_us: 1 };
    shard.handle_timeout(later);
    assert_eq!(shard.conn_status(conn), ConnStatus::Open { may_read: false }, "it read within the idle timeout");

    // Then it reads nothing more for an idle timeout (the sweep looks at each slot within two).
    let stalled = Now { mono_us: half.mono_us + 2 * idle_us + 1, wall_us: 1 };
    shard.handle_timeout(stalled);
    assert_eq!(shard.conn_status(conn), ConnStatus::CloseAfterFlush);
    let frames = decode_frames(shard.outbound(conn));
    assert!(frames.len() > 1000, "the PONGs it has not read stay first");
    let (last, pongs) = frames.split_last().expect("frames");
    assert!(pongs.iter().all(|frame| matches!(frame, ServerFrame::Pong { .. })), "only PONGs before the reason");
    assert!(
        matches!(last, ServerFrame::Error { code: ErrorCode::Overloaded, text } if text.contains("read nothing")),
        "the last frame says why: {last:?}"
    );
}

#[test]
fn a_quiet_core_trims_what_a_burst_grew() {
    let (mut shard, _, _) = one_core_shard();
    for _ in 0..100 {
        shard.buffers.give(Vec::with_capacity(crate::limits::POOLED_BUFFER_BYTES));
    }
    shard.wakeups.reserve(100_000);
    shard.trim_memory();
    assert_eq!(shard.buffers.len(), POOLED_BUFFERS_RESERVE, "pooled buffers beyond the reserve are freed");
    assert!(shard.wakeups.capacity() <= crate::limits::MEMORY_TRIM_CAPACITY_MIN, "an emptied list gives its room back");
}

#[test]
fn a_pin_the_sender_cannot_take_is_refused_and_what_followed_it_waits_for_the_answer() {
    let (mut shard, _, phone) = one_core_shard();
    let conn = shard.handle_accept(NOW).expect("room");
    let mut input = Vec::new();
    wire::encode_client(&ClientFrame::RegisterRequest { phone }, &mut input);
    wire::encode_client(&ClientFrame::Ping { nonce: 4 }, &mut input);
    shard.handle_bytes(conn, &input, NOW);
    assert!(decode_frames(shard.outbound(conn)).is_empty(), "no answer before the PIN is handed over");
    let Some((asked_on, issued)) = next_pin(&mut shard) else { panic!("a PIN to send") };
    assert_eq!((asked_on, issued.phone), (conn, phone));
    assert!(next_pin(&mut shard).is_none(), "one PIN per request");

    shard.handle_pin_not_handed_over(conn, issued, NOW);
    let frames = decode_frames(shard.outbound(conn));
    assert!(
        matches!(
            frames[..],
            [
                ServerFrame::RegisterRefused { code: RegisterRefusal::Unavailable, retry_after_s: 5, .. },
                ServerFrame::Pong { nonce: 4 }
            ]
        ),
        "refused, then the PING behind it: {frames:?}"
    );
    assert_eq!(shard.stats().pins_sent, 0);
}

#[test]
fn each_output_is_given_once_until_the_runtime_takes_what_it_announced() {
    let (mut shard, keys, user) = one_core_shard();
    let outputs = |shard: &mut Shard| std::iter::from_fn(|| shard.poll_output()).collect::<Vec<_>>();
    let conn = shard.handle_accept(NOW).expect("room");
    feed(
        &mut shard,
        conn,
        &ClientFrame::Hello { version: wire::PROTOCOL_VERSION, user, key: keys.derive(user, 0) },
        NOW,
    );
    feed(&mut shard, conn, &ClientFrame::Ping { nonce: 1 }, NOW);
    assert_eq!(outputs(&mut shard), [Output::Serve(conn)], "WELCOME and PONG: one connection to serve");
    let written = shard.outbound(conn).len();
    shard.consume_outbound(conn, written, NOW);
    assert_eq!(outputs(&mut shard), [], "nothing new");

    // Records for an offline user: the log is told once, however many records wait.
    for client_msg_id in 1..=2 {
        feed(&mut shard, conn, &ClientFrame::Send { client_msg_id, to: user + 1, body: b"hi" }, NOW);
    }
    assert_eq!(outputs(&mut shard), [Output::LogReady], "no ACK before the records are durable");
    let write = shard.poll_wal_write().expect("both records");
    feed(&mut shard, conn, &ClientFrame::Send { client_msg_id: 3, to: user + 1, body: b"hi" }, NOW);
    assert_eq!(outputs(&mut shard), [Output::LogReady], "a record behind the write in flight");
    shard.handle_wal_done(write.lsn, NOW);
    assert_eq!(outputs(&mut shard), [Output::Serve(conn)], "the ACKs; the third record was announced already");
    assert!(shard.poll_wal_write().is_some(), "the third record");
    assert_eq!(outputs(&mut shard), []);
}
