//! The files a run reads before anything starts: the native keys file (`--users`, or the spawned engines'),
//! the XMPP users file, and the PEM certificates to trust (`--ca`, or the spawned engines' dev certificate).
//! Each read is bounded by what was asked for (users) or by a limit (certificates), and every failure names
//! the file. It decides nothing about the run.

use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{Context, bail};
use wire::{UserKey, parse_keys_line};

use loadgen::client::xmpp::{XmppRealm, XmppUser, read_users};
use loadgen::limits::TLS_ROOTS_PEM_BYTES_MAX;

/// The first `wanted` users of a native keys file (`USER KEYHEX` lines); fewer is an error.
pub(super) fn load_users(path: &Path, wanted: u64) -> anyhow::Result<Vec<UserKey>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening the keys file {}", path.display()))?;
    let mut users = Vec::new();
    for (number, line) in BufReader::new(file).lines().enumerate() {
        if users.len() as u64 >= wanted {
            break;
        }
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        match parse_keys_line(&line) {
            Ok(Some(user)) => users.push(user),
            Ok(None) => {}
            Err(error) => bail!("{}:{}: {error}", path.display(), number + 1),
        }
    }
    anyhow::ensure!(
        users.len() as u64 >= wanted,
        "{} holds {} users, fewer than the {wanted} connections asked for",
        path.display(),
        users.len()
    );
    Ok(users)
}

/// The first `wanted` users of an XMPP users file (`JID PASSWORD` lines) and their realm; fewer is an error.
pub(super) fn load_xmpp_users(path: &Path, wanted: u64) -> anyhow::Result<(XmppRealm, Vec<XmppUser>)> {
    let file = std::fs::File::open(path).with_context(|| format!("opening the XMPP users file {}", path.display()))?;
    let (realm, users) = read_users(BufReader::new(file), wanted).with_context(|| format!("{}", path.display()))?;
    anyhow::ensure!(
        users.len() as u64 >= wanted,
        "{} holds {} users, fewer than the {wanted} connections asked for",
        path.display(),
        users.len()
    );
    Ok((realm, users))
}

/// A user's key as the plan carries it (lowercase hex).
pub(super) fn key_hex(key: &[u8; 32]) -> String {
    key.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The PEM text of a trusted certificates file, bounded.
pub(super) fn read_roots(path: &Path) -> anyhow::Result<String> {
    let file =
        std::fs::File::open(path).with_context(|| format!("opening the certificates file {}", path.display()))?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(file, TLS_ROOTS_PEM_BYTES_MAX as u64 + 1), &mut text)
        .with_context(|| format!("reading the certificates file {} (PEM text)", path.display()))?;
    anyhow::ensure!(
        text.len() <= TLS_ROOTS_PEM_BYTES_MAX,
        "the certificates file {} is over {TLS_ROOTS_PEM_BYTES_MAX} bytes",
        path.display()
    );
    Ok(text)
}
