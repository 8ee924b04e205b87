//! Registration by PIN, decided on the phone's home core: a PIN issued and handed to the runtime to send
//! (`Output::SendPin`), the PIN verified, a new device generation handed to the runtime to make durable
//! (`Output::RecordDevice`), and only then REGISTERED and the old device revoked. The limits and PINs are
//! `crate::account::Registrar`'s; this file is the protocol around them.

use wire::{ClientFrame, GoawayReason, RegisterRefusal, ServerFrame, UserId};

use crate::account::{IssuedPin, Refusal, SourceKey};
use crate::home::home_core;

use super::connection::{ConnId, RegistrationStep, Stage};
use super::device_records::{DeviceRecord, NotTaken, RecordWaiter};
use super::{Flow, Handoff, Now, Shard};

impl Shard {
    /// REGISTER_REQUEST or REGISTER_VERIFY on a connection that has not logged in. Decided on the phone's
    /// home core (the connection moves there first); refusals keep the connection open.
    pub(super) fn handle_register(&mut self, conn: ConnId, frame: ClientFrame<'_>, now: Now) -> Flow {
        let phone = match frame {
            ClientFrame::RegisterRequest { phone } | ClientFrame::RegisterVerify { phone, .. } => phone,
            _ => return Flow::Continue,
        };
        let source = self.conns.get(conn).map_or(SourceKey::UNKNOWN, |connection| connection.source);
        if !is_phone(phone) {
            self.refuse_registration(conn, phone, Refusal { code: RegisterRefusal::PhoneInvalid, retry_after_s: 0 });
            return Flow::Continue;
        }
        let home = home_core(phone, self.config.cores);
        if home != self.id {
            let mut replay = Vec::new();
            wire::encode_client(&frame, &mut replay);
            if let Some(connection) = self.conns.get_mut(conn) {
                connection.stage = Stage::HandingOff;
            }
            let handoff = Handoff {
                to: home,
                user: phone,
                generation: 0,
                leftover: replay.into_boxed_slice(),
                registering: true,
                source,
            };
            self.handoffs.insert(conn, handoff);
            self.serve_soon(conn);
            return Flow::Stop;
        }
        match frame {
            ClientFrame::RegisterRequest { .. } => match self.registrar.request(phone, source, now.mono_us) {
                Ok(issued) => {
                    if let Some(connection) = self.conns.get_mut(conn) {
                        connection.awaiting = Some(RegistrationStep::PinHandover);
                        self.pins_to_send.push_back((conn, issued));
                    }
                }
                Err(refusal) => self.refuse_registration(conn, phone, refusal),
            },
            ClientFrame::RegisterVerify { .. } if self.device_records.is_pending(phone) => {
                // The phone's last generation is still on its way to disk: the PIN stays unused for a retry.
                self.refuse_registration(conn, phone, Refusal { code: RegisterRefusal::Unavailable, retry_after_s: 1 });
            }
            ClientFrame::RegisterVerify { pin, .. } => match self.registrar.verify(phone, pin, source, now.mono_us) {
                Ok(()) => self.register_device(conn, phone),
                Err(refusal) => self.refuse_registration(conn, phone, refusal),
            },
            _ => {}
        }
        // Stops at a REGISTER_VERIFY waiting for its record: what the client sent after it waits for the answer.
        self.paused_flow(conn)
    }

    /// The PIN was right: a new device generation for `phone`, to be made durable (`Output::RecordDevice`); the
    /// connection reads nothing more until the answer (`handle_device_recorded`).
    fn register_device(&mut self, conn: ConnId, phone: UserId) {
        // A 32-bit generation per phone. The last one cannot be followed: issuing it again would hand the new
        // device the old device's key and revoke nothing.
        let Some(generation) = self.generations.get(&phone).copied().unwrap_or(0).checked_add(1) else {
            tracing::warn!(core = %self.id, phone, "every device generation of this phone is used; registration refused");
            self.refuse_registration(conn, phone, Refusal { code: RegisterRefusal::Unavailable, retry_after_s: 3600 });
            return;
        };
        match self.device_records.try_add(DeviceRecord { phone, generation }, RecordWaiter::Registration(conn)) {
            Ok(()) => {
                if let Some(connection) = self.conns.get_mut(conn) {
                    connection.awaiting = Some(RegistrationStep::DeviceRecord);
                }
            }
            Err(NotTaken::PhoneBusy | NotTaken::Full) => {
                self.refuse_registration(conn, phone, Refusal { code: RegisterRefusal::Unavailable, retry_after_s: 1 });
            }
        }
    }

    /// The PIN sender took `issued` (`Output::SendPin`): the connection gets PIN_SENT.
    pub fn handle_pin_handed_over(&mut self, conn: ConnId, issued: IssuedPin, now: Now) {
        if self.end_wait(conn, RegistrationStep::PinHandover) {
            self.stats.pins_sent += 1;
            self.write(conn, &ServerFrame::PinSent { phone: issued.phone, expires_in_s: issued.expires_in_s });
        }
        self.after_registration_answer(conn, now);
    }

    /// The PIN sender could not take `issued` (its queue is full): REGISTER_REFUSED(Unavailable), retry in 5 s.
    pub fn handle_pin_not_handed_over(&mut self, conn: ConnId, issued: IssuedPin, now: Now) {
        if self.end_wait(conn, RegistrationStep::PinHandover) {
            let refusal = Refusal { code: RegisterRefusal::Unavailable, retry_after_s: 5 };
            self.refuse_registration(conn, issued.phone, refusal);
        }
        self.after_registration_answer(conn, now);
    }

    /// Whether `conn` is still open and was waiting for `step`'s answer; it no longer waits (it may read again).
    fn end_wait(&mut self, conn: ConnId, step: RegistrationStep) -> bool {
        match self.conns.get_mut(conn) {
            Some(connection) if connection.awaiting == Some(step) => {
                connection.awaiting = None;
                connection.stage != Stage::Closing
            }
            _ => false,
        }
    }

    /// `record` (`Output::RecordDevice`) is durable: its generation is current, every older key of the phone is
    /// revoked (a live session of the old device gets GOAWAY(Revoked)) and the registering connection gets
    /// REGISTERED. Until this answer (or the failure) the generation is not current: the old key still logs
    /// in, the new one does not.
    /// An operator's revocation (`handle_admin`) waits here too: its answer is given instead of REGISTERED.
    pub fn handle_device_recorded(&mut self, record: DeviceRecord, now: Now) {
        let Some(waiter) = self.device_records.settle(record) else { return };
        let DeviceRecord { phone, generation } = record;
        assert!(generation > self.generations.get(&phone).copied().unwrap_or(0), "device generations only increase");
        self.generations.insert(phone, generation);
        let disconnected = self.revoke_session(phone);
        let conn = match waiter {
            RecordWaiter::Registration(conn) => conn,
            RecordWaiter::Admin(ticket) => {
                self.answer_revoked(ticket, phone, generation, disconnected);
                self.run_local(now);
                return;
            }
        };
        self.stats.registrations += 1;
        if self.end_wait(conn, RegistrationStep::DeviceRecord) {
            let key = self.config.keys.derive(phone, generation);
            self.write(conn, &ServerFrame::Registered { user: phone, key });
        }
        self.after_registration_answer(conn, now);
    }

    /// `record` (`Output::RecordDevice`) could not be made durable: nothing changes for the phone (its current
    /// key goes on working) and the registering connection gets REGISTER_REFUSED(Unavailable).
    pub fn handle_device_record_failed(&mut self, record: DeviceRecord, now: Now) {
        let conn = match self.device_records.settle(record) {
            Some(RecordWaiter::Registration(conn)) => conn,
            Some(RecordWaiter::Admin(ticket)) => {
                tracing::warn!(core = %self.id, user = record.phone, "cannot record a revocation; the key stays");
                self.answer_revocation_failed(ticket, record.phone);
                return;
            }
            None => return,
        };
        tracing::warn!(core = %self.id, phone = record.phone, "cannot record a new device; registration refused");
        if self.end_wait(conn, RegistrationStep::DeviceRecord) {
            let refusal = Refusal { code: RegisterRefusal::Unavailable, retry_after_s: 30 };
            self.refuse_registration(conn, record.phone, refusal);
        }
        self.after_registration_answer(conn, now);
    }

    /// The session of `user`, if any, gets GOAWAY(Revoked): its key was just replaced. Returns whether there
    /// was one.
    fn revoke_session(&mut self, user: UserId) -> bool {
        let Some(&previous) = self.sessions.get(&user) else { return false };
        self.stats.revoked += 1;
        self.goaway(previous, GoawayReason::Revoked);
        true
    }

    /// After a registration step's answer: input held back goes on, or GOAWAY once settled during a shutdown.
    fn after_registration_answer(&mut self, conn: ConnId, now: Now) {
        if self.shutting_down {
            self.goaway_when_settled(conn);
        } else {
            self.resume(conn, now);
        }
        self.run_local(now);
    }

    fn refuse_registration(&mut self, conn: ConnId, phone: UserId, refusal: Refusal) {
        self.stats.registrations_refused += 1;
        self.write(
            conn,
            &ServerFrame::RegisterRefused { phone, code: refusal.code, retry_after_s: refusal.retry_after_s },
        );
    }
}

/// Whether `user` is in the range of phone numbers registration accepts.
fn is_phone(user: UserId) -> bool {
    (crate::account::PHONE_MIN..=crate::account::PHONE_MAX).contains(&user)
}
