//! The shard against its log, without a runtime: under `Durability::Sync` the ACK and the DELIVER of a
//! message wait for the write holding its record; a failed write makes SENDs get REJECT(StorageUnavailable)
//! until a write succeeds; under `Async` neither waits. And across a restart from what the logs hold (a crash
//! keeps exactly the writes reported durable): SEND dedup with its fingerprints, and Delivered and Expired
//! receipts, which a crash between the recipient's core and the sender's must not lose.

use std::sync::Arc;
use std::time::Duration;

use wire::{ClientFrame, ReceiptKind, RejectCode, ServerFrame, UserId};

use super::test_frames::{decode_frames, feed, take_outputs};
use super::{ConnId, Durability, Now, QueueLimits, Shard, ShardConfig};
use crate::account::{Directory, KeyAuthority, ProvisionBatch, RegistrationLimits};
use crate::home::ShardId;
use crate::limits::LOG_RECORD_BYTES_MAX;
use crate::wal::{PendingWrite, Recovery, replay_segment};

const NOW: Now = Now { mono_us: 1_000, wall_us: 1_000_000 };

fn shard(durability: Durability) -> (Shard, KeyAuthority) {
    core_shard(durability, 0, 1, u64::MAX / 2)
}

/// Core `id` of `cores`, whose queue drops messages older than `age_max_us`.
fn core_shard(durability: Durability, id: u16, cores: u16, age_max_us: u64) -> (Shard, KeyAuthority) {
    let keys = KeyAuthority::new([7; 32]);
    let config = ShardConfig {
        cores,
        frame_size_max: 4096,
        handshake_timeout_us: 10_000_000,
        idle_timeout_us: 100_000_000,
        queue: QueueLimits {
            messages_per_user_max: 100,
            bytes_per_user_max: 1 << 20,
            bytes_per_core_max: 1 << 30,
            age_max_us,
        },
        dedup_entries_max: 100,
        dedup_window_us: 1_000_000,
        durability,
        log_segment_bytes_max: 1 << 20,
        keys: keys.clone(),
        directory: Arc::new(Directory::new(vec![ProvisionBatch { prefix: 1, width: 7, count: 10 }])),
        generations: Arc::new(std::collections::HashMap::new()),
        registration: RegistrationLimits::standard(600_000_000),
    };
    (Shard::new(ShardId(id), config), keys)
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
    sync_log_to(shard, &mut Vec::new());
}

/// `sync_log`, keeping every write on `disk`: what survives a crash.
fn sync_log_to(shard: &mut Shard, disk: &mut Vec<PendingWrite>) {
    while let Some(write) = shard.poll_wal_write() {
        shard.handle_wal_done(write.lsn, NOW);
        disk.push(write);
    }
}

/// A new process after a crash: a shard recovered from the writes on `disk`.
fn restart(disk: &[PendingWrite]) -> Shard {
    let [shard] = <[_; 1]>::try_from(restart_cores(&[disk.to_vec()], u64::MAX / 2)).expect("one core");
    shard
}

/// A new process of `disks.len()` cores after a crash, recovered from the writes on every core's disk.
fn restart_cores(disks: &[Vec<PendingWrite>], age_max_us: u64) -> Vec<Shard> {
    let mut recovery = Recovery::new();
    for write in disks.iter().flatten() {
        for record in replay_segment(&write.bytes, LOG_RECORD_BYTES_MAX).records {
            recovery.apply(record);
        }
    }
    let cores = u16::try_from(disks.len()).expect("a few cores");
    let recovered = recovery.finish(cores, NOW.wall_us, 1_000_000).expect("recoverable");
    (0..cores)
        .zip(recovered)
        .map(|(id, core)| {
            let (mut shard, _) = core_shard(Durability::Sync, id, cores, age_max_us);
            shard.recover(core, 0);
            shard
        })
        .collect()
}

/// Two cores that start empty, and their key authority.
fn two_cores(age_max_us: u64) -> (Vec<Shard>, KeyAuthority) {
    let (first, keys) = core_shard(Durability::Sync, 0, 2, age_max_us);
    (vec![first, core_shard(Durability::Sync, 1, 2, age_max_us).0], keys)
}

/// Moves every message between the cores until none is left.
fn route(shards: &mut [Shard]) {
    loop {
        let mut moved = false;
        for from in 0..shards.len() {
            for to in (0..shards.len()).filter(|&to| to != from) {
                let mut batch = Vec::new();
                shards[from].poll_mesh(ShardId(to as u16), &mut batch, NOW);
                moved |= !batch.is_empty();
                if !batch.is_empty() {
                    shards[to].handle_mesh(ShardId(from as u16), batch, NOW);
                }
            }
        }
        if !moved {
            return;
        }
    }
}

/// Runs the cores, their logs and the mesh until nothing is left to do.
fn settle(shards: &mut [Shard], disks: &mut [Vec<PendingWrite>]) {
    loop {
        for (shard, disk) in shards.iter_mut().zip(disks.iter_mut()) {
            sync_log_to(shard, disk);
        }
        route(shards);
        if !shards.iter_mut().any(|shard| take_outputs(shard, NOW).log_ready) {
            return;
        }
    }
}

/// The first user whose home is core `id` of two, by index.
fn homed_at(id: u16) -> u64 {
    (0..10).find(|&index| crate::home::home_core(user(index), 2) == ShardId(id)).expect("ten users on two cores")
}

/// Item ids of the DELIVER frames waiting for `conn`, consuming everything waiting.
fn delivered_ids(shard: &mut Shard, conn: ConnId) -> Vec<u64> {
    let bytes = shard.outbound(conn).to_vec();
    let ids = decode_frames(&bytes)
        .into_iter()
        .filter_map(|frame| match frame {
            ServerFrame::Deliver { item_id, .. } => Some(item_id),
            _ => None,
        })
        .collect();
    shard.consume_outbound(conn, bytes.len(), NOW);
    ids
}

/// Whether `frames` is one RECEIPT, about `server_id`, from user `peer` (by index), of `kind`.
fn is_one_receipt(frames: &[String], server_id: u64, peer: u64, kind: ReceiptKind) -> bool {
    let about = format!("server_id: {server_id}, peer: {}, kind: {kind:?}, ", user(peer));
    matches!(frames, [frame] if frame.starts_with("Receipt {") && frame.contains(&about))
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
    assert!(take_outputs(&mut shard, NOW).log_ready, "the record still waits for the next flush");
}

#[test]
fn a_restart_remembers_each_sends_recipient_and_body() {
    let (mut shard, keys) = shard(Durability::Sync);
    let mut disk = Vec::new();
    let alice = login(&mut shard, &keys, 0);
    send(&mut shard, alice, &ClientFrame::Send { client_msg_id: 1, to: user(1), body: b"one" });
    sync_log_to(&mut shard, &mut disk);
    assert_eq!(frames(&mut shard, alice), vec!["ACK 1"]);

    let mut shard = restart(&disk);
    let alice = login(&mut shard, &keys, 0);
    send(&mut shard, alice, &ClientFrame::Send { client_msg_id: 1, to: user(1), body: b"one" });
    send(&mut shard, alice, &ClientFrame::Send { client_msg_id: 1, to: user(1), body: b"two" });
    send(&mut shard, alice, &ClientFrame::Send { client_msg_id: 1, to: user(2), body: b"one" });
    sync_log(&mut shard);
    let reused = format!("REJECT 1 {:?}", RejectCode::ClientMsgIdReused);
    assert_eq!(frames(&mut shard, alice), vec!["ACK 1".to_owned(), reused.clone(), reused]);
    let (_, got) = login_with(&mut shard, &keys, 1);
    assert_eq!(got, vec!["DELIVER one"], "stored once, before the restart");
    let (_, got) = login_with(&mut shard, &keys, 2);
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn a_delivered_receipt_survives_a_crash_between_the_recipients_core_and_the_senders() {
    let (mut shards, keys) = two_cores(u64::MAX / 2);
    let mut disks = vec![Vec::new(), Vec::new()];
    let (alice, bob) = (homed_at(0), homed_at(1));
    let a = login(&mut shards[0], &keys, alice);
    let b = login(&mut shards[1], &keys, bob);
    send(&mut shards[0], a, &ClientFrame::Send { client_msg_id: 1, to: user(bob), body: b"hi" });
    settle(&mut shards, &mut disks);
    assert_eq!(frames(&mut shards[0], a), vec!["ACK 1"]);
    let [server_id] = delivered_ids(&mut shards[1], b)[..] else { panic!("one DELIVER") };

    // Bob acknowledges; his core writes all it has, and the receipt reaches alice's core, which dies before
    // its receipt record is written.
    send(&mut shards[1], b, &ClientFrame::Delivered { item_id: server_id });
    sync_log_to(&mut shards[1], &mut disks[1]);
    route(&mut shards);
    sync_log_to(&mut shards[1], &mut disks[1]);
    let mut shards = restart_cores(&disks, u64::MAX / 2);

    // The message comes again, with its item id, and its DELIVERED now makes the receipt.
    let (b, got) = login_with(&mut shards[1], &keys, bob);
    assert_eq!(got, vec!["DELIVER hi"], "the message comes again");
    send(&mut shards[1], b, &ClientFrame::Delivered { item_id: server_id });
    settle(&mut shards, &mut disks);
    assert_eq!(shards[1].receipts_awaited(), 0);
    let (_, receipts) = login_with(&mut shards[0], &keys, alice);
    assert!(is_one_receipt(&receipts, server_id, bob, ReceiptKind::Delivered), "{receipts:?}");

    // Once the receipt is durable the message leaves bob's log for good.
    let mut shards = restart_cores(&disks, u64::MAX / 2);
    let (_, got) = login_with(&mut shards[1], &keys, bob);
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn an_expired_receipt_survives_a_crash_between_the_recipients_core_and_the_senders() {
    let age_max_us = 5_000_000;
    let (mut shards, keys) = two_cores(age_max_us);
    let mut disks = vec![Vec::new(), Vec::new()];
    let (alice, bob) = (homed_at(0), homed_at(1));
    let a = login(&mut shards[0], &keys, alice);
    send(&mut shards[0], a, &ClientFrame::Send { client_msg_id: 1, to: user(bob), body: b"too late" });
    settle(&mut shards, &mut disks);
    assert_eq!(frames(&mut shards[0], a), vec!["ACK 1"]);

    let later = Now { mono_us: NOW.mono_us + age_max_us, wall_us: NOW.wall_us + age_max_us };
    shards[1].handle_timeout(later);
    assert_eq!(shards[1].queued_for(user(bob)), 0, "expired");
    sync_log_to(&mut shards[1], &mut disks[1]);
    route(&mut shards);
    sync_log_to(&mut shards[1], &mut disks[1]);
    let mut shards = restart_cores(&disks, age_max_us);
    assert_eq!(shards[1].queued_for(user(bob)), 1, "still in bob's log: its receipt was not durable");

    shards[1].handle_timeout(later);
    settle(&mut shards, &mut disks);
    let (_, receipts) = login_with(&mut shards[0], &keys, alice);
    let server_id = (1 << 48) | 1;
    assert!(is_one_receipt(&receipts, server_id, bob, ReceiptKind::Expired), "the first item of core 1: {receipts:?}");
    let shards = restart_cores(&disks, age_max_us);
    assert_eq!(shards[1].queued_for(user(bob)), 0, "gone once its receipt is durable");
}

#[test]
fn a_message_waiting_for_its_receipt_survives_a_compaction_and_a_crash() {
    let (mut shards, keys) = two_cores(u64::MAX / 2);
    let mut disks = vec![Vec::new(), Vec::new()];
    let (alice, bob) = (homed_at(0), homed_at(1));
    let carol = (0..10).filter(|&index| crate::home::home_core(user(index), 2) == ShardId(1)).nth(1).expect("carol");
    let a = login(&mut shards[0], &keys, alice);
    let b = login(&mut shards[1], &keys, bob);
    let c = login(&mut shards[1], &keys, carol);
    send(&mut shards[0], a, &ClientFrame::Send { client_msg_id: 1, to: user(bob), body: b"kept" });
    settle(&mut shards, &mut disks);
    let [kept] = delivered_ids(&mut shards[1], b)[..] else { panic!("one DELIVER") };
    // Bob acknowledges; the receipt waits on alice's core, which writes nothing more before the crash.
    send(&mut shards[1], b, &ClientFrame::Delivered { item_id: kept });
    // Carol's messages to bob, delivered and acknowledged on bob's core alone, fill its log until a
    // compaction snapshot replaces the segment that holds the kept message's record.
    let mut deleted = Vec::new();
    for round in 0..5u64 {
        for n in 0..90u64 {
            let body = vec![b'x'; 3000];
            send(&mut shards[1], c, &ClientFrame::Send { client_msg_id: round * 100 + n, to: user(bob), body: &body });
        }
        sync_log_to(&mut shards[1], &mut disks[1]);
        frames(&mut shards[1], c);
        for item_id in delivered_ids(&mut shards[1], b) {
            send(&mut shards[1], b, &ClientFrame::Delivered { item_id });
        }
        sync_log_to(&mut shards[1], &mut disks[1]);
        deleted.extend(take_outputs(&mut shards[1], NOW).deleted_segments);
    }
    assert!(deleted.contains(&1), "the first segment was reclaimed: {deleted:?}");
    disks[1].retain(|write| !deleted.contains(&write.segment));
    assert_eq!(shards[1].receipts_awaited(), 1);
    // Carol's messages that did not fit in bob's outbound buffer were never read, so never acknowledged.
    let unacknowledged = shards[1].queued_for(user(bob));

    let mut shards = restart_cores(&disks, u64::MAX / 2);
    let (_, got) = login_with(&mut shards[1], &keys, bob);
    assert_eq!(got.first().map(String::as_str), Some("DELIVER kept"), "the snapshot kept it, before the queue");
    assert_eq!(got.len(), 1 + unacknowledged, "and nothing acknowledged came back");
}
