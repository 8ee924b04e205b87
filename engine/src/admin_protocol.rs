//! The control socket's language: one JSON object per line each way, a request line (`RequestLine`) and its
//! answer line (`AnswerLine`). Shared by the server's socket thread (`rt::admin`) and the `ringline admin`
//! client (`admin_client`); owns the field names (a contract for scripts) and the mapping from the core's
//! `AdminAnswer`. Does no I/O.
//!
//! Request: `{"request":"show","user":15550000001}` (`show`, `queue`, `revoke`, `kick`).
//! Answers: `{"answer":"user",...}`, `{"answer":"queue",...}`, `{"answer":"revoked",...}`,
//! `{"answer":"kicked",...}`, or `{"answer":"refused","reason":"no_such_user","message":"..."}` (the server
//! said no) and `{"answer":"error","message":"..."}` (the request could not be asked: bad line, busy,
//! timeout).

use serde::{Deserialize, Serialize};

use ringline_core::shard::{AdminAnswer, AdminRefusal, AdminRequest};
use wire::UserId;

/// One request line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case", deny_unknown_fields)]
pub enum RequestLine {
    Show { user: UserId },
    Queue { user: UserId },
    Revoke { user: UserId },
    Kick { user: UserId },
}

impl From<RequestLine> for AdminRequest {
    fn from(line: RequestLine) -> Self {
        match line {
            RequestLine::Show { user } => Self::Show(user),
            RequestLine::Queue { user } => Self::Queue(user),
            RequestLine::Revoke { user } => Self::Revoke(user),
            RequestLine::Kick { user } => Self::Kick(user),
        }
    }
}

/// One answer line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum AnswerLine {
    /// What the user's home core knows of the user, which exists (else the answer is `no_such_user`).
    User {
        user: UserId,
        /// The current device generation (0: the provisioned key).
        generation: u32,
        /// A new generation (registration or revocation) waits for its device record.
        generation_pending: bool,
        online: bool,
        /// While online: time since the session's last frame or read, in milliseconds.
        idle_ms: Option<u64>,
        queued: u64,
        unread: u64,
    },
    /// The user's offline queue.
    Queue { user: UserId, items: u64, receipts: u64, oldest_age_ms: Option<u64> },
    /// A new device generation is durable and current; nobody holds its key.
    Revoked { user: UserId, generation: u32, disconnected: bool },
    /// The session got GOAWAY(Kicked).
    Kicked { user: UserId },
    /// The server refused: `reason` is a stable code, `message` says it in words.
    Refused { reason: String, message: String },
    /// The request could not be asked or answered.
    Error { message: String },
}

impl AnswerLine {
    pub fn error(message: impl Into<String>) -> Self {
        Self::Error { message: message.into() }
    }

    /// Whether the request was done (exit code 0 for the client).
    pub fn is_ok(&self) -> bool {
        !matches!(self, Self::Refused { .. } | Self::Error { .. })
    }
}

impl From<AdminAnswer> for AnswerLine {
    fn from(answer: AdminAnswer) -> Self {
        match answer {
            AdminAnswer::Shown(shown) => Self::User {
                user: shown.user,
                generation: shown.generation,
                generation_pending: shown.generation_pending,
                online: shown.online_idle_us.is_some(),
                idle_ms: shown.online_idle_us.map(|us| us / 1000),
                queued: shown.queued as u64,
                unread: shown.unread as u64,
            },
            AdminAnswer::Queue(queue) => Self::Queue {
                user: queue.user,
                items: queue.items as u64,
                receipts: queue.receipts as u64,
                oldest_age_ms: queue.oldest_age_us.map(|us| us / 1000),
            },
            AdminAnswer::Revoked { user, generation, disconnected } => Self::Revoked { user, generation, disconnected },
            AdminAnswer::Kicked { user } => Self::Kicked { user },
            AdminAnswer::Refused(refusal) => {
                Self::Refused { reason: reason(refusal).to_owned(), message: refusal.to_string() }
            }
        }
    }
}

/// The stable code of a refusal.
fn reason(refusal: AdminRefusal) -> &'static str {
    match refusal {
        AdminRefusal::NoSuchUser(_) => "no_such_user",
        AdminRefusal::NotOnline(_) => "not_online",
        AdminRefusal::NotHome { .. } => "not_home",
        AdminRefusal::Busy => "busy",
        AdminRefusal::DeviceLogFailed(_) => "device_log_failed",
        AdminRefusal::GenerationsExhausted(_) => "generations_exhausted",
        _ => "refused",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_parse_and_unknown_fields_or_requests_do_not() {
        let line: RequestLine = serde_json::from_str(r#"{"request":"kick","user":15550000001}"#).expect("a request");
        assert_eq!(AdminRequest::from(line), AdminRequest::Kick(15_550_000_001));
        for bad in [r#"{"request":"drop","user":1}"#, r#"{"request":"show","user":1,"x":2}"#, r#"{"user":1}"#, "junk"] {
            assert!(serde_json::from_str::<RequestLine>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_round_trip_and_refusals_are_not_ok() {
        let refused = AnswerLine::from(AdminAnswer::Refused(AdminRefusal::NoSuchUser(5)));
        assert!(!refused.is_ok());
        let text = serde_json::to_string(&refused).expect("json");
        assert!(text.contains(r#""answer":"refused","reason":"no_such_user""#), "{text}");
        assert_eq!(serde_json::from_str::<AnswerLine>(&text).expect("parse"), refused);
        assert!(AnswerLine::from(AdminAnswer::Kicked { user: 5 }).is_ok());
    }
}
