//! Login: HELLO checked against the user's current device key, the connection moved to the user's home core,
//! the session made (a newer login replaces the older with GOAWAY) and ended. Registration is
//! `registration.rs`'s.

use wire::{ClientFrame, ErrorCode, GoawayReason, ServerFrame, UserId};

use crate::account::SourceKey;
use crate::home::home_core;

use super::connection::{ConnId, Stage};
use super::{Flow, Handoff, Now, Shard};

impl Shard {
    pub(super) fn handle_hello(&mut self, conn: ConnId, frame: ClientFrame<'_>, now: Now) -> Flow {
        let ClientFrame::Hello { version, user, key } = frame else {
            self.fail(conn, ErrorCode::UnexpectedFrame, "the first frame must be HELLO");
            return Flow::Stop;
        };
        if version != wire::PROTOCOL_VERSION {
            self.fail(conn, ErrorCode::UnsupportedVersion, "this server speaks protocol version 1");
            return Flow::Stop;
        }
        // A key's MAC proves the server issued it: generation 0 to provisioned users, later generations by
        // registration. Whether the generation is still current is the home core's to say (`activate`).
        let Some(generation) = self
            .config
            .keys
            .verify(user, &key)
            .filter(|&generation| generation > 0 || self.config.directory.contains(user))
        else {
            self.fail(conn, ErrorCode::AuthFailed, "unknown user or wrong device key");
            return Flow::Stop;
        };
        let home = home_core(user, self.config.cores);
        if home == self.id {
            return self.activate(conn, user, generation, now);
        }
        if let Some(connection) = self.conns.get_mut(conn) {
            connection.stage = Stage::HandingOff;
        }
        let source = self.conns.get(conn).map_or(SourceKey::UNKNOWN, |connection| connection.source);
        self.handoffs
            .insert(conn, Handoff { to: home, user, generation, leftover: Box::default(), registering: false, source });
        self.serve_soon(conn);
        Flow::Stop
    }

    /// Makes `conn` the session of `user` on this, the user's home core.
    pub(super) fn activate(&mut self, conn: ConnId, user: UserId, generation: u32, now: Now) -> Flow {
        debug_assert_eq!(home_core(user, self.config.cores), self.id);
        if generation != self.generations.get(&user).copied().unwrap_or(0) {
            self.fail(conn, ErrorCode::AuthFailed, "this device key was revoked");
            return Flow::Stop;
        }
        if self.shutting_down {
            self.goaway(conn, GoawayReason::ShuttingDown);
            return Flow::Stop;
        }
        if let Some(previous) = self.sessions.insert(user, conn)
            && previous != conn
        {
            // The session already points at `conn`, so closing the old one does not end it.
            self.stats.replaced += 1;
            self.goaway(previous, GoawayReason::Replaced);
        }
        let Some(connection) = self.conns.get_mut(conn) else { return Flow::Stop };
        connection.stage = Stage::Active { user };
        connection.last_frame_us = now.mono_us;
        self.stats.logins += 1;
        self.queue.rewind(user);
        let queued = u32::try_from(self.queue.len(user)).unwrap_or(u32::MAX);
        self.write(
            conn,
            &ServerFrame::Welcome { version: wire::PROTOCOL_VERSION, server_time_us: now.wall_us, queued },
        );
        self.fill_deliveries(user);
        Flow::Continue
    }

    /// `conn` no longer serves `user`: items written to it and not acknowledged go out again next time.
    pub(super) fn end_session(&mut self, user: UserId, conn: ConnId) {
        if self.sessions.get(&user) == Some(&conn) {
            self.sessions.remove(&user);
            self.queue.rewind(user);
        }
    }

    /// Whether `user` exists: provisioned, or registered on this, its home core.
    pub(super) fn user_exists(&self, user: UserId) -> bool {
        self.config.directory.contains(user) || self.generations.contains_key(&user)
    }
}
