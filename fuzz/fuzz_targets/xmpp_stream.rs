//! Fuzzes the load generator's XMPP inbound parser (`loadgen::client::xmpp::stream::StreamParser`), which reads
//! whatever a foreign server sends. The first input byte picks a chunk size (1..=256 bytes); the rest is the
//! server's stream, fed once whole and once in chunks of that size, as TCP may cut it.
//!
//! Checked: nothing panics; after every accepted chunk the parser holds at most `STANZA_BYTES_MAX` bytes; and
//! when both feedings accept everything, they produce the same items in the same order (where TCP cuts a
//! stream must not change what the client reads).

#![no_main]

use libfuzzer_sys::fuzz_target;
use loadgen::client::xmpp::stream::{STANZA_BYTES_MAX, StreamItem, StreamParser};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk_byte, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk_byte) + 1;

    let mut whole = StreamParser::default();
    let mut whole_items = Vec::new();
    let whole_ok = whole.handle_input(stream, &mut whole_items).is_ok();
    if whole_ok {
        assert!(whole.buffered() <= STANZA_BYTES_MAX);
    }

    let mut chunked = StreamParser::default();
    let mut chunked_items: Vec<StreamItem> = Vec::new();
    let mut chunked_ok = true;
    for piece in stream.chunks(chunk) {
        if chunked.handle_input(piece, &mut chunked_items).is_err() {
            chunked_ok = false;
            break;
        }
        assert!(chunked.buffered() <= STANZA_BYTES_MAX);
    }

    if whole_ok && chunked_ok {
        assert_eq!(whole_items, chunked_items, "items depend on where the stream was cut (chunks of {chunk})");
        assert_eq!(whole.buffered(), chunked.buffered(), "the same unfinished tail");
    }
});
