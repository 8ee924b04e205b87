//! The body of a loadgen message: what a recipient's agent needs to check a delivery on its own, without asking
//! the sender's agent. It carries the run id (so messages left in the server by an earlier run are recognised),
//! the sender and recipient, the per-pair sequence number (order and duplicates) and the scheduled send time in
//! µs since the Unix epoch (latency, corrected for coordinated omission). Owns the byte layout only.

use wire::UserId;

/// First bytes of every loadgen body.
pub const BODY_MAGIC: [u8; 4] = *b"RLG1";

/// Bytes of the fixed part of a body: magic, run id, sender, recipient, pair sequence, scheduled time.
pub const BODY_HEADER_BYTES: usize = 4 + 8 * 5;

/// What a loadgen message says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageBody {
    /// Random per run: a delivery with another run's id is stale, not this run's business.
    pub run_id: u64,
    pub sender: UserId,
    pub recipient: UserId,
    /// 1, 2, 3, … per (sender, recipient) pair, in schedule order.
    pub pair_seq: u64,
    /// When the open-loop schedule wanted this message sent (µs since the epoch, CLOCK_REALTIME).
    pub scheduled_us: u64,
}

/// Why a delivered body is not a loadgen body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    #[error("body of {len} bytes is shorter than the {BODY_HEADER_BYTES}-byte loadgen header")]
    Short { len: usize },
    #[error("body does not start with the loadgen magic")]
    BadMagic,
    /// A text protocol's body (XMPP carries it in base64) did not decode to bytes.
    #[error("body text is not valid base64")]
    Encoding,
}

impl MessageBody {
    /// Appends the body, padded with zeros to `body_bytes` (at least the header), to `out`.
    pub fn encode(&self, body_bytes: usize, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&BODY_MAGIC);
        for field in [self.run_id, self.sender, self.recipient, self.pair_seq, self.scheduled_us] {
            out.extend_from_slice(&field.to_le_bytes());
        }
        let padded_len = body_bytes.max(BODY_HEADER_BYTES);
        out.resize(start + padded_len, 0);
    }

    /// Reads a body; padding after the header is ignored.
    pub fn decode(bytes: &[u8]) -> Result<Self, BodyError> {
        let Some(header) = bytes.first_chunk::<BODY_HEADER_BYTES>() else {
            return Err(BodyError::Short { len: bytes.len() });
        };
        if header[..4] != BODY_MAGIC {
            return Err(BodyError::BadMagic);
        }
        let field = |index: usize| {
            let at = 4 + index * 8;
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&header[at..at + 8]);
            u64::from_le_bytes(raw)
        };
        Ok(Self { run_id: field(0), sender: field(1), recipient: field(2), pair_seq: field(3), scheduled_us: field(4) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_round_trips_with_padding() {
        let body = MessageBody { run_id: 7, sender: 15_550_000_001, recipient: 2, pair_seq: 3, scheduled_us: 99 };
        let mut out = Vec::new();
        body.encode(100, &mut out);
        assert_eq!(out.len(), 100);
        assert_eq!(MessageBody::decode(&out), Ok(body));
        out.clear();
        body.encode(0, &mut out);
        assert_eq!(out.len(), BODY_HEADER_BYTES);
    }

    #[test]
    fn foreign_bodies_are_typed_errors() {
        assert_eq!(MessageBody::decode(b"hi"), Err(BodyError::Short { len: 2 }));
        assert_eq!(MessageBody::decode(&[0u8; 60]), Err(BodyError::BadMagic));
    }
}
