//! The frames of protocol version 1, as typed values. Owns their fields and kind bytes; the byte layout of each
//! lives in `decode.rs`/`encode.rs` and in docs/PROTOCOL.md. Bodies borrow from the buffer they were decoded
//! from, so a frame is valid only until the caller discards those bytes.

use crate::codes::{ErrorCode, GoawayReason, ReceiptKind, RegisterRefusal, RejectCode};

/// A user's id: a number, e.g. an E.164 phone number without the plus.
pub type UserId = u64;

/// The secret a device presents in HELLO. Opaque to clients; the server derives and checks it.
pub type DeviceKey = [u8; 32];

/// Kind bytes: the first byte after the length prefix.
pub mod kind {
    pub const HELLO: u8 = 0x01;
    pub const WELCOME: u8 = 0x02;
    pub const ERROR: u8 = 0x03;
    pub const GOAWAY: u8 = 0x04;
    pub const PING: u8 = 0x05;
    pub const PONG: u8 = 0x06;
    pub const SEND: u8 = 0x10;
    pub const ACK: u8 = 0x11;
    pub const REJECT: u8 = 0x12;
    pub const DELIVER: u8 = 0x13;
    pub const DELIVERED: u8 = 0x14;
    pub const READ: u8 = 0x15;
    pub const RECEIPT: u8 = 0x16;
    pub const REGISTER_REQUEST: u8 = 0x20;
    pub const REGISTER_VERIFY: u8 = 0x21;
    pub const PIN_SENT: u8 = 0x22;
    pub const REGISTERED: u8 = 0x23;
    pub const REGISTER_REFUSED: u8 = 0x24;
}

/// A frame a client sends to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame<'a> {
    /// First frame of every connection: who the client is and the proof of it.
    Hello { version: u16, user: UserId, key: DeviceKey },
    /// Keepalive; the server answers PONG with the same nonce.
    Ping { nonce: u64 },
    /// Answer to a server PING.
    Pong { nonce: u64 },
    /// A message for `to`. `client_msg_id` is chosen by the sender and unique per sender: a SEND retried with
    /// the same id is stored once.
    Send { client_msg_id: u64, to: UserId, body: &'a [u8] },
    /// The client holds the item (message or receipt) `item_id` durably; the server may forget it.
    Delivered { item_id: u64 },
    /// The user read message `server_id`, which `sender` sent; a READ receipt goes to `sender`.
    Read { server_id: u64, sender: UserId },
    /// Instead of HELLO: asks for a one-time PIN for `phone` (the user id to be), sent out of band (SMS).
    RegisterRequest { phone: UserId },
    /// Instead of HELLO: proves the PIN; the answer is REGISTERED with a new device key.
    RegisterVerify { phone: UserId, pin: u32 },
}

/// A frame the server sends to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame<'a> {
    /// HELLO accepted. `queued` items are waiting and follow.
    Welcome { version: u16, server_time_us: u64, queued: u32 },
    /// Fatal: the server closes the connection after this frame.
    Error { code: ErrorCode, text: &'a str },
    /// The server closes the connection on purpose after this frame.
    Goaway { reason: GoawayReason },
    /// Keepalive; the client answers PONG with the same nonce.
    Ping { nonce: u64 },
    /// Answer to a client PING.
    Pong { nonce: u64 },
    /// The server holds the message sent as `client_msg_id` and has taken responsibility for it.
    Ack { client_msg_id: u64, server_id: u64, server_time_us: u64 },
    /// The message sent as `client_msg_id` was refused and not stored.
    Reject { client_msg_id: u64, code: RejectCode },
    /// A message for this user. `item_id` is the message's server id; answer DELIVERED(item_id).
    Deliver { item_id: u64, from: UserId, server_time_us: u64, body: &'a [u8] },
    /// News about message `server_id` this user sent to `peer`. Answer DELIVERED(item_id).
    Receipt { item_id: u64, server_id: u64, peer: UserId, kind: ReceiptKind, server_time_us: u64 },
    /// A PIN for `phone` went to the PIN sender; it is valid for `expires_in_s` seconds.
    PinSent { phone: UserId, expires_in_s: u32 },
    /// Registration done: `user` logs in with `key` from now on; every older device key of `user` is revoked.
    Registered { user: UserId, key: DeviceKey },
    /// A registration step was refused; the connection stays open. Retry no sooner than `retry_after_s`.
    RegisterRefused { phone: UserId, code: RegisterRefusal, retry_after_s: u32 },
}

impl ClientFrame<'_> {
    /// The kind byte of this frame.
    pub fn kind(&self) -> u8 {
        match self {
            Self::Hello { .. } => kind::HELLO,
            Self::Ping { .. } => kind::PING,
            Self::Pong { .. } => kind::PONG,
            Self::Send { .. } => kind::SEND,
            Self::Delivered { .. } => kind::DELIVERED,
            Self::Read { .. } => kind::READ,
            Self::RegisterRequest { .. } => kind::REGISTER_REQUEST,
            Self::RegisterVerify { .. } => kind::REGISTER_VERIFY,
        }
    }
}

impl ServerFrame<'_> {
    /// The kind byte of this frame.
    pub fn kind(&self) -> u8 {
        match self {
            Self::Welcome { .. } => kind::WELCOME,
            Self::Error { .. } => kind::ERROR,
            Self::Goaway { .. } => kind::GOAWAY,
            Self::Ping { .. } => kind::PING,
            Self::Pong { .. } => kind::PONG,
            Self::Ack { .. } => kind::ACK,
            Self::Reject { .. } => kind::REJECT,
            Self::Deliver { .. } => kind::DELIVER,
            Self::Receipt { .. } => kind::RECEIPT,
            Self::PinSent { .. } => kind::PIN_SENT,
            Self::Registered { .. } => kind::REGISTERED,
            Self::RegisterRefused { .. } => kind::REGISTER_REFUSED,
        }
    }
}
