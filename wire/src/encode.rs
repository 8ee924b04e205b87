//! Frame encoding: appends a frame's bytes to a caller-owned buffer, so a batch of frames becomes one write.
//! Encoding cannot fail for frames whose length fits in the u32 prefix; a larger one is a caller bug (asserted).

use crate::LENGTH_PREFIX_BYTES;
use crate::frame::{ClientFrame, ServerFrame};

/// Appends the length prefix placeholder and the kind byte; returns where the frame starts.
fn begin(out: &mut Vec<u8>, kind: u8) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; LENGTH_PREFIX_BYTES]);
    out.push(kind);
    start
}

/// Writes the length prefix of the frame that starts at `start`; returns the frame's total bytes.
fn finish(out: &mut [u8], start: usize) -> usize {
    let total = out.len() - start;
    let len = u32::try_from(total - LENGTH_PREFIX_BYTES).expect("a frame is encoded from fields under 4 GiB");
    out[start..start + LENGTH_PREFIX_BYTES].copy_from_slice(&len.to_le_bytes());
    total
}

/// Appends `frame` to `out`; returns the number of bytes written.
pub fn encode_client(frame: &ClientFrame<'_>, out: &mut Vec<u8>) -> usize {
    let start = begin(out, frame.kind());
    match frame {
        ClientFrame::Hello { version, user, key } => {
            out.extend_from_slice(&version.to_le_bytes());
            out.extend_from_slice(&user.to_le_bytes());
            out.extend_from_slice(key);
        }
        ClientFrame::Ping { nonce } | ClientFrame::Pong { nonce } => out.extend_from_slice(&nonce.to_le_bytes()),
        ClientFrame::Send { client_msg_id, to, body } => {
            out.extend_from_slice(&client_msg_id.to_le_bytes());
            out.extend_from_slice(&to.to_le_bytes());
            out.extend_from_slice(body);
        }
        ClientFrame::Delivered { item_id } => out.extend_from_slice(&item_id.to_le_bytes()),
        ClientFrame::Read { server_id, sender } => {
            out.extend_from_slice(&server_id.to_le_bytes());
            out.extend_from_slice(&sender.to_le_bytes());
        }
        ClientFrame::RegisterRequest { phone } => out.extend_from_slice(&phone.to_le_bytes()),
        ClientFrame::RegisterVerify { phone, pin } => {
            out.extend_from_slice(&phone.to_le_bytes());
            out.extend_from_slice(&pin.to_le_bytes());
        }
    }
    finish(out, start)
}

/// Appends `frame` to `out`; returns the number of bytes written.
pub fn encode_server(frame: &ServerFrame<'_>, out: &mut Vec<u8>) -> usize {
    let start = begin(out, frame.kind());
    match frame {
        ServerFrame::Welcome { version, server_time_us, queued } => {
            out.extend_from_slice(&version.to_le_bytes());
            out.extend_from_slice(&server_time_us.to_le_bytes());
            out.extend_from_slice(&queued.to_le_bytes());
        }
        ServerFrame::Error { code, text } => {
            out.extend_from_slice(&code.to_wire().to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        ServerFrame::Goaway { reason } => out.extend_from_slice(&reason.to_wire().to_le_bytes()),
        ServerFrame::Ping { nonce } | ServerFrame::Pong { nonce } => out.extend_from_slice(&nonce.to_le_bytes()),
        ServerFrame::Ack { client_msg_id, server_id, server_time_us } => {
            out.extend_from_slice(&client_msg_id.to_le_bytes());
            out.extend_from_slice(&server_id.to_le_bytes());
            out.extend_from_slice(&server_time_us.to_le_bytes());
        }
        ServerFrame::Reject { client_msg_id, code } => {
            out.extend_from_slice(&client_msg_id.to_le_bytes());
            out.extend_from_slice(&code.to_wire().to_le_bytes());
        }
        ServerFrame::Deliver { item_id, from, server_time_us, body } => {
            out.extend_from_slice(&item_id.to_le_bytes());
            out.extend_from_slice(&from.to_le_bytes());
            out.extend_from_slice(&server_time_us.to_le_bytes());
            out.extend_from_slice(body);
        }
        ServerFrame::Receipt { item_id, server_id, peer, kind, server_time_us } => {
            out.extend_from_slice(&item_id.to_le_bytes());
            out.extend_from_slice(&server_id.to_le_bytes());
            out.extend_from_slice(&peer.to_le_bytes());
            out.push(kind.to_wire());
            out.extend_from_slice(&server_time_us.to_le_bytes());
        }
        ServerFrame::PinSent { phone, expires_in_s } => {
            out.extend_from_slice(&phone.to_le_bytes());
            out.extend_from_slice(&expires_in_s.to_le_bytes());
        }
        ServerFrame::Registered { user, key } => {
            out.extend_from_slice(&user.to_le_bytes());
            out.extend_from_slice(key);
        }
        ServerFrame::RegisterRefused { phone, code, retry_after_s } => {
            out.extend_from_slice(&phone.to_le_bytes());
            out.extend_from_slice(&code.to_wire().to_le_bytes());
            out.extend_from_slice(&retry_after_s.to_le_bytes());
        }
    }
    finish(out, start)
}
