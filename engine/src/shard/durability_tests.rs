//! The shard against its log, without a runtime: under `Durability::Sync` the ACK and the DELIVER of a
//! message wait for the write holding its record; a failed write makes SENDs get REJECT(StorageUnavailable)
//! until a write succeeds; under `Async` neither waits.

use std::sync::Arc;
use std::time::Duration;

use wire::{ClientFrame, RejectCode, ServerFrame, UserId};

use super::test_frames::{decode_frames, feed};
use super::{ConnId, Durability, Now, QueueLimits, Shard, ShardConfig};
use crate::account::{Directory, KeyAuthority, PinSender, ProvisionBatch, RegistrationLimits};
use crate::home::ShardId;

const NOW: Now = Now { mono_us: 1_000, wall_us: 1_000_000 };

fn shard(durability: Durability) -> (Shard, KeyAuthority) {
    let keys = KeyAuthority::new([7; 32]);
    let config = ShardConfig {
        cores: 1,
        frame_size_max: 4096,
        handshake_timeout_us: 10_000_000,
        idle_timeout_us: 100_000_000,
        queue: QueueLimits {
            messages_per_user_max: 100,
            bytes_per_user_max: 1 << 20,
            bytes_per_core_max: 1 << 30,
            age_max_us: u64::MAX / 2,
        },
        dedup_entries_max: 100,
        dedup_window_us: 1_000_000,
        durability,
        log_segment_bytes_max: 1 << 20,
        keys: keys.clone(),
        directory: Arc::new(Directory::new(vec![ProvisionBatch { prefix: 1, width: 7, count: 10 }])),
        generations: Arc::new(std::collections::HashMap::new()),
        registration: RegistrationLimits::standard(600_000_000),
        pin_sender: Arc::new(PinSender::in_memory()),
    };
    (Shard::new(ShardId(0), config), keys)
}

fn user(index: u64) -> UserId {
    10_000_000 + index
}

fn send(shard: &mut Shard, conn: ConnId, frame: &ClientFrame<'_>) {
    feed(shard, conn, frame, NOW);
}

/// Kinds of the frames waiting for `conn` (ACK, REJECT code, DELIVER), consuming them.
fn frames(shard: &mut Shard, conn: ConnId) -> Vec<String> {
    let bytes = shard.outbound(conn).to_vec();
    let out = decode_frames(&bytes)
        .into_iter()
        .map(|frame| match frame {
            ServerFrame::Welcome { .. } => "WELCOME".to_owned(),
            ServerFrame::Ack { client_msg_id, .. } => format!("ACK {client_msg_id}"),
            ServerFrame::Reject { client_msg_id, code } => format!("REJECT {client_msg_id} {code:?}"),
            ServerFrame::Deliver { body, .. } => format!("DELIVER {}", String::from_utf8_lossy(body)),
            other => format!("{other:?}"),
        })
        .collect();
    shard.consume_outbound(conn, bytes.len(), NOW);
    out
}

/// Logs user `index` in; returns the connection and what the server wrote after WELCOME.
fn login_with(shard: &mut Shard, keys: &KeyAuthority, index: u64) -> (ConnId, Vec<String>) {
    let conn = shard.handle_accept(NOW).expect("room");
    let key = keys.derive(user(index), 0);
    send(shard, conn, &ClientFrame::Hello { version: wire::PROTOCOL_VERSION, user: user(index), key });
    let mut got = frames(shard, conn);
    assert_eq!(got.first().map(String::as_str), Some("WELCOME"));
    got.remove(0);
    (conn, got)
}

fn login(shard: &mut Shard, keys: &KeyAuthority, index: u64) -> ConnId {
    let (conn, got) = login_with(shard, keys, index);
    assert!(got.is_empty(), "{got:?}");
    conn
}

/// Makes everything appended so far durable, as the runtime's log task would.
fn sync_log(shard: &mut Shard) {
    while let Some(write) = shard.poll_wal_write() {
        shard.handle_wal_done(write.lsn, NOW);
    }
}

#[test]
fn sync_acks_and_delivers_only_after_the_write() {
    let (mut shard, keys) = shard(Durability::Sync);
    let alice = login(&mut shard, &keys, 0);
    let bob = login(&mut shard, &keys, 1);
    send(&mut shard, alice, &ClientFrame::Send { client_msg_id: 1, to: user(1), body: b"one" });
    assert!(frames(&mut shard, alice).is_empty(), "no ACK before the record is durable");
    assert!(frames(&mut shard, bob).is_empty(), "no DELIVER before the record is durable");
    let write = shard.poll_wal_write().expect("the message's record");
    send(&mut shard, alice, &ClientFrame::Send { client_msg_id: 2, to: user(1), body: b"two" });
    shard.handle_wal_done(write.lsn, NOW);
    assert_eq!(frames(&mut shard, alice), vec!["ACK 1"], "the second record is in the next group");
    assert_eq!(frames(&mut shard, bob), vec!["DELIVER one"]);
    sync_log(&mut shard);
    assert_eq!(frames(&mut shard, alice), vec!["ACK 2"]);
    assert_eq!(frames(&mut shard, bob), vec!["DELIVER two"]);
}

#[test]
fn a_failed_write_refuses_new_sends_until_a_write_succeeds() {
    let (mut shard, keys) = shard(Durability::Sync);
    let alice = login(&mut shard, &keys, 0);
    send(&mut shard, alice, &ClientFrame::Send { client_msg_id: 1, to: user(1), body: b"one" });
    let write = shard.poll_wal_write().expect("write");
    shard.handle_wal_failed();
    send(&mut shard, alice, &ClientFrame::Send { client_msg_id: 2, to: user(1), body: b"two" });
    assert_eq!(frames(&mut shard, alice), vec![format!("REJECT 2 {:?}", RejectCode::StorageUnavailable)]);
    assert!(shard.wal_failed());
    assert!(shard.poll_wal_write().is_none(), "the runtime retries the failed write itself");
    shard.handle_wal_done(write.lsn, NOW);
    assert_eq!(frames(&mut shard, alice), vec!["ACK 1"], "the held SEND is ACKed once the retry succeeds");
    send(&mut shard, alice, &ClientFrame::Send { client_msg_id: 3, to: user(1), body: b"three" });
    sync_log(&mut shard);
    assert_eq!(frames(&mut shard, alice), vec!["ACK 3"]);
    let (_, got) = login_with(&mut shard, &keys, 1);
    assert_eq!(got, vec!["DELIVER one", "DELIVER three"]);
}

#[test]
fn async_acks_and_delivers_from_memory() {
    let (mut shard, keys) = shard(Durability::Async { flush_interval: Duration::from_millis(10) });
    let alice = login(&mut shard, &keys, 0);
    let bob = login(&mut shard, &keys, 1);
    send(&mut shard, alice, &ClientFrame::Send { client_msg_id: 1, to: user(1), body: b"one" });
    assert_eq!(frames(&mut shard, alice), vec!["ACK 1"]);
    assert_eq!(frames(&mut shard, bob), vec!["DELIVER one"]);
    assert!(shard.wal_pending(), "the record still waits for the next flush");
}
