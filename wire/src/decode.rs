//! Incremental frame decoding. Given the bytes received so far, a decoder returns one frame and how many bytes
//! it used, or how many bytes are still missing, or a typed error. It never reads past the frame, never
//! allocates, and never panics, whatever the input: the caller keeps the buffer and discards consumed bytes.

use crate::LENGTH_PREFIX_BYTES;
use crate::codes::{ErrorCode, GoawayReason, ReceiptKind, RegisterRefusal, RejectCode};
use crate::frame::{ClientFrame, ServerFrame, kind};

/// Why bytes could not be decoded into a frame. Every variant is fatal for the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The length prefix announces more bytes than the receiver allows.
    #[error("frame of {len} bytes is over the limit of {max} bytes")]
    FrameTooLarge { len: usize, max: usize },
    /// A frame must at least carry its kind byte.
    #[error("empty frame (length 0)")]
    Empty,
    /// The kind byte names no frame this side accepts.
    #[error("unknown frame kind 0x{kind:02x}")]
    UnknownKind { kind: u8 },
    /// The frame is shorter than its kind's fixed fields.
    #[error("frame kind 0x{kind:02x} is truncated: needs {needed} bytes, has {len}")]
    Truncated { kind: u8, needed: usize, len: usize },
    /// The frame is longer than its kind's fields, for kinds with no variable part.
    #[error("frame kind 0x{kind:02x} has {extra} trailing bytes")]
    TrailingBytes { kind: u8, extra: usize },
    /// A text field is not UTF-8.
    #[error("frame kind 0x{kind:02x} carries text that is not UTF-8")]
    InvalidText { kind: u8 },
}

impl DecodeError {
    /// The ERROR code the receiving side reports for this failure.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Self::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            _ => ErrorCode::Malformed,
        }
    }
}

/// The outcome of one decode step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<F> {
    /// A whole frame, and the number of input bytes it used.
    Frame { frame: F, consumed: usize },
    /// No whole frame yet; at least `needed` more bytes must arrive.
    Incomplete { needed: usize },
}

/// One length-prefixed frame split off the input, or how many bytes are missing.
enum Split<'a> {
    Whole { kind: u8, payload: &'a [u8], consumed: usize },
    Missing(usize),
}

/// Splits one length-prefixed frame off `buf`: its kind byte, its payload and the bytes it used.
fn split_frame(buf: &[u8], frame_size_max: usize) -> Result<Split<'_>, DecodeError> {
    let Some(prefix) = buf.first_chunk::<LENGTH_PREFIX_BYTES>() else {
        return Ok(Split::Missing(LENGTH_PREFIX_BYTES - buf.len()));
    };
    let len = u32::from_le_bytes(*prefix) as usize;
    if len > frame_size_max {
        return Err(DecodeError::FrameTooLarge { len, max: frame_size_max });
    }
    if len == 0 {
        return Err(DecodeError::Empty);
    }
    let total = LENGTH_PREFIX_BYTES + len;
    if buf.len() < total {
        return Ok(Split::Missing(total - buf.len()));
    }
    Ok(Split::Whole { kind: buf[LENGTH_PREFIX_BYTES], payload: &buf[LENGTH_PREFIX_BYTES + 1..total], consumed: total })
}

/// A bounds-checked reader over one frame's payload.
struct Fields<'a> {
    kind: u8,
    payload: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    fn new(kind: u8, payload: &'a [u8], fixed_len: usize) -> Result<Self, DecodeError> {
        if payload.len() < fixed_len {
            return Err(DecodeError::Truncated { kind, needed: fixed_len + 1, len: payload.len() + 1 });
        }
        Ok(Self { kind, payload, at: 0 })
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        // `new` checked the fixed length, and callers read exactly the fixed fields before `rest`.
        let mut out = [0u8; N];
        out.copy_from_slice(&self.payload[self.at..self.at + N]);
        self.at += N;
        out
    }

    fn u8(&mut self) -> u8 {
        self.bytes::<1>()[0]
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.bytes())
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.bytes())
    }

    /// The variable part after the fixed fields.
    fn rest(self) -> &'a [u8] {
        &self.payload[self.at..]
    }

    /// Asserts that the fixed fields were the whole payload.
    fn end(self) -> Result<(), DecodeError> {
        let extra = self.payload.len() - self.at;
        if extra == 0 { Ok(()) } else { Err(DecodeError::TrailingBytes { kind: self.kind, extra }) }
    }
}

/// Decodes one frame a client sent (the server's side). `frame_size_max` bounds the length prefix.
pub fn decode_client(buf: &[u8], frame_size_max: usize) -> Result<Decoded<ClientFrame<'_>>, DecodeError> {
    let (kind_byte, payload, consumed) = match split_frame(buf, frame_size_max)? {
        Split::Whole { kind, payload, consumed } => (kind, payload, consumed),
        Split::Missing(needed) => return Ok(Decoded::Incomplete { needed }),
    };
    let frame = match kind_byte {
        kind::HELLO => {
            let mut f = Fields::new(kind_byte, payload, 2 + 8 + 32)?;
            let frame = ClientFrame::Hello { version: f.u16(), user: f.u64(), key: f.bytes() };
            f.end()?;
            frame
        }
        kind::PING | kind::PONG => {
            let mut f = Fields::new(kind_byte, payload, 8)?;
            let nonce = f.u64();
            f.end()?;
            if kind_byte == kind::PING { ClientFrame::Ping { nonce } } else { ClientFrame::Pong { nonce } }
        }
        kind::SEND => {
            let mut f = Fields::new(kind_byte, payload, 8 + 8)?;
            let client_msg_id = f.u64();
            let to = f.u64();
            ClientFrame::Send { client_msg_id, to, body: f.rest() }
        }
        kind::DELIVERED => {
            let mut f = Fields::new(kind_byte, payload, 8)?;
            let frame = ClientFrame::Delivered { item_id: f.u64() };
            f.end()?;
            frame
        }
        kind::READ => {
            let mut f = Fields::new(kind_byte, payload, 8 + 8)?;
            let frame = ClientFrame::Read { server_id: f.u64(), sender: f.u64() };
            f.end()?;
            frame
        }
        kind::REGISTER_REQUEST => {
            let mut f = Fields::new(kind_byte, payload, 8)?;
            let frame = ClientFrame::RegisterRequest { phone: f.u64() };
            f.end()?;
            frame
        }
        kind::REGISTER_VERIFY => {
            let mut f = Fields::new(kind_byte, payload, 8 + 4)?;
            let frame = ClientFrame::RegisterVerify { phone: f.u64(), pin: f.u32() };
            f.end()?;
            frame
        }
        other => return Err(DecodeError::UnknownKind { kind: other }),
    };
    Ok(Decoded::Frame { frame, consumed })
}

/// Decodes one frame the server sent (a client's side). `frame_size_max` bounds the length prefix.
pub fn decode_server(buf: &[u8], frame_size_max: usize) -> Result<Decoded<ServerFrame<'_>>, DecodeError> {
    let (kind_byte, payload, consumed) = match split_frame(buf, frame_size_max)? {
        Split::Whole { kind, payload, consumed } => (kind, payload, consumed),
        Split::Missing(needed) => return Ok(Decoded::Incomplete { needed }),
    };
    let frame = match kind_byte {
        kind::WELCOME => {
            let mut f = Fields::new(kind_byte, payload, 2 + 8 + 4)?;
            let version = f.u16();
            let server_time_us = f.u64();
            let queued = u32::from_le_bytes(f.bytes());
            f.end()?;
            ServerFrame::Welcome { version, server_time_us, queued }
        }
        kind::ERROR => {
            let mut f = Fields::new(kind_byte, payload, 2)?;
            let code = ErrorCode::from_wire(f.u16());
            let text = std::str::from_utf8(f.rest()).map_err(|_| DecodeError::InvalidText { kind: kind_byte })?;
            ServerFrame::Error { code, text }
        }
        kind::GOAWAY => {
            let mut f = Fields::new(kind_byte, payload, 2)?;
            let reason = GoawayReason::from_wire(f.u16());
            f.end()?;
            ServerFrame::Goaway { reason }
        }
        kind::PING | kind::PONG => {
            let mut f = Fields::new(kind_byte, payload, 8)?;
            let nonce = f.u64();
            f.end()?;
            if kind_byte == kind::PING { ServerFrame::Ping { nonce } } else { ServerFrame::Pong { nonce } }
        }
        kind::ACK => {
            let mut f = Fields::new(kind_byte, payload, 24)?;
            let frame = ServerFrame::Ack { client_msg_id: f.u64(), server_id: f.u64(), server_time_us: f.u64() };
            f.end()?;
            frame
        }
        kind::REJECT => {
            let mut f = Fields::new(kind_byte, payload, 10)?;
            let frame = ServerFrame::Reject { client_msg_id: f.u64(), code: RejectCode::from_wire(f.u16()) };
            f.end()?;
            frame
        }
        kind::DELIVER => {
            let mut f = Fields::new(kind_byte, payload, 24)?;
            let item_id = f.u64();
            let from = f.u64();
            let server_time_us = f.u64();
            ServerFrame::Deliver { item_id, from, server_time_us, body: f.rest() }
        }
        kind::RECEIPT => {
            let mut f = Fields::new(kind_byte, payload, 8 + 8 + 8 + 1 + 8)?;
            let item_id = f.u64();
            let server_id = f.u64();
            let peer = f.u64();
            let kind = ReceiptKind::from_wire(f.u8());
            let server_time_us = f.u64();
            f.end()?;
            ServerFrame::Receipt { item_id, server_id, peer, kind, server_time_us }
        }
        kind::PIN_SENT => {
            let mut f = Fields::new(kind_byte, payload, 8 + 4)?;
            let frame = ServerFrame::PinSent { phone: f.u64(), expires_in_s: f.u32() };
            f.end()?;
            frame
        }
        kind::REGISTERED => {
            let mut f = Fields::new(kind_byte, payload, 8 + 32)?;
            let frame = ServerFrame::Registered { user: f.u64(), key: f.bytes() };
            f.end()?;
            frame
        }
        kind::REGISTER_REFUSED => {
            let mut f = Fields::new(kind_byte, payload, 8 + 2 + 4)?;
            let phone = f.u64();
            let code = RegisterRefusal::from_wire(f.u16());
            let retry_after_s = f.u32();
            f.end()?;
            ServerFrame::RegisterRefused { phone, code, retry_after_s }
        }
        other => return Err(DecodeError::UnknownKind { kind: other }),
    };
    Ok(Decoded::Frame { frame, consumed })
}
