//! The group header: the record that opens every write of the log (one write is one group commit), saying which
//! writer wrote it, the sequence number of its first record, how many records follow and how many bytes they
//! take, and a CRC32C of those bytes. Owns that layout and the check that a group is whole; reading a segment
//! group by group is `replay`'s.
//!
//! Layout (a record of kind 6, so `decode_record` refuses it as an unknown kind and an old reader stops there):
//! `len u32 | crc32c u32 | 6 u8 | log_id u64 | first_lsn u64 | records u32 | records_bytes u32 | records_crc u32`.
//! The records follow at once; zero padding fills the write's last page.
//!
//! Invariants: a group is whole exactly when its header's checksum and its records' checksum match; a whole
//! group's records decode one after another to exactly `records_bytes` bytes and `records` records.
//! `log_id` is a random number per writer, never sent to clients: a group found after damage is trusted only
//! if it carries the log id of the groups before the damage, so bytes a client chose (a message body holding
//! a forged header at a page boundary) are never taken for a group.

use super::record::{KIND_GROUP, RECORD_HEADER_BYTES, RecordError};

/// Bytes of a group header, framing included.
pub const GROUP_HEADER_BYTES: usize = RECORD_HEADER_BYTES + GROUP_BODY_BYTES;

/// Kind byte and fields.
const GROUP_BODY_BYTES: usize = 1 + 8 + 8 + 4 + 4 + 4;

/// What a group header says about the records after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupHeader {
    /// The writer's random id: the same in every group one writer wrote.
    pub log_id: u64,
    /// Sequence number of the group's first record; the next record of the same writer is `first_lsn + records`.
    pub first_lsn: u64,
    pub records: u32,
    /// Bytes of the records after the header (padding excluded).
    pub records_bytes: u32,
    /// CRC32C of those bytes.
    pub records_crc: u32,
}

impl GroupHeader {
    /// The header of a group of `records` records whose bytes are `record_bytes`.
    pub fn of(log_id: u64, first_lsn: u64, records: u32, record_bytes: &[u8]) -> Self {
        let records_bytes = u32::try_from(record_bytes.len()).expect("a group is far under 4 GiB");
        Self { log_id, first_lsn, records, records_bytes, records_crc: crc32c::crc32c(record_bytes) }
    }

    /// Sequence number of the record after this group's last.
    pub fn next_lsn(&self) -> u64 {
        self.first_lsn.saturating_add(u64::from(self.records))
    }

    /// Bytes of header and records (padding excluded).
    pub fn data_bytes(&self) -> usize {
        GROUP_HEADER_BYTES + self.records_bytes as usize
    }

    /// Writes the header, `GROUP_HEADER_BYTES` long, to `out`.
    pub fn encode(&self, out: &mut [u8; GROUP_HEADER_BYTES]) {
        let body = &mut out[RECORD_HEADER_BYTES..];
        body[0] = KIND_GROUP;
        body[1..9].copy_from_slice(&self.log_id.to_le_bytes());
        body[9..17].copy_from_slice(&self.first_lsn.to_le_bytes());
        body[17..21].copy_from_slice(&self.records.to_le_bytes());
        body[21..25].copy_from_slice(&self.records_bytes.to_le_bytes());
        body[25..29].copy_from_slice(&self.records_crc.to_le_bytes());
        let crc = crc32c::crc32c(&out[RECORD_HEADER_BYTES..]);
        out[..4].copy_from_slice(&(GROUP_BODY_BYTES as u32).to_le_bytes());
        out[4..8].copy_from_slice(&crc.to_le_bytes());
    }

    /// The group header at the start of `bytes`, checked by its own checksum (not yet the records').
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let Some(header) = bytes.first_chunk::<GROUP_HEADER_BYTES>() else {
            return Err(RecordError::TornHeader { available: bytes.len() });
        };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let stored = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let body = &header[RECORD_HEADER_BYTES..];
        if len != GROUP_BODY_BYTES || body[0] != KIND_GROUP {
            return Err(RecordError::NotAGroup { len, kind: body[0] });
        }
        let computed = crc32c::crc32c(body);
        if computed != stored {
            return Err(RecordError::Checksum { stored, computed });
        }
        let word = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().unwrap_or([0; 8]));
        let half = |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().unwrap_or([0; 4]));
        Ok(Self {
            log_id: word(1),
            first_lsn: word(9),
            records: half(17),
            records_bytes: half(21),
            records_crc: half(25),
        })
    }

    /// Whether `bytes`, starting at this header, hold all of the group's records with their checksum.
    pub fn check_records(&self, bytes: &[u8]) -> Result<(), RecordError> {
        let records_bytes = self.records_bytes as usize;
        let Some(records) = bytes.get(GROUP_HEADER_BYTES..GROUP_HEADER_BYTES + records_bytes) else {
            return Err(RecordError::TornGroup {
                records_bytes,
                available: bytes.len().saturating_sub(GROUP_HEADER_BYTES),
            });
        };
        let computed = crc32c::crc32c(records);
        if computed != self.records_crc {
            return Err(RecordError::GroupChecksum { stored: self.records_crc, computed });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_round_trips_and_checks_its_records() {
        let records = b"some record bytes";
        let header = GroupHeader::of(0xDEAD_BEEF, 42, 3, records);
        let mut bytes = vec![0; GROUP_HEADER_BYTES];
        header.encode((&mut bytes[..]).try_into().expect("header size"));
        bytes.extend_from_slice(records);
        assert_eq!(GroupHeader::decode(&bytes), Ok(header));
        assert_eq!(header.check_records(&bytes), Ok(()));
        assert_eq!((header.next_lsn(), header.data_bytes()), (45, GROUP_HEADER_BYTES + records.len()));
        assert!(matches!(header.check_records(&bytes[..bytes.len() - 1]), Err(RecordError::TornGroup { .. })));
        for index in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[index] ^= 0x04;
            let whole = GroupHeader::decode(&flipped).and_then(|header| header.check_records(&flipped));
            assert!(whole.is_err(), "bit flipped in byte {index}");
        }
        assert!(matches!(GroupHeader::decode(&[0; GROUP_HEADER_BYTES]), Err(RecordError::NotAGroup { .. })));
        assert!(matches!(GroupHeader::decode(&bytes[..10]), Err(RecordError::TornHeader { available: 10 })));
    }
}
