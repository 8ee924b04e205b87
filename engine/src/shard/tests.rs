//! Shard behaviour that the engine's socket tests cannot see: which buffers a connection owns, and what
//! registration does at the end of a phone's device generations.

use std::sync::Arc;

use wire::{ClientFrame, Decoded, ServerFrame};

use super::test_frames::{decode_frames, feed};
use super::*;
use crate::account::{Directory, KeyAuthority, PinSender, ProvisionBatch, RegistrationLimits};

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
        pin_sender: Arc::new(PinSender::in_memory()),
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
    let pins = shard.config.pin_sender.memory_pins();
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
