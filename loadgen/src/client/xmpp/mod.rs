//! XMPP client-to-server (RFC 6120/6121) for `--protocol xmpp`, so ejabberd, prosody and other XMPP servers can
//! be loaded with the same agents, schedule and ledger as ringline. `stream.rs` turns inbound bytes into
//! elements (quick-xml, bounded); `session.rs` is one connection's state machine behind `ChatDriver`. This file
//! owns how loadgen user ids map to JIDs and back, and the XMPP users file.
//!
//! Users: the ledger and the contact graph know users by u64 id, so every JID is `{prefix}{id}@{domain}` with one
//! prefix and one domain per run (`user17@localhost`: prefix `user`, id 17). A delivery's sender and a receipt's
//! peer are read back from the `from` JID the same way. Invariant: `user_of_jid(realm.jid(id)) == Some(id)`.

pub mod session;
pub mod stream;

use std::io::BufRead;

pub use session::XmppSession;

/// Longest password accepted from a users file or the command line (SASL PLAIN carries it in one element).
pub const PASSWORD_BYTES_MAX: usize = 1024;

/// The JID namespace of a run: `{user_prefix}{id}@{domain}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct XmppRealm {
    pub user_prefix: String,
    pub domain: String,
}

impl XmppRealm {
    /// The bare JID of user `id`.
    pub fn jid(&self, id: u64) -> String {
        format!("{}{id}@{}", self.user_prefix, self.domain)
    }

    /// The localpart of user `id` (what SASL PLAIN authenticates as).
    pub fn localpart(&self, id: u64) -> String {
        format!("{}{id}", self.user_prefix)
    }

    /// The user id of a (bare or full) JID of this realm; `None` for any other JID.
    pub fn user_of_jid(&self, jid: &str) -> Option<u64> {
        let bare = jid.split('/').next().unwrap_or(jid);
        let (local, domain) = bare.split_once('@')?;
        if !domain.eq_ignore_ascii_case(&self.domain) {
            return None;
        }
        let digits = local.strip_prefix(self.user_prefix.as_str())?;
        if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }
}

/// Why an XMPP users file or flag is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsersError {
    #[error("line {line}: expected `JID PASSWORD`")]
    Shape { line: usize },
    #[error("line {line}: `{jid}` is not `{{prefix}}{{digits}}@{{domain}}`")]
    Jid { line: usize, jid: String },
    #[error("line {line}: `{jid}` is not in the realm `{prefix}N@{domain}` of the file's first user")]
    OtherRealm { line: usize, jid: String, prefix: String, domain: String },
    #[error("line {line}: password over {PASSWORD_BYTES_MAX} bytes")]
    PasswordTooLong { line: usize },
    #[error("line {line}: reading failed: {detail}")]
    Read { line: usize, detail: String },
}

/// One XMPP account to log in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmppUser {
    pub id: u64,
    pub password: String,
}

/// Splits `user17@localhost` into (`user`, 17, `localhost`): the prefix is the localpart less its trailing digits.
pub fn split_jid(jid: &str) -> Option<(String, u64, String)> {
    let (local, domain) = jid.split_once('@')?;
    if domain.is_empty() || domain.contains('/') {
        return None;
    }
    let digits_at = local.rfind(|c: char| !c.is_ascii_digit()).map_or(0, |at| at + 1);
    let id = local[digits_at..].parse().ok()?;
    Some((local[..digits_at].to_owned(), id, domain.to_owned()))
}

/// Reads up to `wanted` users from `JID PASSWORD` lines (blank lines and `#` comments skipped). Every JID must
/// share the first one's prefix and domain, which are returned as the realm.
pub fn read_users(input: impl BufRead, wanted: u64) -> Result<(XmppRealm, Vec<XmppUser>), UsersError> {
    let mut realm: Option<XmppRealm> = None;
    let mut users = Vec::new();
    for (index, line) in input.lines().enumerate() {
        let number = index + 1;
        if users.len() as u64 >= wanted {
            break;
        }
        let line = line.map_err(|error| UsersError::Read { line: number, detail: error.to_string() })?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(jid), Some(password), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(UsersError::Shape { line: number });
        };
        if password.len() > PASSWORD_BYTES_MAX {
            return Err(UsersError::PasswordTooLong { line: number });
        }
        let Some((prefix, id, domain)) = split_jid(jid) else {
            return Err(UsersError::Jid { line: number, jid: jid.to_owned() });
        };
        match &realm {
            None => realm = Some(XmppRealm { user_prefix: prefix, domain }),
            Some(known) if known.user_prefix == prefix && known.domain == domain => {}
            Some(known) => {
                return Err(UsersError::OtherRealm {
                    line: number,
                    jid: jid.to_owned(),
                    prefix: known.user_prefix.clone(),
                    domain: known.domain.clone(),
                });
            }
        }
        users.push(XmppUser { id, password: password.to_owned() });
    }
    let realm = realm.unwrap_or(XmppRealm { user_prefix: "user".into(), domain: "localhost".into() });
    Ok((realm, users))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jids_round_trip() {
        let realm = XmppRealm { user_prefix: "user".into(), domain: "localhost".into() };
        assert_eq!(realm.jid(17), "user17@localhost");
        assert_eq!(realm.user_of_jid("user17@localhost/lg"), Some(17));
        assert_eq!(realm.user_of_jid("user17@LOCALHOST"), Some(17));
        assert_eq!(realm.user_of_jid("user@localhost"), None);
        assert_eq!(realm.user_of_jid("bot17@localhost"), None);
        assert_eq!(realm.user_of_jid("user17@elsewhere"), None);
        assert_eq!(realm.user_of_jid("localhost"), None);
        assert_eq!(realm.user_of_jid("user99999999999999999999999@localhost"), None);
    }

    #[test]
    fn users_file_reads_and_refuses_clearly() {
        let text = "# users\nuser1@localhost secret\n\nuser2@localhost other\nuser3@localhost x\n";
        let (realm, users) = read_users(text.as_bytes(), 2).expect("valid");
        assert_eq!(realm, XmppRealm { user_prefix: "user".into(), domain: "localhost".into() });
        assert_eq!(
            users,
            vec![XmppUser { id: 1, password: "secret".into() }, XmppUser { id: 2, password: "other".into() }]
        );
        assert_eq!(read_users("user1@localhost".as_bytes(), 5), Err(UsersError::Shape { line: 1 }));
        assert_eq!(
            read_users("alice@localhost pw".as_bytes(), 5),
            Err(UsersError::Jid { line: 1, jid: "alice@localhost".into() })
        );
        assert!(matches!(
            read_users("user1@localhost a\nbot2@localhost b".as_bytes(), 5),
            Err(UsersError::OtherRealm { line: 2, .. })
        ));
    }
}
