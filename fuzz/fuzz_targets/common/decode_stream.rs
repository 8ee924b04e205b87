//! The check both decode targets run, once for either direction: the input as one stream of bytes, decoded
//! frame after frame the way a receiver drives the codec. The first input byte picks a small frame-size limit
//! (0..=1020 bytes) so the limit check is hit as often as the layouts are; the rest is the stream.
//!
//! Checked for every decoded frame: `consumed` lies within the input and under the limit, re-encoding the frame
//! gives exactly the consumed bytes (the codec is canonical), and decoding only those bytes gives the same frame
//! (the decoder never reads past a frame). For `Incomplete`: `needed` is positive and never asks for more than
//! one frame under the limit. Every error maps to a code and a message. Included by each decode target with
//! `#[path]`; it panics on a failed check (that is how libFuzzer learns of it) and owns no state.

use std::fmt::Debug;

use wire::{DecodeError, Decoded, LENGTH_PREFIX_BYTES};

/// Frame-size limit step per unit of the first input byte.
const FRAME_SIZE_MAX_STEP: usize = 4;

/// Decodes `data` (limit byte, then the stream) with `decode`, re-encodes with `encode`, and panics on the
/// first failed check.
pub fn check_stream<'a, F: Debug + PartialEq>(
    data: &'a [u8],
    decode: fn(&'a [u8], usize) -> Result<Decoded<F>, DecodeError>,
    encode: fn(&F, &mut Vec<u8>) -> usize,
) {
    let Some((&limit_byte, stream)) = data.split_first() else {
        return;
    };
    let frame_size_max = usize::from(limit_byte) * FRAME_SIZE_MAX_STEP;
    let mut encoded = Vec::new();
    let mut at = 0;
    while at <= stream.len() {
        let rest = &stream[at..];
        match decode(rest, frame_size_max) {
            Ok(Decoded::Frame { frame, consumed }) => {
                assert!(consumed > LENGTH_PREFIX_BYTES, "a frame holds a prefix and a kind byte");
                assert!(consumed <= rest.len(), "consumed {consumed} of {} bytes", rest.len());
                assert!(consumed - LENGTH_PREFIX_BYTES <= frame_size_max, "frame over the limit");
                encoded.clear();
                let written = encode(&frame, &mut encoded);
                assert_eq!(written, encoded.len());
                assert_eq!(encoded.as_slice(), &rest[..consumed], "re-encoding {frame:?} is not canonical");
                assert_eq!(
                    decode(&rest[..consumed], frame_size_max),
                    Ok(Decoded::Frame { frame, consumed }),
                    "decoding the frame alone differs"
                );
                at += consumed;
            }
            Ok(Decoded::Incomplete { needed }) => {
                assert!(needed > 0);
                assert!(rest.len() + needed <= LENGTH_PREFIX_BYTES + frame_size_max, "needs past the limit");
                break;
            }
            Err(error) => {
                let _ = error.error_code();
                let _ = error.to_string();
                break;
            }
        }
    }
}
