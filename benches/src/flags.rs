//! The drivers' command lines: `--flag value` pairs in order, and values parsed with the error text every
//! driver gives. Knows no flag itself: each driver matches its own and keeps its own defaults.

use std::net::SocketAddr;
use std::str::FromStr;

/// The process's arguments as `(flag, value)` pairs, in order; a flag without a value is an error.
pub fn flag_pairs() -> Result<Vec<(String, String)>, String> {
    let mut args = std::env::args().skip(1);
    let mut pairs = Vec::new();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        pairs.push((flag, value));
    }
    Ok(pairs)
}

/// `value` of `flag` as a number.
pub fn number<T: FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("{flag} {value}: not a number"))
}

/// `value` of `flag` as a socket address.
pub fn address(flag: &str, value: &str) -> Result<SocketAddr, String> {
    value.parse().map_err(|_| format!("{flag} {value}: not HOST:PORT"))
}

/// `result`'s value, or, for an error, `tool: error` on stderr and exit status 2 (as for a bad flag): what a
/// driver does when it cannot start.
pub fn or_exit<T, E: std::fmt::Display>(tool: &str, result: Result<T, E>) -> T {
    result.unwrap_or_else(|error| {
        eprintln!("{tool}: {error}");
        std::process::exit(2)
    })
}
