//! A connection's input: bytes in, whole frames out of them in order, each handed to the concern that owns its
//! kind (login, registration, messaging, receipts); partial frames and frames held back while the connection is
//! paused kept in a pooled buffer. Decides when a connection may read and when processing stops.

use wire::{ClientFrame, Decoded, ErrorCode, ServerFrame};

use crate::limits::{OUTBOUND_BYTES_MAX, SEND_INFLIGHT_MAX};

use super::connection::{ConnId, Connection, Stage};
use super::{Flow, Now, Shard};

impl Shard {
    /// Bytes read from a connection's socket.
    pub fn handle_bytes(&mut self, conn: ConnId, bytes: &[u8], now: Now) {
        self.process_input(conn, bytes, now);
        self.run_local(now);
    }

    pub(super) fn may_read(&self, connection: &Connection) -> bool {
        !self.shutting_down
            && !connection.paused_for_mesh
            && !connection.awaits_registration_answer()
            && connection.sends_inflight < SEND_INFLIGHT_MAX
            && connection.outbound.len() < OUTBOUND_BYTES_MAX
            && matches!(connection.stage, Stage::Handshaking | Stage::Active { .. })
    }

    /// Processes `bytes` after whatever the connection kept from earlier reads. What is left (a partial
    /// frame, or frames held back while paused) is kept in a pooled buffer, and only then.
    pub(super) fn process_input(&mut self, conn: ConnId, bytes: &[u8], now: Now) {
        let Some(connection) = self.conns.get_mut(conn) else { return };
        let mut kept = std::mem::take(&mut connection.partial);
        let from_kept = !kept.is_empty();
        if from_kept {
            kept.extend_from_slice(bytes);
        }
        let input: &[u8] = if from_kept { &kept } else { bytes };
        let used = self.process_frames(conn, input, now);
        let rest = &input[used..];
        let Some(connection) = self.conns.get_mut(conn) else {
            self.buffers.give(kept);
            return;
        };
        match connection.stage {
            Stage::HandingOff => {
                if let Some(handoff) = self.handoffs.get_mut(&conn) {
                    handoff.leftover = if handoff.leftover.is_empty() {
                        rest.into()
                    } else {
                        [&handoff.leftover[..], rest].concat().into_boxed_slice()
                    };
                }
            }
            Stage::Closing => {}
            Stage::Handshaking | Stage::Active { .. } if !rest.is_empty() => {
                if from_kept {
                    kept.drain(..used);
                    connection.partial = kept;
                    return;
                }
                let mut buffer = self.buffers.take();
                buffer.extend_from_slice(rest);
                connection.partial = buffer;
            }
            Stage::Handshaking | Stage::Active { .. } => {}
        }
        self.buffers.give(kept);
    }

    /// Decodes and handles frames while the connection may go on; returns the bytes used.
    fn process_frames(&mut self, conn: ConnId, input: &[u8], now: Now) -> usize {
        let mut used = 0;
        loop {
            let Some(connection) = self.conns.get(conn) else { return used };
            if !self.may_process(connection) {
                return used;
            }
            match wire::decode_client(&input[used..], self.config.frame_size_max) {
                Ok(Decoded::Frame { frame, consumed }) => {
                    used += consumed;
                    if let Some(connection) = self.conns.get_mut(conn) {
                        connection.last_frame_us = now.mono_us;
                    }
                    if self.handle_frame(conn, frame, now) == Flow::Stop {
                        return used;
                    }
                }
                Ok(Decoded::Incomplete { .. }) => return used,
                Err(error) => {
                    self.fail(conn, error.error_code(), &error.to_string());
                    return input.len();
                }
            }
        }
    }

    /// Like `may_read`, but for frames already read: a full outbound buffer does not stop processing
    /// (the frames are in memory already and their answers are bounded by the read).
    fn may_process(&self, connection: &Connection) -> bool {
        !self.shutting_down
            && !connection.paused_for_mesh
            && !connection.awaits_registration_answer()
            && connection.sends_inflight < SEND_INFLIGHT_MAX
            && matches!(connection.stage, Stage::Handshaking | Stage::Active { .. })
    }

    /// Resumes processing of input held back while the connection was paused.
    pub(super) fn resume(&mut self, conn: ConnId, now: Now) {
        let Some(connection) = self.conns.get(conn) else { return };
        if !connection.partial.is_empty() && self.may_process(connection) {
            self.process_input(conn, &[], now);
        }
        self.serve_soon(conn);
    }

    fn handle_frame(&mut self, conn: ConnId, frame: ClientFrame<'_>, now: Now) -> Flow {
        let Some(connection) = self.conns.get(conn) else { return Flow::Stop };
        let user = match connection.stage {
            Stage::Handshaking => {
                return match frame {
                    ClientFrame::RegisterRequest { .. } | ClientFrame::RegisterVerify { .. } => {
                        self.handle_register(conn, frame, now)
                    }
                    // "At any time": a client may check the link before it logs in. The handshake
                    // deadline still counts from accept.
                    ClientFrame::Ping { nonce } => {
                        self.write(conn, &ServerFrame::Pong { nonce });
                        Flow::Continue
                    }
                    ClientFrame::Pong { .. } => Flow::Continue,
                    _ => self.handle_hello(conn, frame, now),
                };
            }
            Stage::Active { user } => user,
            Stage::HandingOff | Stage::Closing => return Flow::Stop,
        };
        match frame {
            ClientFrame::Hello { .. } => {
                self.fail(conn, ErrorCode::UnexpectedFrame, "HELLO on a connection that is logged in");
                Flow::Stop
            }
            ClientFrame::RegisterRequest { .. } | ClientFrame::RegisterVerify { .. } => {
                self.fail(conn, ErrorCode::UnexpectedFrame, "registration on a connection that is logged in");
                Flow::Stop
            }
            ClientFrame::Ping { nonce } => {
                self.write(conn, &ServerFrame::Pong { nonce });
                Flow::Continue
            }
            ClientFrame::Pong { .. } => Flow::Continue,
            ClientFrame::Send { client_msg_id, to, body } => self.handle_send(conn, user, client_msg_id, to, body, now),
            ClientFrame::Delivered { item_id } => {
                self.handle_delivered(conn, user, item_id, now);
                self.paused_flow(conn)
            }
            ClientFrame::Read { server_id, sender } => {
                self.handle_read(conn, user, server_id, sender, now);
                self.paused_flow(conn)
            }
        }
    }

    /// `Stop` if the connection got paused while handling a frame.
    pub(super) fn paused_flow(&self, conn: ConnId) -> Flow {
        match self.conns.get(conn) {
            Some(connection) if self.may_process(connection) => Flow::Continue,
            _ => Flow::Stop,
        }
    }
}
