//! Log records: `len u32 | crc32c u32 | kind u8 | payload`, little-endian, where `len` counts kind and payload
//! and the CRC covers them too. Owns the byte layout of every record kind and nothing else.

use wire::{ReceiptKind, UserId};

/// Bytes before the kind byte: length and checksum.
pub const RECORD_HEADER_BYTES: usize = 8;

const KIND_MESSAGE: u8 = 1;
const KIND_RECEIPT: u8 = 2;
const KIND_REMOVED: u8 = 3;
const KIND_GENERATION: u8 = 4;
const KIND_SEQUENCE: u8 = 5;
const KIND_SENT: u8 = 7;
/// A group header (`wal::group`): framed as a record, but no change to state; `decode_record` refuses it.
pub(super) const KIND_GROUP: u8 = 6;

/// One change to a core's durable state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogRecord {
    /// A message stored in `to`'s queue. `sender`/`client_msg_id` rebuild SEND dedup after a crash.
    Message { item_id: u64, to: UserId, sender: UserId, client_msg_id: u64, time_us: u64, body: Box<[u8]> },
    /// A receipt queued for `to` about message `server_id` it sent to `peer`.
    Receipt { item_id: u64, to: UserId, server_id: u64, peer: UserId, kind: ReceiptKind, time_us: u64 },
    /// `user`'s item `item_id` left the queue (acknowledged or expired).
    Removed { user: UserId, item_id: u64 },
    /// `user`'s device generation changed (a new device was registered; older keys are revoked).
    Generation { user: UserId, generation: u32 },
    /// Item ids below `item_seq_next` (in their low 48 bits) may have been handed out: after recovery no core
    /// issues them again, even when compaction dropped every record that carried them.
    Sequence { item_seq_next: u64 },
    /// `sender`'s SEND `client_msg_id` was stored as `server_id` at `time_us`, its item perhaps gone since:
    /// keeps the SEND dedup memory across more than one restart (recovery writes one per remembered SEND
    /// into segment 0, whose items hold only what is still queued). `fingerprint` is the message's
    /// `send_fingerprint` (recipient and body), so a reuse of the id for another message is still told apart.
    Sent { sender: UserId, client_msg_id: u64, server_id: u64, time_us: u64, fingerprint: u64 },
}

impl LogRecord {
    /// Bytes `encode_record` writes for this record.
    pub fn encoded_len(&self) -> usize {
        let payload = match self {
            Self::Message { body, .. } => 40 + body.len(),
            Self::Receipt { .. } => 41,
            Self::Removed { .. } => 16,
            Self::Generation { .. } => 12,
            Self::Sequence { .. } => 8,
            Self::Sent { .. } => 40,
        };
        RECORD_HEADER_BYTES + 1 + payload
    }
}

/// Why bytes are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error("record header cut off: {available} of {RECORD_HEADER_BYTES} bytes")]
    TornHeader { available: usize },
    #[error("record of {len} bytes cut off at {available}")]
    TornBody { len: usize, available: usize },
    #[error("record of {len} bytes is over the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("record checksum {stored:08x} does not match its bytes ({computed:08x})")]
    Checksum { stored: u32, computed: u32 },
    #[error("record kind {kind} is unknown")]
    UnknownKind { kind: u8 },
    #[error("record kind {kind} has {len} payload bytes, which does not fit its fields")]
    BadLength { kind: u8, len: usize },
    #[error("no group header where a write starts: a record of {len} bytes and kind {kind}")]
    NotAGroup { len: usize, kind: u8 },
    #[error("group of {records_bytes} record bytes cut off at {available}")]
    TornGroup { records_bytes: usize, available: usize },
    #[error("group checksum {stored:08x} does not match its records' bytes ({computed:08x})")]
    GroupChecksum { stored: u32, computed: u32 },
    #[error("group says {expected} records in its bytes, which hold {found} or are not records")]
    GroupRecords { expected: u32, found: u32 },
}

/// Appends `record` to `out`; returns the bytes written.
pub fn encode_record(record: &LogRecord, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER_BYTES]);
    match record {
        LogRecord::Message { item_id, to, sender, client_msg_id, time_us, body } => {
            out.push(KIND_MESSAGE);
            for value in [item_id, to, sender, client_msg_id, time_us] {
                out.extend_from_slice(&value.to_le_bytes());
            }
            out.extend_from_slice(body);
        }
        LogRecord::Receipt { item_id, to, server_id, peer, kind, time_us } => {
            out.push(KIND_RECEIPT);
            for value in [item_id, to, server_id, peer] {
                out.extend_from_slice(&value.to_le_bytes());
            }
            out.push(kind.to_wire());
            out.extend_from_slice(&time_us.to_le_bytes());
        }
        LogRecord::Removed { user, item_id } => {
            out.push(KIND_REMOVED);
            out.extend_from_slice(&user.to_le_bytes());
            out.extend_from_slice(&item_id.to_le_bytes());
        }
        LogRecord::Generation { user, generation } => {
            out.push(KIND_GENERATION);
            out.extend_from_slice(&user.to_le_bytes());
            out.extend_from_slice(&generation.to_le_bytes());
        }
        LogRecord::Sequence { item_seq_next } => {
            out.push(KIND_SEQUENCE);
            out.extend_from_slice(&item_seq_next.to_le_bytes());
        }
        LogRecord::Sent { sender, client_msg_id, server_id, time_us, fingerprint } => {
            out.push(KIND_SENT);
            for value in [sender, client_msg_id, server_id, time_us, fingerprint] {
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
    }
    let body = &out[start + RECORD_HEADER_BYTES..];
    let len = u32::try_from(body.len()).expect("records are built from frames far under 4 GiB");
    let crc = crc32c::crc32c(body);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(out.len() - start, record.encoded_len());
    debug_assert_eq!(decode_record(&out[start..], usize::MAX).ok().flatten().as_ref().map(|(r, _)| r), Some(record));
    out.len() - start
}

/// The record at the start of `bytes` and its total length; `Ok(None)` for zero padding (end of data).
pub fn decode_record(bytes: &[u8], record_size_max: usize) -> Result<Option<(LogRecord, usize)>, RecordError> {
    let Some(header) = bytes.first_chunk::<RECORD_HEADER_BYTES>() else {
        if bytes.iter().all(|&byte| byte == 0) {
            return Ok(None);
        }
        return Err(RecordError::TornHeader { available: bytes.len() });
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let stored = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 && stored == 0 {
        return Ok(None);
    }
    if len > record_size_max {
        return Err(RecordError::TooLarge { len, max: record_size_max });
    }
    let Some(body) = bytes.get(RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + len) else {
        return Err(RecordError::TornBody { len, available: bytes.len() - RECORD_HEADER_BYTES });
    };
    let computed = crc32c::crc32c(body);
    if computed != stored {
        return Err(RecordError::Checksum { stored, computed });
    }
    let Some((&kind, payload)) = body.split_first() else {
        return Err(RecordError::BadLength { kind: 0, len: 0 });
    };
    let bad_length = || RecordError::BadLength { kind, len: payload.len() };
    let word = |index: usize| -> Result<u64, RecordError> {
        payload
            .get(index * 8..index * 8 + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .ok_or_else(bad_length)
    };
    let record = match kind {
        KIND_MESSAGE => {
            if payload.len() < 40 {
                return Err(bad_length());
            }
            LogRecord::Message {
                item_id: word(0)?,
                to: word(1)?,
                sender: word(2)?,
                client_msg_id: word(3)?,
                time_us: word(4)?,
                body: payload[40..].into(),
            }
        }
        KIND_RECEIPT => {
            if payload.len() != 41 {
                return Err(bad_length());
            }
            LogRecord::Receipt {
                item_id: word(0)?,
                to: word(1)?,
                server_id: word(2)?,
                peer: word(3)?,
                kind: ReceiptKind::from_wire(payload[32]),
                time_us: u64::from_le_bytes(payload[33..41].try_into().map_err(|_| bad_length())?),
            }
        }
        KIND_REMOVED => {
            if payload.len() != 16 {
                return Err(bad_length());
            }
            LogRecord::Removed { user: word(0)?, item_id: word(1)? }
        }
        KIND_GENERATION => {
            if payload.len() != 12 {
                return Err(bad_length());
            }
            let generation = u32::from_le_bytes(payload[8..12].try_into().map_err(|_| bad_length())?);
            LogRecord::Generation { user: word(0)?, generation }
        }
        KIND_SEQUENCE => {
            if payload.len() != 8 {
                return Err(bad_length());
            }
            LogRecord::Sequence { item_seq_next: word(0)? }
        }
        KIND_SENT => {
            if payload.len() != 40 {
                return Err(bad_length());
            }
            LogRecord::Sent {
                sender: word(0)?,
                client_msg_id: word(1)?,
                server_id: word(2)?,
                time_us: word(3)?,
                fingerprint: word(4)?,
            }
        }
        other => return Err(RecordError::UnknownKind { kind: other }),
    };
    Ok(Some((record, RECORD_HEADER_BYTES + len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn samples() -> Vec<LogRecord> {
        vec![
            LogRecord::Message {
                item_id: 1,
                to: 2,
                sender: 3,
                client_msg_id: 4,
                time_us: 5,
                body: b"hello".to_vec().into(),
            },
            LogRecord::Message { item_id: 6, to: 2, sender: 3, client_msg_id: 7, time_us: 8, body: Box::default() },
            LogRecord::Receipt { item_id: 9, to: 3, server_id: 1, peer: 2, kind: ReceiptKind::Delivered, time_us: 10 },
            LogRecord::Removed { user: 2, item_id: 1 },
            LogRecord::Generation { user: 2, generation: 3 },
            LogRecord::Sequence { item_seq_next: 11 },
            LogRecord::Sent { sender: 3, client_msg_id: 4, server_id: 1, time_us: 5, fingerprint: 6 },
        ]
    }

    #[test]
    fn every_kind_round_trips() {
        for record in samples() {
            let mut bytes = Vec::new();
            let len = encode_record(&record, &mut bytes);
            assert_eq!(len, record.encoded_len());
            assert_eq!(decode_record(&bytes, 1 << 20), Ok(Some((record, len))));
        }
    }

    #[test]
    fn zero_padding_ends_the_data() {
        assert_eq!(decode_record(&[0; 100], 1 << 20), Ok(None));
        assert_eq!(decode_record(&[0; 3], 1 << 20), Ok(None));
        assert_eq!(decode_record(&[], 1 << 20), Ok(None));
    }

    #[test]
    fn torn_and_corrupt_records_are_errors() {
        let mut bytes = Vec::new();
        encode_record(&samples()[0], &mut bytes);
        for cut in 1..bytes.len() {
            assert!(decode_record(&bytes[..cut], 1 << 20).is_err(), "cut at {cut}");
        }
        for index in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[index] ^= 0x10;
            assert!(decode_record(&flipped, 1 << 20).is_err(), "bit flipped in byte {index}");
        }
        assert!(matches!(decode_record(&bytes, 10), Err(RecordError::TooLarge { .. })));
    }
}
