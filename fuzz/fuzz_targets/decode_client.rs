//! Fuzzes `wire::decode_client` the way the server drives it: one stream of bytes, decoded frame after frame,
//! with the checks of `common/decode_stream.rs` (limit byte first; consumed within the input and the limit;
//! re-encoding with `encode_client` is canonical; a frame decodes alone the same; `Incomplete` asks for no more
//! than one frame; errors map to a code and a message; no input may panic).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common/decode_stream.rs"]
mod decode_stream;
use decode_stream::check_stream;

fuzz_target!(|data: &[u8]| check_stream(data, wire::decode_client, wire::encode_client));
