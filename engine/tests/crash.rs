//! Durability against a real engine: every ACKed message survives SIGKILL and a restart (also with a different
//! core count), in order and with its server id; a DELIVERED wipe survives too; a retried SEND after a restart
//! is answered with its first ACK; a failing disk refuses new SENDs while deliveries go on, and nothing ACKed
//! is lost when it recovers; logs whose checksummed records are impossible refuse the start and stay as they
//! were. No test asserts on time.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use support::{Frame, Got, TestClient, TestServer};
use wire::{RejectCode, UserId};

/// Small segments, so that these tests rotate and compact the logs many times.
const SEGMENT_ARGS: [&str; 2] = ["--log-segment-bytes", "16384"];

fn body(sender: UserId, recipient: UserId, n: u64) -> Vec<u8> {
    format!("{sender}->{recipient} #{n} {}", "x".repeat(150)).into_bytes()
}

/// A message as its recipient must see it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    server_id: u64,
    sender: UserId,
    n: u64,
}

/// The next ACK, skipping receipts that may be waiting for the sender and deliveries (of a message to
/// oneself, which may arrive before its ACK).
fn next_ack(client: &mut TestClient) -> (u64, u64) {
    loop {
        match client.recv_significant() {
            Got::Frame(Frame::Ack { client_msg_id, server_id, .. }) => return (client_msg_id, server_id),
            Got::Frame(Frame::Receipt { item_id, .. }) => client.delivered(item_id),
            Got::Frame(Frame::Deliver { .. }) => {}
            other => panic!("expected ACK, got {other:?}"),
        }
    }
}

/// Reads `count` deliveries: (item id, sender, n parsed from the body).
fn read_deliveries(client: &mut TestClient, count: usize) -> Vec<Sent> {
    (0..count)
        .map(|_| {
            let (item_id, from, body) = client.expect_deliver();
            let text = String::from_utf8(body).expect("utf-8 body");
            let n = text.split('#').nth(1).and_then(|rest| rest.split(' ').next()).and_then(|n| n.parse().ok());
            Sent { server_id: item_id, sender: from, n: n.expect("a body this test wrote") }
        })
        .collect()
}

/// Every ACKed message is among `got`, with its server id, and each sender's messages are in send order
/// (messages sent but not ACKed before the crash may be there too, after the ACKed ones).
fn check_all_acked_arrived(recipient: UserId, acked: &[Sent], got: &[Sent]) {
    let mut last_n: HashMap<UserId, u64> = HashMap::new();
    for sent in got {
        if let Some(previous) = last_n.insert(sent.sender, sent.n) {
            assert!(previous < sent.n, "user {recipient}: from {} #{previous} came before #{}", sent.sender, sent.n);
        }
    }
    for expected in acked {
        let found: Vec<&Sent> = got.iter().filter(|got| got.sender == expected.sender && got.n == expected.n).collect();
        assert_eq!(found, vec![expected], "user {recipient}: ACKed message missing, duplicated or with another id");
    }
}

#[test]
fn acked_messages_survive_sigkill_restarts_with_other_core_counts_and_wipes_stay_wiped() {
    let mut server = TestServer::start("crash-rehome", 2, 40, &SEGMENT_ARGS);
    let senders: Vec<usize> = (0..4).collect();
    let group_a: Vec<usize> = (10..14).collect();
    let group_b: Vec<usize> = (20..24).collect();
    let per_pair = 30u64;

    // Phase 1 (2 cores): senders write to offline recipients and collect ACKs, then send more without
    // waiting; SIGKILL.
    let mut acked: HashMap<UserId, Vec<Sent>> = HashMap::new();
    let mut clients = Vec::new();
    for &s in &senders {
        let sender = server.user(s);
        let mut client = server.login(sender);
        let mut ids = HashMap::new();
        for &r in group_a.iter().chain(&group_b) {
            let recipient = server.user(r).0;
            for n in 0..per_pair {
                let client_msg_id = recipient * 1000 + n;
                ids.insert(client_msg_id, (recipient, n));
                client.send(client_msg_id, recipient, &body(sender.0, recipient, n));
            }
        }
        for _ in 0..ids.len() {
            let (client_msg_id, server_id) = next_ack(&mut client);
            let (recipient, n) = ids[&client_msg_id];
            acked.entry(recipient).or_default().push(Sent { server_id, sender: sender.0, n });
        }
        for &r in group_a.iter().chain(&group_b) {
            let recipient = server.user(r).0;
            client.send(recipient * 1000 + per_pair, recipient, &body(sender.0, recipient, per_pair));
        }
        clients.push(client);
    }
    for list in acked.values_mut() {
        list.sort_by_key(|sent| (sent.sender, sent.n));
    }
    server.kill_and_restart(1, &SEGMENT_ARGS);
    drop(clients);

    // Phase 2 (1 core): group A receives everything, in order, and acknowledges the first half.
    let mut remaining: HashMap<UserId, Vec<Sent>> = HashMap::new();
    for &r in &group_a {
        let recipient = server.user(r);
        let mut client = server.login(recipient);
        let queued = client.queued_at_login as usize;
        assert!(queued >= acked[&recipient.0].len(), "user {}: {queued} queued", recipient.0);
        let got = read_deliveries(&mut client, queued);
        check_all_acked_arrived(recipient.0, &acked[&recipient.0], &got);
        let half = got.len() / 2;
        for sent in &got[..half] {
            client.delivered(sent.server_id);
        }
        // Two SENDs to itself, each after the previous ACK (one log per core, in order): the first is stored
        // after those DELIVEREDs' receipts, so its ACK means they are durable and the removal records, which
        // wait for them, are appended; the second is stored after those, so its ACK means they are durable.
        let mut rest = got[half..].to_vec();
        for n in 0..2 {
            client.send(1 + n, recipient.0, &body(recipient.0, recipient.0, n));
            let (_, self_id) = next_ack(&mut client);
            rest.push(Sent { server_id: self_id, sender: recipient.0, n });
        }
        remaining.insert(recipient.0, rest);
    }
    server.kill_and_restart(2, &SEGMENT_ARGS);

    // Phase 3 (2 cores again, users back on their first home cores): a retried SEND is answered with its first ACK and not stored again.
    let retry_sender = server.user(senders[0]);
    let retry_recipient = server.user(group_b[0]).0;
    let first = acked[&retry_recipient].iter().find(|sent| sent.sender == retry_sender.0).expect("acked").clone();
    let mut client = server.login(retry_sender);
    client.send(retry_recipient * 1000 + first.n, retry_recipient, &body(retry_sender.0, retry_recipient, first.n));
    assert_eq!(next_ack(&mut client), (retry_recipient * 1000 + first.n, first.server_id), "the first ACK again");
    drop(client);

    // Group A gets exactly what it had not acknowledged, with the same server ids; nothing wiped returns.
    for &r in &group_a {
        let recipient = server.user(r);
        let mut client = server.login(recipient);
        let expected = &remaining[&recipient.0];
        assert_eq!(client.queued_at_login as usize, expected.len(), "user {}: wiped items stay wiped", recipient.0);
        assert_eq!(&read_deliveries(&mut client, expected.len()), expected);
    }
    // Group B, never online, gets everything ACKed before the first crash.
    for &r in &group_b {
        let recipient = server.user(r);
        let mut client = server.login(recipient);
        let queued = client.queued_at_login as usize;
        let got = read_deliveries(&mut client, queued);
        check_all_acked_arrived(recipient.0, &acked[&recipient.0], &got);
    }
}

#[test]
fn async_durability_keeps_everything_over_a_clean_shutdown() {
    let args = ["--durability", "async", "--durability-flush-interval", "5ms", "--log-segment-bytes", "16384"];
    let mut server = TestServer::start("crash-async", 2, 20, &args);
    let (alice, bob) = server.users_on_different_cores();
    let mut a = server.login(alice);
    let mut acked = Vec::new();
    for n in 0..200 {
        a.send(n, bob.0, &body(alice.0, bob.0, n));
    }
    for n in 0..200 {
        acked.push(Sent { server_id: a.expect_ack(n), sender: alice.0, n });
    }
    drop(a);
    server.terminate_and_restart(2, &args);
    let mut b = server.login(bob);
    assert_eq!(b.queued_at_login, 200);
    assert_eq!(read_deliveries(&mut b, 200), acked);
}

#[test]
fn a_failing_disk_refuses_new_sends_keeps_delivering_and_loses_nothing_acked() {
    // The log may not grow past 64 KiB: writes beyond fail (EFBIG) as on a full disk.
    let mut server = TestServer::start_with_file_size_max("crash-disk-full", 1, 20, &[], Some(64 * 1024));
    let (alice, bob, carol) = (server.user(0), server.user(1), server.user(2));
    let mut a = server.login(alice);
    let total = 1000u64;
    for n in 0..total {
        a.send(n, bob.0, &body(alice.0, bob.0, n));
    }
    // Alice's SENDs overflow the log. Those in the failing write wait for it (no answer yet); Carol probes
    // until a SEND is refused, which shows the engine noticed.
    let mut c = server.login(carol);
    let mut acked = Vec::new();
    let mut probe = 10_000;
    'refused: loop {
        probe += 1;
        c.send(probe, bob.0, &body(carol.0, bob.0, probe));
        while let Some(got) = c.recv_within(Duration::from_millis(50)) {
            match got {
                Got::Frame(Frame::Ack { client_msg_id, server_id, .. }) => {
                    acked.push(Sent { server_id, sender: carol.0, n: client_msg_id })
                }
                Got::Frame(Frame::Reject { code: RejectCode::StorageUnavailable, .. }) => break 'refused,
                other => panic!("expected ACK or REJECT, got {other:?}"),
            }
        }
        assert!(probe < 100_000, "the engine never refused a SEND");
    }
    let mut answers = 0;
    while let Some(got) = a.recv_within(Duration::from_millis(50)) {
        let Got::Frame(Frame::Ack { client_msg_id, server_id, .. }) = got else { panic!("expected ACK, got {got:?}") };
        acked.push(Sent { server_id, sender: alice.0, n: client_msg_id });
        answers += 1;
    }
    assert!(answers < total, "the log was full before all of Alice's messages were written");

    // Deliveries go on while the disk is full: Bob gets the stored messages, those whose record is durable
    // (every ACKed one is), and acknowledges each, so his delivery window keeps moving (the removals wait in
    // memory for the log).
    let mut b = server.login(bob);
    let mut delivered_first = Vec::new();
    for _ in 0..acked.len() {
        let sent = read_deliveries(&mut b, 1).remove(0);
        b.delivered(sent.server_id);
        delivered_first.push(sent);
    }
    drop(b);

    // Space returns: the waiting SENDs are ACKed, and new ones are accepted again.
    server.set_file_size_max(None);
    while answers < total {
        match a.recv_significant() {
            Got::Frame(Frame::Ack { client_msg_id, server_id, .. }) => {
                acked.push(Sent { server_id, sender: alice.0, n: client_msg_id });
                answers += 1;
            }
            Got::Frame(Frame::Receipt { .. }) => {}
            other => panic!("expected ACK, got {other:?}"),
        }
    }
    probe += 1;
    c.send(probe, bob.0, &body(carol.0, bob.0, probe));
    loop {
        match c.recv_significant() {
            Got::Frame(Frame::Ack { client_msg_id, server_id, .. }) => {
                acked.push(Sent { server_id, sender: carol.0, n: client_msg_id });
                if client_msg_id == probe {
                    break;
                }
            }
            Got::Frame(Frame::Reject { client_msg_id, code: RejectCode::StorageUnavailable })
                if client_msg_id != probe => {}
            Got::Frame(Frame::Receipt { .. }) => {}
            other => panic!("expected the last probe's ACK, got {other:?}"),
        }
    }

    // Only durable messages were delivered: each of them got its ACK.
    for sent in &delivered_first {
        assert!(acked.contains(sent), "delivered while the disk was full but never ACKed: {sent:?}");
    }

    // Nothing ACKed is lost across a crash: Bob had it already, or gets it now (again, if his
    // acknowledgement had not reached the log: then with the same server id).
    server.kill_and_restart(1, &[]);
    let mut b = server.login(bob);
    let queued = b.queued_at_login as usize;
    let mut delivered_after = Vec::new();
    for _ in 0..queued {
        let sent = read_deliveries(&mut b, 1).remove(0);
        b.delivered(sent.server_id);
        delivered_after.push(sent);
    }
    for expected in &acked {
        assert!(
            delivered_first.contains(expected) || delivered_after.contains(expected),
            "ACKed message {expected:?} lost"
        );
    }
}

fn wal_bytes(server: &TestServer) -> u64 {
    fn walk(path: &std::path::Path) -> u64 {
        std::fs::read_dir(path).map_or(0, |entries| {
            entries
                .flatten()
                .map(|entry| match entry.metadata() {
                    Ok(meta) if meta.is_dir() => walk(&entry.path()),
                    Ok(meta) => meta.len(),
                    Err(_) => 0,
                })
                .sum()
        })
    }
    walk(&server.data_dir.join("wal"))
}

#[test]
fn delivered_messages_are_reclaimed_from_disk_by_compaction() {
    let mut server = TestServer::start("crash-reclaim", 2, 20, &SEGMENT_ARGS);
    let (alice, bob) = server.users_on_different_cores();
    let mut a = server.login(alice);
    let mut b = server.login(bob);
    let total = 600u64;
    for n in 0..total {
        a.send(n, bob.0, &body(alice.0, bob.0, n));
    }
    for _ in 0..total {
        let (item_id, _, _) = b.expect_deliver();
        b.delivered(item_id);
    }
    let (mut acks, mut receipts) = (0, 0);
    while acks < total || receipts < total {
        match a.recv_significant() {
            Got::Frame(Frame::Ack { .. }) => acks += 1,
            Got::Frame(Frame::Receipt { item_id, .. }) => {
                a.delivered(item_id);
                receipts += 1;
            }
            other => panic!("expected ACKs and receipts, got {other:?}"),
        }
    }
    let written = total * body(alice.0, bob.0, 0).len() as u64;
    // Each user sends to itself, so the SEND is stored on the user's own home core after its DELIVEREDs,
    // and its ACK means the log of that core is durable past their removals. The write that made them
    // durable starts a compaction; the next SEND's write comes after the compaction's snapshot and after
    // the deletion of the segments before it.
    let mut pending: HashMap<UserId, Vec<Sent>> = HashMap::new();
    for round in 0..3u64 {
        for (sender, client) in [(alice, &mut a), (bob, &mut b)] {
            let n = 100_000 + round;
            client.send(n, sender.0, &body(sender.0, sender.0, n));
            let (_, server_id) = next_ack(client);
            pending.entry(sender.0).or_default().push(Sent { server_id, sender: sender.0, n });
        }
    }
    let on_disk = wal_bytes(&server);
    assert!(on_disk < written / 2, "{on_disk} bytes of log for {written} bytes sent, nearly all delivered");

    server.kill_and_restart(2, &SEGMENT_ARGS);
    for user in [alice, bob] {
        let mut client = server.login(user);
        let queued = client.queued_at_login as usize;
        assert_eq!(read_deliveries(&mut client, queued), pending[&user.0], "only what was not delivered");
    }
}

#[test]
fn logs_that_leave_no_item_id_refuse_the_start_with_a_clear_error_and_stay_as_they_were() {
    let mut server = TestServer::start("crash-ids-exhausted", 1, 4, &[]);
    let (alice, bob) = (server.user(0), server.user(1));
    let mut a = server.login(alice);
    a.send(1, bob.0, &body(alice.0, bob.0, 1));
    a.expect_ack(1);
    drop(a);
    assert!(server.stop().success(), "SIGTERM ends the engine cleanly");

    // A record with a valid checksum whose sequence number leaves no item id to issue, after the data.
    let epoch = std::fs::read_dir(server.data_dir.join("wal"))
        .expect("wal dir")
        .map(|entry| entry.expect("entry").path())
        .find(|path| path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("epoch-")))
        .expect("an epoch");
    let segment = std::fs::read_dir(epoch.join("core-0000"))
        .expect("core dir")
        .map(|entry| entry.expect("entry").path())
        .max()
        .expect("a segment");
    let mut bytes = std::fs::read(&segment).expect("segment");
    bytes.resize(bytes.len().next_multiple_of(ringline_core::wal::PAGE_BYTES), 0);
    // As a write of the same log: a group with its header (the log's id is in the segment's first one).
    let log_id = ringline_core::wal::GroupHeader::decode(&bytes).expect("a segment starts with a group").log_id;
    let mut writer = ringline_core::wal::LogWriter::with_log_id(0, 0, 1 << 40, u64::MAX, log_id);
    writer.append(&ringline_core::wal::LogRecord::Sequence { item_seq_next: 1 << 48 });
    bytes.extend_from_slice(&writer.poll_write().expect("a group").bytes);
    std::fs::write(&segment, &bytes).expect("write segment");
    let wal_entries = || -> Vec<_> {
        std::fs::read_dir(server.data_dir.join("wal")).expect("wal").map(|e| e.expect("e").path()).collect()
    };
    let wal_before = wal_entries();

    let output = server.serve_to_exit(1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the engine must not start: {stderr}");
    assert!(stderr.contains("the end of the 48-bit item id space"), "a clear error: {stderr}");
    assert_eq!(std::fs::read(&segment).expect("segment"), bytes, "the log stays as it was");
    let wal_after = wal_entries();
    assert_eq!(wal_after.len(), wal_before.len(), "no new epoch: {wal_after:?}");
}
