//! The keys file: the users `ringline users provision` created, one `USER_ID KEY_HEX` line each, after a
//! `# ringline-keys v1` header. The engine writes it and load generators read it; this module owns the format
//! and nothing about how keys are derived (the engine's account module does that).

use crate::frame::{DeviceKey, UserId};

/// First line of every keys file.
pub const KEYS_FILE_HEADER: &str = "# ringline-keys v1";

/// One user's credentials as written in a keys file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserKey {
    pub user: UserId,
    pub key: DeviceKey,
}

/// Why a keys-file line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeysFileError {
    #[error("expected `USER_ID KEY_HEX`, found {found} fields")]
    FieldCount { found: usize },
    #[error("user id `{text}` is not a number")]
    BadUserId { text: String },
    #[error("device key must be 64 hex digits")]
    BadKey,
}

/// Parses one line of a keys file. Blank lines and `#` comments give `Ok(None)`.
pub fn parse_keys_line(line: &str) -> Result<Option<UserKey>, KeysFileError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut fields = line.split_ascii_whitespace();
    let (Some(user_text), Some(key_text), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(KeysFileError::FieldCount { found: line.split_ascii_whitespace().count() });
    };
    let user = user_text.parse::<UserId>().map_err(|_| KeysFileError::BadUserId { text: user_text.to_owned() })?;
    // Check the digits here: `u8::from_str_radix` alone would also take a `+` sign, so `+f` would pass as `0f`.
    if key_text.len() != 64 || !key_text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(KeysFileError::BadKey);
    }
    let mut key = [0u8; 32];
    for (index, byte) in key.iter_mut().enumerate() {
        let pair = key_text.get(index * 2..index * 2 + 2).ok_or(KeysFileError::BadKey)?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| KeysFileError::BadKey)?;
    }
    Ok(Some(UserKey { user, key }))
}

/// Appends one keys-file line (with its newline) for `entry` to `out`.
pub fn write_keys_line(entry: &UserKey, out: &mut String) {
    use std::fmt::Write;
    let _ = write!(out, "{} ", entry.user);
    for byte in entry.key {
        let _ = write!(out, "{byte:02x}");
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_round_trips() {
        let entry = UserKey { user: 15_550_000_001, key: std::array::from_fn(|i| i as u8 * 7) };
        let mut text = String::new();
        write_keys_line(&entry, &mut text);
        assert_eq!(parse_keys_line(&text), Ok(Some(entry)));
    }

    #[test]
    fn comments_and_blanks_are_skipped() {
        assert_eq!(parse_keys_line(KEYS_FILE_HEADER), Ok(None));
        assert_eq!(parse_keys_line("   "), Ok(None));
    }

    #[test]
    fn bad_lines_are_typed_errors() {
        assert_eq!(parse_keys_line("12"), Err(KeysFileError::FieldCount { found: 1 }));
        assert_eq!(parse_keys_line("1 2 3"), Err(KeysFileError::FieldCount { found: 3 }));
        assert!(matches!(parse_keys_line("x00 ab"), Err(KeysFileError::BadUserId { .. })));
        assert_eq!(parse_keys_line("1 abcd"), Err(KeysFileError::BadKey));
        let non_hex = format!("1 {}", "zz".repeat(32));
        assert_eq!(parse_keys_line(&non_hex), Err(KeysFileError::BadKey));
        let multibyte = format!("1 {}é", "a".repeat(62));
        assert_eq!(parse_keys_line(&multibyte), Err(KeysFileError::BadKey));
    }
}
