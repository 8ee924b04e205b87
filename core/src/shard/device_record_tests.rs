//! Registration's device record as the shard sees it: a new generation is an output (`Output::RecordDevice`),
//! and nothing observes it (its key, the revocation of the old device, REGISTERED) before the runtime reports
//! it durable; a failed record changes nothing; a shutdown waits for it.

use std::collections::HashMap;

use wire::{ClientFrame, ErrorCode, GoawayReason, RegisterRefusal, ServerFrame};

use super::test_frames::{decode_frames, feed, hand_over_pins, take_outputs};
use super::tests::one_core_shard_with_generations;
use super::*;
use crate::account::KeyAuthority;

const NOW: Now = Now { mono_us: 1, wall_us: 1 };

/// Logs `phone`'s provisioned device in; returns its connection.
fn log_in_old_device(shard: &mut Shard, keys: &KeyAuthority, phone: UserId) -> ConnId {
    let conn = shard.handle_accept(NOW).expect("room");
    let key = keys.derive(phone, 0);
    feed(shard, conn, &ClientFrame::Hello { version: wire::PROTOCOL_VERSION, user: phone, key }, NOW);
    assert!(matches!(decode_frames(shard.outbound(conn))[..], [ServerFrame::Welcome { .. }]));
    conn
}

/// A new connection asks for a PIN for `phone`; returns it with the PIN.
fn request_pin(shard: &mut Shard, phone: UserId) -> (ConnId, u32) {
    let conn = shard.handle_accept(NOW).expect("room");
    feed(shard, conn, &ClientFrame::RegisterRequest { phone }, NOW);
    let pins = hand_over_pins(shard, NOW);
    let issued = pins.last().expect("a PIN was sent");
    (conn, issued.pin)
}

/// `conn` sends the right PIN for `phone`; returns the device records the shard then hands the runtime.
fn verify(shard: &mut Shard, conn: ConnId, phone: UserId, pin: u32) -> Vec<DeviceRecord> {
    feed(shard, conn, &ClientFrame::RegisterVerify { phone, pin }, NOW);
    take_outputs(shard, NOW).device_records
}

fn hello_with(shard: &mut Shard, phone: UserId, key: wire::DeviceKey) -> Vec<String> {
    let conn = shard.handle_accept(NOW).expect("room");
    feed(shard, conn, &ClientFrame::Hello { version: wire::PROTOCOL_VERSION, user: phone, key }, NOW);
    decode_frames(shard.outbound(conn)).iter().map(|frame| format!("{frame:?}")).collect()
}

#[test]
fn a_new_device_generation_is_seen_only_once_its_record_is_durable() {
    let (mut shard, keys, phone) = one_core_shard_with_generations(|_| HashMap::new());
    let old_device = log_in_old_device(&mut shard, &keys, phone);
    let (new_device, pin) = request_pin(&mut shard, phone);
    // The right PIN, and right behind it in the same read a HELLO with the key it is to get.
    let key = keys.derive(phone, 1);
    let mut input = Vec::new();
    wire::encode_client(&ClientFrame::RegisterVerify { phone, pin }, &mut input);
    wire::encode_client(&ClientFrame::Hello { version: wire::PROTOCOL_VERSION, user: phone, key }, &mut input);
    shard.handle_bytes(new_device, &input, NOW);

    // Not durable yet: no answer, the HELLO waits behind it, the old device is not revoked.
    assert!(matches!(decode_frames(shard.outbound(new_device))[..], [ServerFrame::PinSent { .. }]));
    let records = take_outputs(&mut shard, NOW).device_records;
    assert_eq!(records, [DeviceRecord { phone, generation: 1 }]);
    assert!(take_outputs(&mut shard, NOW).device_records.is_empty(), "each record is handed out once");
    assert_eq!(shard.sessions.get(&phone), Some(&old_device), "the old device keeps its session");
    assert_eq!(decode_frames(shard.outbound(old_device)).len(), 1, "nothing more for the old device");
    // A HELLO with the new key racing the write fails; the old key still logs in.
    let racing = hello_with(&mut shard, phone, key);
    assert!(racing[0].contains(&format!("{:?}", ErrorCode::AuthFailed)), "{racing:?}");
    // A second registration of the phone meanwhile is told to come back, and its PIN stays unused.
    let (second, second_pin) = request_pin(&mut shard, phone);
    feed(&mut shard, second, &ClientFrame::RegisterVerify { phone, pin: second_pin }, NOW);
    let frames = decode_frames(shard.outbound(second));
    assert!(
        matches!(
            frames[..],
            [
                ServerFrame::PinSent { .. },
                ServerFrame::RegisterRefused { code: RegisterRefusal::Unavailable, retry_after_s: 1, .. }
            ]
        ),
        "{frames:?}"
    );

    shard.handle_device_recorded(records[0], NOW);
    let frames = decode_frames(shard.outbound(new_device));
    assert!(
        matches!(
            frames[..],
            [ServerFrame::PinSent { .. }, ServerFrame::Registered { user, key: issued }, ServerFrame::Welcome { .. }]
                if user == phone && issued == key
        ),
        "REGISTERED, then the HELLO held behind it: {frames:?}"
    );
    assert_eq!(shard.sessions.get(&phone), Some(&new_device));
    let frames = decode_frames(shard.outbound(old_device));
    assert!(matches!(frames[..], [_, ServerFrame::Goaway { reason: GoawayReason::Revoked }]), "{frames:?}");
    assert!(hello_with(&mut shard, phone, keys.derive(phone, 0))[0].contains("AuthFailed"));
    // The PIN the busy phone kept is good now, for the next generation.
    assert_eq!(verify(&mut shard, second, phone, second_pin), [DeviceRecord { phone, generation: 2 }]);
}

#[test]
fn a_device_record_that_fails_refuses_the_registration_and_changes_nothing() {
    let (mut shard, keys, phone) = one_core_shard_with_generations(|_| HashMap::new());
    let old_device = log_in_old_device(&mut shard, &keys, phone);
    let (new_device, pin) = request_pin(&mut shard, phone);
    let records = verify(&mut shard, new_device, phone, pin);
    shard.handle_device_record_failed(records[0], NOW);

    let frames = decode_frames(shard.outbound(new_device));
    assert!(
        matches!(
            frames[..],
            [ServerFrame::PinSent { .. }, ServerFrame::RegisterRefused { code: RegisterRefusal::Unavailable, .. }]
        ),
        "{frames:?}"
    );
    assert_eq!(shard.generations.get(&phone), None, "still the provisioned generation");
    assert_eq!(shard.sessions.get(&phone), Some(&old_device), "the old device keeps its session");
    assert!(hello_with(&mut shard, phone, keys.derive(phone, 1))[0].contains("AuthFailed"));
    // Answering the same record again changes nothing either.
    shard.handle_device_recorded(records[0], NOW);
    assert_eq!(shard.generations.get(&phone), None, "a settled record is not applied later");

    // The next try gets the same generation, and the connection reads again.
    let (retry, pin) = request_pin(&mut shard, phone);
    assert_eq!(verify(&mut shard, retry, phone, pin), [DeviceRecord { phone, generation: 1 }]);
}

#[test]
fn a_shutdown_waits_for_a_pending_device_record_and_answers_before_goaway() {
    let (mut shard, _keys, phone) = one_core_shard_with_generations(|_| HashMap::new());
    let (new_device, pin) = request_pin(&mut shard, phone);
    let records = verify(&mut shard, new_device, phone, pin);
    shard.begin_shutdown(NOW);
    assert_eq!(shard.shutdown_left().device_records, 1);
    assert!(!shard.is_quiesced());
    assert_eq!(decode_frames(shard.outbound(new_device)).len(), 1, "no GOAWAY before the answer");

    shard.handle_device_recorded(records[0], NOW);
    let frames = decode_frames(shard.outbound(new_device));
    assert!(
        matches!(
            frames[..],
            [
                ServerFrame::PinSent { .. },
                ServerFrame::Registered { .. },
                ServerFrame::Goaway { reason: GoawayReason::ShuttingDown }
            ]
        ),
        "{frames:?}"
    );
    assert_eq!(shard.shutdown_left().device_records, 0);
}

#[test]
fn a_connection_closed_while_its_record_is_written_gets_nothing_and_the_generation_still_counts() {
    let (mut shard, keys, phone) = one_core_shard_with_generations(|_| HashMap::new());
    let (new_device, pin) = request_pin(&mut shard, phone);
    let records = verify(&mut shard, new_device, phone, pin);
    shard.handle_closed(new_device);
    // A new connection takes the slot again: the answer must not reach it.
    let other = shard.handle_accept(NOW).expect("room");
    shard.handle_device_recorded(records[0], NOW);
    assert!(shard.outbound(other).is_empty(), "{:?}", decode_frames(shard.outbound(other)));
    // Durable is durable: a restart would read generation 1, so it is current now too.
    assert_eq!(shard.generations.get(&phone), Some(&1));
    assert!(hello_with(&mut shard, phone, keys.derive(phone, 0))[0].contains("AuthFailed"));
}
