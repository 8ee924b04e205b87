//! Operators' requests about one user (`ringline admin users show|queue|revoke|kick ID`), decided on the
//! user's home core: what the shard knows of the user (exists, device generation, online, queued and unread
//! items), its offline queue (length, oldest item's age), a revocation (a new device generation nobody is
//! given, made durable through the device log like registration's, before the live session gets
//! GOAWAY(Revoked) and the old key stops logging in), a kick (GOAWAY(Kicked); the key keeps working).
//!
//! An input (`handle_admin`) and an output (`Output::AdminAnswer`): every request is answered exactly once,
//! at once, or for a revocation once the runtime reported its device record durable or failed
//! (`handle_device_recorded`, `handle_device_record_failed`). Owns the answers not yet taken and the count of
//! requests in flight, bounded by `ADMIN_REQUESTS_PENDING_MAX` (past it: `AdminRefusal::Busy`). Does not
//! read sockets or parse the control socket's lines (the engine's `rt/admin.rs`), and decides nothing about
//! who may ask (the socket's file permissions do).

use std::collections::VecDeque;

use wire::{GoawayReason, UserId};

use crate::home::{ShardId, home_core};
use crate::limits::ADMIN_REQUESTS_PENDING_MAX;

use super::device_records::{DeviceRecord, NotTaken, RecordWaiter};
use super::{Now, Shard};

/// The runtime's name for one admin request; the answer carries it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AdminTicket(pub u64);

/// What an operator asks about a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRequest {
    /// What this core knows of the user.
    Show(UserId),
    /// The user's offline queue.
    Queue(UserId),
    /// A new device generation: the live session ends (GOAWAY(Revoked)) and the current key is refused.
    Revoke(UserId),
    /// The live session ends (GOAWAY(Kicked)); the key keeps working.
    Kick(UserId),
}

impl AdminRequest {
    /// The user the request is about (its home core answers it).
    pub fn user(self) -> UserId {
        match self {
            Self::Show(user) | Self::Queue(user) | Self::Revoke(user) | Self::Kick(user) => user,
        }
    }
}

/// What the home core knows of a user that exists (provisioned, or registered on this core; for any other
/// id the answer is `AdminRefusal::NoSuchUser`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserShown {
    pub user: UserId,
    /// The current device generation (0: the provisioned key).
    pub generation: u32,
    /// A revocation or registration of the user waits for its device record.
    pub generation_pending: bool,
    /// Time since the live session's last frame or read, if the user has a session on this core.
    pub online_idle_us: Option<u64>,
    /// Items (messages and receipts) in the offline queue, written or not.
    pub queued: usize,
    /// Delivered messages not READ yet (what a READ may name).
    pub unread: usize,
}

/// A user's offline queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueShown {
    pub user: UserId,
    pub items: usize,
    pub receipts: usize,
    /// Age of the oldest item by the server's wall clock, if any waits.
    pub oldest_age_us: Option<u64>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdminRefusal {
    /// Neither provisioned nor registered.
    #[error("user {0} does not exist")]
    NoSuchUser(UserId),
    /// Kick: the user has no session.
    #[error("user {0} is not online")]
    NotOnline(UserId),
    /// The request reached a core that is not the user's home (a runtime bug).
    #[error("user {user} lives on core {home}, not here")]
    NotHome { user: UserId, home: ShardId },
    /// Too many requests in flight, or the user's last generation is still on its way to disk: retry.
    #[error("busy: retry in a moment")]
    Busy,
    /// The device log could not make the revocation durable: nothing changed, the key still works.
    #[error("the device log failed; user {0} was not revoked")]
    DeviceLogFailed(UserId),
    /// Every device generation of the user is used.
    #[error("user {0} has used every device generation")]
    GenerationsExhausted(UserId),
}

/// The answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAnswer {
    Shown(UserShown),
    Queue(QueueShown),
    /// The new generation is durable and current; `disconnected` says whether a live session got GOAWAY.
    Revoked {
        user: UserId,
        generation: u32,
        disconnected: bool,
    },
    /// The live session got GOAWAY(Kicked).
    Kicked {
        user: UserId,
    },
    Refused(AdminRefusal),
}

/// Answers not yet given to the runtime, and how many revocations wait for their device record.
#[derive(Debug, Default)]
pub(super) struct AdminAnswers {
    ready: VecDeque<(AdminTicket, AdminAnswer)>,
    revocations_pending: usize,
}

impl AdminAnswers {
    fn in_flight(&self) -> usize {
        self.ready.len() + self.revocations_pending
    }

    /// Queues an answer. Requests past the bound are answered `Busy` without counting, so the queue stays
    /// within the bound plus the refusals of one drive (the runtime takes every answer after each input).
    fn push(&mut self, ticket: AdminTicket, answer: AdminAnswer) {
        self.ready.push_back((ticket, answer));
        debug_assert!(self.ready.len() <= 2 * ADMIN_REQUESTS_PENDING_MAX, "the runtime takes answers each drive");
    }

    /// The next answer for the runtime (`Output::AdminAnswer`).
    pub(super) fn next(&mut self) -> Option<(AdminTicket, AdminAnswer)> {
        self.ready.pop_front()
    }
}

impl Shard {
    /// An operator's request, on the user's home core. Answered through `Output::AdminAnswer` with the same
    /// ticket: at once, or for `Revoke` once its device record is durable (`handle_device_recorded`) or
    /// failed (`handle_device_record_failed`).
    pub fn handle_admin(&mut self, ticket: AdminTicket, request: AdminRequest, now: Now) {
        if let Some(answer) = self.decide_admin(ticket, request, now) {
            self.admin.push(ticket, answer);
        }
        self.run_local(now);
    }

    /// The answer now, or `None` when it waits for a device record.
    fn decide_admin(&mut self, ticket: AdminTicket, request: AdminRequest, now: Now) -> Option<AdminAnswer> {
        let user = request.user();
        let home = home_core(user, self.config.cores);
        if home != self.id {
            return Some(AdminAnswer::Refused(AdminRefusal::NotHome { user, home }));
        }
        if self.admin.in_flight() >= ADMIN_REQUESTS_PENDING_MAX {
            return Some(AdminAnswer::Refused(AdminRefusal::Busy));
        }
        if !self.user_exists(user) {
            return Some(AdminAnswer::Refused(AdminRefusal::NoSuchUser(user)));
        }
        Some(match request {
            AdminRequest::Show(_) => AdminAnswer::Shown(self.show_user(user, now)),
            AdminRequest::Queue(_) => AdminAnswer::Queue(QueueShown {
                user,
                items: self.queue.len(user),
                receipts: self.queue.receipts(user),
                oldest_age_us: self.queue.oldest_time_us(user).map(|time_us| now.wall_us.saturating_sub(time_us)),
            }),
            AdminRequest::Kick(_) => match self.sessions.get(&user) {
                Some(&conn) => {
                    self.goaway(conn, GoawayReason::Kicked);
                    AdminAnswer::Kicked { user }
                }
                None => AdminAnswer::Refused(AdminRefusal::NotOnline(user)),
            },
            AdminRequest::Revoke(_) => return self.revoke(ticket, user).err().map(AdminAnswer::Refused),
        })
    }

    fn show_user(&self, user: UserId, now: Now) -> UserShown {
        let session = self.sessions.get(&user).and_then(|&conn| self.conns.get(conn));
        UserShown {
            user,
            generation: self.generations.get(&user).copied().unwrap_or(0),
            generation_pending: self.device_records.is_pending(user),
            online_idle_us: session.map(|connection| now.mono_us.saturating_sub(connection.last_progress_us())),
            queued: self.queue.len(user),
            unread: self.unread.count(user),
        }
    }

    /// A new generation for `user`, handed to the runtime to make durable (`Output::RecordDevice`); nothing
    /// changes before it is.
    fn revoke(&mut self, ticket: AdminTicket, user: UserId) -> Result<(), AdminRefusal> {
        let generation = self
            .generations
            .get(&user)
            .copied()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or(AdminRefusal::GenerationsExhausted(user))?;
        match self.device_records.try_add(DeviceRecord { phone: user, generation }, RecordWaiter::Admin(ticket)) {
            Ok(()) => {
                self.admin.revocations_pending += 1;
                Ok(())
            }
            Err(NotTaken::PhoneBusy | NotTaken::Full) => Err(AdminRefusal::Busy),
        }
    }

    /// A revocation's record is durable and its generation current (`handle_device_recorded` did that).
    pub(super) fn answer_revoked(&mut self, ticket: AdminTicket, user: UserId, generation: u32, disconnected: bool) {
        self.admin.revocations_pending -= 1;
        self.admin.push(ticket, AdminAnswer::Revoked { user, generation, disconnected });
    }

    /// A revocation's record could not be made durable: nothing changed.
    pub(super) fn answer_revocation_failed(&mut self, ticket: AdminTicket, user: UserId) {
        self.admin.revocations_pending -= 1;
        self.admin.push(ticket, AdminAnswer::Refused(AdminRefusal::DeviceLogFailed(user)));
    }
}
