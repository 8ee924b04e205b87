//! Operators' requests as the shard answers them: show and queue report what the core holds, kick ends the
//! session and keeps the key, revoke changes nothing until its device record is durable and then ends the
//! session and refuses the old key, a failed record changes nothing, and requests past the bound are busy.

use std::collections::HashMap;

use wire::{ClientFrame, GoawayReason, ServerFrame};

use super::test_frames::{decode_frames, feed, take_outputs};
use super::tests::one_core_shard_with_generations;
use super::*;
use crate::account::KeyAuthority;
use crate::limits::ADMIN_REQUESTS_PENDING_MAX;

const NOW: Now = Now { mono_us: 5_000_000, wall_us: 1_700_000_000_000_000 };

fn log_in(shard: &mut Shard, keys: &KeyAuthority, user: UserId, generation: u32) -> ConnId {
    let conn = shard.handle_accept(NOW).expect("room");
    let key = keys.derive(user, generation);
    feed(shard, conn, &ClientFrame::Hello { version: wire::PROTOCOL_VERSION, user, key }, NOW);
    conn
}

/// Asks `request` and returns the answers and device records the shard hands out for it.
fn ask(shard: &mut Shard, ticket: u64, request: AdminRequest, now: Now) -> (Vec<AdminAnswer>, Vec<DeviceRecord>) {
    shard.handle_admin(AdminTicket(ticket), request, now);
    let outputs = take_outputs(shard, now);
    assert!(outputs.admin_answers.iter().all(|&(answered, _)| answered == AdminTicket(ticket)), "{outputs:?}");
    (outputs.admin_answers.into_iter().map(|(_, answer)| answer).collect(), outputs.device_records)
}

fn answer(shard: &mut Shard, request: AdminRequest, now: Now) -> AdminAnswer {
    let (answers, records) = ask(shard, 1, request, now);
    assert!(records.is_empty(), "{records:?}");
    assert_eq!(answers.len(), 1, "one answer: {answers:?}");
    answers[0]
}

#[test]
fn show_reports_existence_generation_session_queue_and_unread() {
    let (mut shard, keys, user) = one_core_shard_with_generations(|user| HashMap::from([(user + 1, 3)]));
    let unknown = 99;
    assert_eq!(
        answer(&mut shard, AdminRequest::Show(unknown), NOW),
        AdminAnswer::Refused(AdminRefusal::NoSuchUser(99))
    );

    let offline = user + 1;
    let AdminAnswer::Shown(shown) = answer(&mut shard, AdminRequest::Show(offline), NOW) else { panic!("shown") };
    assert_eq!(
        shown,
        UserShown {
            user: offline,
            generation: 3,
            generation_pending: false,
            online_idle_us: None,
            queued: 0,
            unread: 0
        }
    );

    let sender = log_in(&mut shard, &keys, user, 0);
    feed(&mut shard, sender, &ClientFrame::Send { client_msg_id: 1, to: offline, body: b"hi" }, NOW);
    let later = Now { mono_us: NOW.mono_us + 2_000_000, wall_us: NOW.wall_us + 3_000_000 };
    let AdminAnswer::Shown(shown) = answer(&mut shard, AdminRequest::Show(user), later) else { panic!("shown") };
    assert_eq!((shown.generation, shown.online_idle_us, shown.queued), (0, Some(2_000_000), 0));
    let AdminAnswer::Shown(shown) = answer(&mut shard, AdminRequest::Show(offline), later) else { panic!("shown") };
    assert_eq!((shown.online_idle_us, shown.queued), (None, 1), "the message waits for the offline user");

    // Delivered and acknowledged: no longer queued, now unread (a READ may name it).
    while let Some(write) = shard.poll_wal_write() {
        shard.handle_wal_done(write.lsn, NOW);
    }
    let reader = log_in(&mut shard, &keys, offline, 3);
    let item_id = decode_frames(shard.outbound(reader))
        .iter()
        .find_map(|frame| match frame {
            ServerFrame::Deliver { item_id, .. } => Some(*item_id),
            _ => None,
        })
        .expect("the message is delivered");
    feed(&mut shard, reader, &ClientFrame::Delivered { item_id }, NOW);
    let AdminAnswer::Shown(shown) = answer(&mut shard, AdminRequest::Show(offline), later) else { panic!("shown") };
    assert_eq!((shown.queued, shown.unread, shown.online_idle_us.is_some()), (0, 1, true));
}

#[test]
fn queue_reports_length_and_the_oldest_items_age() {
    let (mut shard, keys, user) = one_core_shard_with_generations(|_| HashMap::new());
    let offline = user + 1;
    let empty = answer(&mut shard, AdminRequest::Queue(offline), NOW);
    assert_eq!(empty, AdminAnswer::Queue(QueueShown { user: offline, items: 0, receipts: 0, oldest_age_us: None }));

    let sender = log_in(&mut shard, &keys, user, 0);
    for client_msg_id in 1..=3 {
        feed(&mut shard, sender, &ClientFrame::Send { client_msg_id, to: offline, body: b"hi" }, NOW);
    }
    let later = Now { mono_us: NOW.mono_us + 1, wall_us: NOW.wall_us + 7_000_000 };
    let AdminAnswer::Queue(queue) = answer(&mut shard, AdminRequest::Queue(offline), later) else { panic!("queue") };
    assert_eq!((queue.items, queue.receipts, queue.oldest_age_us), (3, 0, Some(7_000_000)), "stored at NOW");
}

#[test]
fn kick_ends_the_session_with_goaway_and_the_key_logs_in_again() {
    let (mut shard, keys, user) = one_core_shard_with_generations(|_| HashMap::new());
    assert_eq!(answer(&mut shard, AdminRequest::Kick(user), NOW), AdminAnswer::Refused(AdminRefusal::NotOnline(user)));
    let conn = log_in(&mut shard, &keys, user, 0);
    assert_eq!(answer(&mut shard, AdminRequest::Kick(user), NOW), AdminAnswer::Kicked { user });
    let frames = decode_frames(shard.outbound(conn));
    assert!(matches!(frames[..], [ServerFrame::Welcome { .. }, ServerFrame::Goaway { reason: GoawayReason::Kicked }]));
    assert_eq!(shard.conn_status(conn), ConnStatus::CloseAfterFlush);
    assert!(!shard.sessions.contains_key(&user));

    let again = log_in(&mut shard, &keys, user, 0);
    assert!(matches!(decode_frames(shard.outbound(again))[..], [ServerFrame::Welcome { .. }]));
}

#[test]
fn revoke_waits_for_its_record_then_ends_the_session_and_refuses_the_old_key() {
    let (mut shard, keys, user) = one_core_shard_with_generations(|_| HashMap::new());
    let conn = log_in(&mut shard, &keys, user, 0);
    let (answers, records) = ask(&mut shard, 7, AdminRequest::Revoke(user), NOW);
    assert!(answers.is_empty(), "no answer before the record is durable: {answers:?}");
    assert_eq!(records, [DeviceRecord { phone: user, generation: 1 }]);
    assert_eq!(decode_frames(shard.outbound(conn)).len(), 1, "the session goes on until durable");
    let AdminAnswer::Shown(shown) = answer(&mut shard, AdminRequest::Show(user), NOW) else { panic!("shown") };
    assert!(shown.generation_pending && shown.generation == 0);
    assert_eq!(answer(&mut shard, AdminRequest::Revoke(user), NOW), AdminAnswer::Refused(AdminRefusal::Busy));

    shard.handle_device_recorded(records[0], NOW);
    let outputs = take_outputs(&mut shard, NOW);
    let revoked = AdminAnswer::Revoked { user, generation: 1, disconnected: true };
    assert_eq!(outputs.admin_answers, [(AdminTicket(7), revoked)]);
    let frames = decode_frames(shard.outbound(conn));
    assert!(matches!(frames[..], [_, ServerFrame::Goaway { reason: GoawayReason::Revoked }]), "{frames:?}");
    let refused = log_in(&mut shard, &keys, user, 0);
    assert!(matches!(decode_frames(shard.outbound(refused))[..], [ServerFrame::Error { .. }]));
    let AdminAnswer::Shown(shown) = answer(&mut shard, AdminRequest::Show(user), NOW) else { panic!("shown") };
    assert_eq!((shown.generation, shown.generation_pending, shown.online_idle_us), (1, false, None));
}

#[test]
fn a_revocation_the_device_log_fails_changes_nothing() {
    let (mut shard, keys, user) = one_core_shard_with_generations(|_| HashMap::new());
    let conn = log_in(&mut shard, &keys, user, 0);
    let (_, records) = ask(&mut shard, 3, AdminRequest::Revoke(user), NOW);
    shard.handle_device_record_failed(records[0], NOW);
    let outputs = take_outputs(&mut shard, NOW);
    assert_eq!(outputs.admin_answers, [(AdminTicket(3), AdminAnswer::Refused(AdminRefusal::DeviceLogFailed(user)))]);
    assert_eq!(decode_frames(shard.outbound(conn)).len(), 1, "the session goes on");
    assert_eq!(shard.sessions.get(&user), Some(&conn));
    assert!(!shard.generations.contains_key(&user));
}

#[test]
fn requests_past_the_bound_are_busy_until_revocations_settle() {
    let (mut shard, _keys, user) = one_core_shard_with_generations(|_| HashMap::new());
    // Registered users beside the provisioned ones, so each revocation has a user of its own.
    let users: Vec<UserId> = (0..ADMIN_REQUESTS_PENDING_MAX as u64).map(|i| user + 1_000 + i).collect();
    for &other in &users {
        shard.generations.insert(other, 1);
    }
    let mut records = Vec::new();
    for (ticket, &other) in users.iter().enumerate() {
        let (answers, mut made) = ask(&mut shard, ticket as u64, AdminRequest::Revoke(other), NOW);
        assert!(answers.is_empty(), "{answers:?}");
        records.append(&mut made);
    }
    assert_eq!(answer(&mut shard, AdminRequest::Show(user), NOW), AdminAnswer::Refused(AdminRefusal::Busy));
    shard.handle_device_recorded(records[0], NOW);
    assert_eq!(take_outputs(&mut shard, NOW).admin_answers.len(), 1);
    assert!(matches!(answer(&mut shard, AdminRequest::Show(user), NOW), AdminAnswer::Shown(_)));
}
