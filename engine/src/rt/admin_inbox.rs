//! A core's end of the control socket: the admin requests the socket thread (`rt::admin`) sent to this core,
//! the user's home core, taken on the core's tick and handed to the shard (`Shard::handle_admin`), and the
//! reply channels of the requests not answered yet, used when the shard gives the answer
//! (`Output::AdminAnswer`, through `CoreEffects::answer_admin`).
//!
//! Bounded: the channel holds `ADMIN_CHANNEL_CAPACITY` requests (the socket thread answers "busy" past it),
//! the reply channels at most what the shard holds (`ADMIN_REQUESTS_PENDING_MAX`), each removed when
//! answered. Replying never waits: a requester that gave up (timed out) simply misses the answer.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};

use ringline_core::limits::ADMIN_CHANNEL_CAPACITY;
use ringline_core::shard::{AdminAnswer, AdminRequest, AdminTicket, Now, Shard};

/// One request on its way to a core, with where its answer goes.
#[derive(Debug)]
pub struct AdminCall {
    pub ticket: AdminTicket,
    pub request: AdminRequest,
    /// Room for the one answer.
    pub reply: SyncSender<AdminAnswer>,
}

/// One core's admin requests: the channel from the socket thread and the replies owed.
#[derive(Debug)]
pub struct AdminInbox {
    calls: Receiver<AdminCall>,
    replies: RefCell<HashMap<AdminTicket, SyncSender<AdminAnswer>>>,
}

impl AdminInbox {
    pub fn new(calls: Receiver<AdminCall>) -> Self {
        Self { calls, replies: RefCell::new(HashMap::new()) }
    }

    /// Hands the requests waiting in the channel to the shard (at most a channel's worth per call). The
    /// caller drives the shard afterwards, which gives the answers ready now.
    pub fn take_calls(&self, shard: &mut Shard, now: Now) {
        for _ in 0..ADMIN_CHANNEL_CAPACITY {
            let call = match self.calls.try_recv() {
                Ok(call) => call,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            };
            self.replies.borrow_mut().insert(call.ticket, call.reply);
            shard.handle_admin(call.ticket, call.request, now);
        }
    }

    /// The shard answered `ticket`: the answer goes to its requester, if it still waits.
    pub fn answer(&self, ticket: AdminTicket, answer: AdminAnswer) {
        match self.replies.borrow_mut().remove(&ticket) {
            // A full or closed reply channel: the requester timed out and went away.
            Some(reply) => drop(reply.try_send(answer)),
            None => tracing::warn!(?ticket, "an admin answer for no request"),
        }
    }
}
