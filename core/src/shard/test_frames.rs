//! What the shard's unit tests share: a client frame fed to a shard as the bytes a socket read, the server
//! frames a shard wrote, and PINs handed over as the runtime would. Test code only; the tests' shard configurations stay with the tests.

use wire::{ClientFrame, Decoded, ServerFrame};

use super::{ConnId, DeviceRecord, Now, Output, Shard};
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

/// What `take_outputs` found: the outputs a test looks at. Connections to serve are left out: tests read
/// `outbound` themselves.
#[derive(Debug, Default)]
pub(super) struct Outputs {
    /// PINs handed to a sender that took them, oldest first.
    pub pins: Vec<IssuedPin>,
    pub device_records: Vec<DeviceRecord>,
    pub deleted_segments: Vec<u64>,
    /// `Output::LogReady` was given: records wait for `poll_wal_write`.
    pub log_ready: bool,
    /// Answers to admin requests, in the order given.
    pub admin_answers: Vec<(super::AdminTicket, super::AdminAnswer)>,
}

/// Takes every output the shard has, doing with PINs what the runtime does when the PIN sender takes them
/// (`handle_pin_handed_over`).
pub(super) fn take_outputs(shard: &mut Shard, now: Now) -> Outputs {
    let mut outputs = Outputs::default();
    while let Some(output) = shard.poll_output() {
        match output {
            Output::SendPin { conn, pin } => {
                shard.handle_pin_handed_over(conn, pin, now);
                outputs.pins.push(pin);
            }
            Output::RecordDevice(record) => outputs.device_records.push(record),
            Output::DeleteSegment(segment) => outputs.deleted_segments.push(segment),
            Output::LogReady => outputs.log_ready = true,
            Output::AdminAnswer { ticket, answer } => outputs.admin_answers.push((ticket, answer)),
            Output::Serve(_) | Output::MeshReady(_) => {}
        }
    }
    outputs
}

/// Hands each PIN the shard issued to a PIN sender that takes it. Returns them, oldest first.
pub(super) fn hand_over_pins(shard: &mut Shard, now: Now) -> Vec<IssuedPin> {
    take_outputs(shard, now).pins
}

/// The next PIN the shard issued, not answered yet (other outputs before it are dropped).
pub(super) fn next_pin(shard: &mut Shard) -> Option<(ConnId, IssuedPin)> {
    std::iter::from_fn(|| shard.poll_output()).find_map(|output| match output {
        Output::SendPin { conn, pin } => Some((conn, pin)),
        _ => None,
    })
}
