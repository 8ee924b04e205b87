//! ringline's native protocol, version 1 (see docs/PROTOCOL.md): the frame types, their byte layout, and a
//! sans-IO codec. Bytes go in, typed frames or a typed [`DecodeError`] come out; frames go in, bytes come out.
//!
//! This crate owns the wire format and nothing else: it knows no sockets, no runtime, no clock and no user
//! state. Decoding borrows message bodies from the caller's buffer (no allocation per frame); encoding appends
//! to a caller-owned `Vec<u8>`, so many frames coalesce into one write. [`OwnedServerFrame`] is a server frame
//! copied out of the buffer, for tests and tools that keep frames; the hot path never makes one.
//!
//! Invariant: every frame that [`encode_client`]/[`encode_server`] writes decodes back to an equal frame, and
//! no input, however malformed, makes a decoder panic (fuzzed in `fuzz/`).

mod codes;
mod decode;
mod encode;
mod frame;
mod keys_file;
mod owned_frame;

pub use codes::{ErrorCode, GoawayReason, ReceiptKind, RegisterRefusal, RejectCode};
pub use decode::{DecodeError, Decoded, decode_client, decode_server};
pub use encode::{encode_client, encode_server};
pub use frame::{ClientFrame, DeviceKey, ServerFrame, UserId, kind};
pub use keys_file::{KEYS_FILE_HEADER, KeysFileError, UserKey, parse_keys_line, write_keys_line};
pub use owned_frame::OwnedServerFrame;

/// Protocol version spoken by this crate; HELLO and WELCOME carry it.
pub const PROTOCOL_VERSION: u16 = 1;

/// The ALPN protocol id of this protocol version over TLS (docs/PROTOCOL.md, "Over TLS"). A server refuses a
/// client that offers ALPN without it; a client that offers no ALPN at all is served.
pub const TLS_ALPN_PROTOCOL: &[u8] = b"ringline/1";

/// Bytes of the length prefix that starts every frame.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// Default limit on a frame's length (the bytes after the length prefix), 64 KiB.
pub const FRAME_SIZE_MAX_DEFAULT: usize = 64 * 1024;

/// Smallest frame-size limit a peer may configure: a HELLO plus headroom must always fit.
pub const FRAME_SIZE_MAX_MIN: usize = 256;
