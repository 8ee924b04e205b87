//! Fuzzes `wire::parse_keys_line`: no input may panic, and every line it accepts round-trips through
//! `write_keys_line` to the same entry. The written line is the canonical form, so it must also match the
//! accepted input's key field up to hex case: the format (docs/PROTOCOL.md) is 64 hex digits, nothing else.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::{parse_keys_line, write_keys_line};

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(Some(entry)) = parse_keys_line(line) else {
        return;
    };
    let mut written = String::new();
    write_keys_line(&entry, &mut written);
    assert!(written.ends_with('\n'));
    assert_eq!(parse_keys_line(&written), Ok(Some(entry)), "{written:?} does not parse back");
    // The parser trims with `str::trim` (Unicode whitespace, e.g. U+000B) before splitting on ASCII whitespace.
    let key_field_input = line.trim().split_ascii_whitespace().nth(1).expect("an accepted line has a key field");
    let key_field_written = written.split_ascii_whitespace().nth(1).expect("a written line has a key field");
    assert!(
        key_field_input.eq_ignore_ascii_case(key_field_written),
        "accepted key field {key_field_input:?} is not the hex of the key it parsed to ({key_field_written})"
    );
});
