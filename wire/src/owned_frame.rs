//! [`OwnedServerFrame`]: a server frame that owns its text and body, for tests and tools that keep frames after
//! the buffer they were decoded from moves on (a simulated client's inbox, a test client's reads). Not for the
//! hot path: the engine and load generator decode into borrowed [`ServerFrame`]s and never allocate per frame.
//!
//! Invariant: `into_owned` keeps every field (its Debug text equals the borrowed frame's).

use crate::codes::{ErrorCode, GoawayReason, ReceiptKind, RegisterRefusal, RejectCode};
use crate::frame::{DeviceKey, ServerFrame, UserId};

/// A [`ServerFrame`] with owned fields; each variant means what the borrowed one of the same name means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedServerFrame {
    Welcome { version: u16, server_time_us: u64, queued: u32 },
    Error { code: ErrorCode, text: String },
    Goaway { reason: GoawayReason },
    Ping { nonce: u64 },
    Pong { nonce: u64 },
    Ack { client_msg_id: u64, server_id: u64, server_time_us: u64 },
    Reject { client_msg_id: u64, code: RejectCode },
    Deliver { item_id: u64, from: UserId, server_time_us: u64, body: Vec<u8> },
    Receipt { item_id: u64, server_id: u64, peer: UserId, kind: ReceiptKind, server_time_us: u64 },
    PinSent { phone: UserId, expires_in_s: u32 },
    Registered { user: UserId, key: DeviceKey },
    RegisterRefused { phone: UserId, code: RegisterRefusal, retry_after_s: u32 },
}

impl ServerFrame<'_> {
    /// This frame with its text and body copied out of the decode buffer.
    pub fn into_owned(self) -> OwnedServerFrame {
        use OwnedServerFrame as Owned;
        match self {
            Self::Welcome { version, server_time_us, queued } => Owned::Welcome { version, server_time_us, queued },
            Self::Error { code, text } => Owned::Error { code, text: text.to_owned() },
            Self::Goaway { reason } => Owned::Goaway { reason },
            Self::Ping { nonce } => Owned::Ping { nonce },
            Self::Pong { nonce } => Owned::Pong { nonce },
            Self::Ack { client_msg_id, server_id, server_time_us } => {
                Owned::Ack { client_msg_id, server_id, server_time_us }
            }
            Self::Reject { client_msg_id, code } => Owned::Reject { client_msg_id, code },
            Self::Deliver { item_id, from, server_time_us, body } => {
                Owned::Deliver { item_id, from, server_time_us, body: body.to_vec() }
            }
            Self::Receipt { item_id, server_id, peer, kind, server_time_us } => {
                Owned::Receipt { item_id, server_id, peer, kind, server_time_us }
            }
            Self::PinSent { phone, expires_in_s } => Owned::PinSent { phone, expires_in_s },
            Self::Registered { user, key } => Owned::Registered { user, key },
            Self::RegisterRefused { phone, code, retry_after_s } => {
                Owned::RegisterRefused { phone, code, retry_after_s }
            }
        }
    }
}
