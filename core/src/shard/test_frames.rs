//! What the shard's unit tests share: a client frame fed to a shard as the bytes a socket read, the server
//! frames a shard wrote, and PINs handed over as the runtime would. Test code only; the tests' shard configurations stay with the tests.

use wire::{ClientFrame, Decoded, ServerFrame};

use super::{ConnId, Now, Shard};
use crate::account::IssuedPin;

/// Encodes `frame` and hands it to `shard` as input read on `conn` at `now`.
pub(super) fn feed(shard: &mut Shard, conn: ConnId, frame: &ClientFrame<'_>, now: Now) {
    let mut bytes = Vec::new();
    wire::encode_client(frame, &mut bytes);
    shard.handle_bytes(conn, &bytes, now);
}

/// The whole server frames at the start of `bytes`, in order; a partial frame at the end is left out.
pub(super) fn decode_frames(mut bytes: &[u8]) -> Vec<ServerFrame<'_>> {
    let mut frames = Vec::new();
    while let Ok(Decoded::Frame { frame, consumed }) = wire::decode_server(bytes, wire::FRAME_SIZE_MAX_DEFAULT) {
        frames.push(frame);
        bytes = &bytes[consumed..];
    }
    frames
}

/// Does what the runtime does with the PINs the shard issued: hands each to a PIN sender that takes it
/// (`handle_pin_handed_over`). Returns them, oldest first.
pub(super) fn hand_over_pins(shard: &mut Shard, now: Now) -> Vec<IssuedPin> {
    let mut issued = Vec::new();
    while let Some((conn, pin)) = shard.poll_pin() {
        shard.handle_pin_handed_over(conn, pin, now);
        issued.push(pin);
    }
    issued
}
