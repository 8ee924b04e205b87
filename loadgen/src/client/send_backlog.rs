//! The messages one client connection has scheduled and not yet written, each numbered when scheduled with the
//! client_msg_id by which the server deduplicates retries. Every chat driver (native, XMPP) holds one, bounded by
//! `SEND_BACKLOG_MAX`. It writes nothing and does not track what the server has acked: the drivers do both.

use std::collections::VecDeque;

use super::body::MessageBody;
use super::driver::{OutgoingMessage, SendRefused};
use crate::limits::SEND_BACKLOG_MAX;

/// Scheduled messages in schedule order, and the id the next one gets.
#[derive(Debug)]
pub struct SendBacklog {
    next_client_msg_id: u64,
    /// At most SEND_BACKLOG_MAX.
    messages: VecDeque<OutgoingMessage>,
}

impl SendBacklog {
    /// `client_msg_id_base` makes ids unique across runs (the server deduplicates them for minutes).
    pub fn new(client_msg_id_base: u64) -> Self {
        Self { next_client_msg_id: client_msg_id_base, messages: VecDeque::new() }
    }

    /// Numbers a message and keeps it last; refused, and not numbered, when SEND_BACKLOG_MAX are waiting.
    pub fn push(&mut self, body: MessageBody) -> Result<OutgoingMessage, SendRefused> {
        if self.messages.len() >= SEND_BACKLOG_MAX {
            return Err(SendRefused::BacklogFull);
        }
        let message = OutgoingMessage { client_msg_id: self.next_client_msg_id, body };
        self.next_client_msg_id += 1;
        self.messages.push_back(message);
        Ok(message)
    }

    /// The oldest message, to be written now.
    pub fn pop_front(&mut self) -> Option<OutgoingMessage> {
        self.messages.pop_front()
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Empties the backlog, oldest first (the run is over).
    pub fn drain(&mut self) -> impl Iterator<Item = OutgoingMessage> + '_ {
        self.messages.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(seq: u64) -> MessageBody {
        MessageBody { run_id: 9, sender: 1, recipient: 2, pair_seq: seq, scheduled_us: 10 }
    }

    #[test]
    fn ids_count_up_from_the_base_in_schedule_order() {
        let mut backlog = SendBacklog::new(500);
        assert_eq!(backlog.push(body(0)).map(|m| m.client_msg_id), Ok(500));
        assert_eq!(backlog.push(body(1)).map(|m| m.client_msg_id), Ok(501));
        assert_eq!(backlog.pop_front().map(|m| (m.client_msg_id, m.body.pair_seq)), Some((500, 0)));
        assert_eq!(backlog.drain().map(|m| m.client_msg_id).collect::<Vec<_>>(), vec![501]);
        assert_eq!(backlog.len(), 0);
    }

    #[test]
    fn a_full_backlog_refuses_without_using_an_id() {
        let mut backlog = SendBacklog::new(0);
        for seq in 0..SEND_BACKLOG_MAX as u64 {
            backlog.push(body(seq)).expect("room");
        }
        assert_eq!(backlog.push(body(0)), Err(SendRefused::BacklogFull));
        assert_eq!(backlog.len(), SEND_BACKLOG_MAX);
        backlog.pop_front();
        assert_eq!(backlog.push(body(0)).map(|m| m.client_msg_id), Ok(SEND_BACKLOG_MAX as u64));
    }
}
