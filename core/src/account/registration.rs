//! Registration by one-time PIN, sans-IO: which PINs are pending, how many attempts and requests each phone
//! and each source address has left, and when they expire. Owns the decisions only; it does not send PINs
//! (`pin_sender.rs` does), issue device keys (`KeyAuthority` does) or store generations (`device_log.rs`
//! does). One `Registrar` lives on each core and holds the phones whose home is that core, so a phone's
//! attempts are counted in one place. Every map here is bounded; past a bound the answer is an explicit
//! refusal (`Unavailable`), never growth.

use std::collections::HashMap;
use std::net::IpAddr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wire::{RegisterRefusal, UserId};

/// Limits of one core's registrar. Defaults in `crate::limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationLimits {
    /// How long a PIN stays valid.
    pub pin_ttl_us: u64,
    /// Wrong PINs one pending PIN survives; the next wrong one voids it.
    pub pin_attempts_max: u8,
    /// PIN requests one phone may make per window.
    pub requests_per_phone_max: u8,
    /// Registration requests plus wrong PINs one source address may make per window.
    pub source_actions_max: u32,
    /// The window of the per-phone and per-source counts.
    pub window_us: u64,
    /// Phones with a pending PIN or a request count on one core.
    pub phones_max: usize,
    /// Source addresses tracked on one core.
    pub sources_max: usize,
}

impl RegistrationLimits {
    /// The engine's limits (`crate::limits`) with PINs valid for `pin_ttl_us`.
    pub fn standard(pin_ttl_us: u64) -> Self {
        use crate::limits;
        Self {
            pin_ttl_us,
            pin_attempts_max: limits::PIN_ATTEMPTS_MAX,
            requests_per_phone_max: limits::PIN_REQUESTS_PER_PHONE_MAX,
            source_actions_max: limits::REGISTRATION_SOURCE_ACTIONS_MAX,
            window_us: limits::REGISTRATION_WINDOW.as_micros() as u64,
            phones_max: limits::REGISTRATION_PHONES_PER_SHARD_MAX,
            sources_max: limits::REGISTRATION_SOURCES_PER_SHARD_MAX,
        }
    }
}

/// A refusal with the time after which trying again makes sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub code: RegisterRefusal,
    pub retry_after_s: u32,
}

impl Refusal {
    fn now(code: RegisterRefusal) -> Self {
        Self { code, retry_after_s: 0 }
    }

    fn after(code: RegisterRefusal, wait_us: u64) -> Self {
        Self { code, retry_after_s: u32::try_from(wait_us.div_ceil(1_000_000)).unwrap_or(u32::MAX) }
    }
}

/// A PIN to hand to the PIN sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuedPin {
    pub phone: UserId,
    pub pin: u32,
    pub expires_in_s: u32,
}

/// A source address folded to 32 bits: IPv4 as is, IPv6 by its /64 network (one host owns a /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceKey(pub u32);

impl SourceKey {
    /// Connections whose source is not known (tests, Unix sockets) share one key.
    pub const UNKNOWN: Self = Self(0);

    pub fn from_ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(u32::from(v4)),
                None => {
                    let net = u128::from(v6) >> 64;
                    // Fold the /64 into 32 bits; collisions only merge two networks' counts.
                    Self((net as u32) ^ ((net >> 32) as u32) ^ 0x8000_0000)
                }
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct PhoneState {
    /// The pending PIN, if any, and when it expires.
    pin: Option<(u32, u64)>,
    /// Wrong attempts against the pending PIN.
    wrong: u8,
    /// PIN requests in the current window and when the window started.
    requests: u8,
    window_start_us: u64,
}

#[derive(Debug, Clone, Copy)]
struct SourceState {
    actions: u32,
    window_start_us: u64,
}

impl SourceState {
    /// The refusal for a source that used up its actions in the current window, if it has.
    fn limited(&self, limits: &RegistrationLimits, now_us: u64) -> Option<Refusal> {
        let window_end_us = self.window_start_us + limits.window_us;
        (now_us < window_end_us && self.actions >= limits.source_actions_max)
            .then(|| Refusal::after(RegisterRefusal::SourceLimited, window_end_us - now_us))
    }
}

/// One core's registration state.
#[derive(Debug)]
pub struct Registrar {
    limits: RegistrationLimits,
    phones: HashMap<UserId, PhoneState>,
    sources: HashMap<SourceKey, SourceState>,
    rng: StdRng,
    last_sweep_us: u64,
}

/// How often `tick` sweeps: a sweep walks every tracked phone and source.
const SWEEP_INTERVAL_US: u64 = 60_000_000;

/// The smallest and largest phone number taken as a user id: E.164 has at most 15 digits; 7 is the shortest
/// national number in use with its country code.
pub const PHONE_MIN: UserId = 1_000_000;
pub const PHONE_MAX: UserId = 999_999_999_999_999;

impl Registrar {
    /// `seed` makes PINs reproducible in tests; the engine seeds from the OS.
    pub fn new(limits: RegistrationLimits, seed: u64) -> Self {
        Self {
            limits,
            phones: HashMap::new(),
            sources: HashMap::new(),
            rng: StdRng::seed_from_u64(seed),
            last_sweep_us: 0,
        }
    }

    /// REGISTER_REQUEST: a new PIN for `phone`, replacing any pending one.
    pub fn request(&mut self, phone: UserId, source: SourceKey, now_us: u64) -> Result<IssuedPin, Refusal> {
        if !(PHONE_MIN..=PHONE_MAX).contains(&phone) {
            return Err(Refusal::now(RegisterRefusal::PhoneInvalid));
        }
        self.charge_source(source, now_us)?;
        let limits = self.limits;
        if !self.phones.contains_key(&phone) && self.phones.len() >= limits.phones_max {
            self.sweep(now_us);
            if self.phones.len() >= limits.phones_max {
                return Err(Refusal::after(RegisterRefusal::Unavailable, limits.window_us / 60));
            }
        }
        let state = self.phones.entry(phone).or_insert(PhoneState {
            pin: None,
            wrong: 0,
            requests: 0,
            window_start_us: now_us,
        });
        if now_us.saturating_sub(state.window_start_us) >= limits.window_us {
            state.requests = 0;
            state.window_start_us = now_us;
        }
        if state.requests >= limits.requests_per_phone_max {
            let wait = (state.window_start_us + limits.window_us).saturating_sub(now_us);
            return Err(Refusal::after(RegisterRefusal::TooManyRequests, wait));
        }
        state.requests += 1;
        let pin = self.rng.gen_range(0..1_000_000);
        state.pin = Some((pin, now_us + limits.pin_ttl_us));
        state.wrong = 0;
        let expires_in_s = u32::try_from(limits.pin_ttl_us / 1_000_000).unwrap_or(u32::MAX);
        Ok(IssuedPin { phone, pin, expires_in_s })
    }

    /// REGISTER_VERIFY: `Ok` when `pin` is the pending PIN of `phone`; the PIN is used up either way it ends.
    pub fn verify(&mut self, phone: UserId, pin: u32, source: SourceKey, now_us: u64) -> Result<(), Refusal> {
        if !(PHONE_MIN..=PHONE_MAX).contains(&phone) {
            return Err(Refusal::now(RegisterRefusal::PhoneInvalid));
        }
        if let Some(refusal) = self.sources.get(&source).and_then(|state| state.limited(&self.limits, now_us)) {
            return Err(refusal);
        }
        let Some(state) = self.phones.get_mut(&phone) else {
            return Err(Refusal::now(RegisterRefusal::PinExpired));
        };
        let Some((expected, expires_us)) = state.pin else {
            return Err(Refusal::now(RegisterRefusal::PinExpired));
        };
        if now_us >= expires_us {
            state.pin = None;
            return Err(Refusal::now(RegisterRefusal::PinExpired));
        }
        if pin == expected {
            state.pin = None;
            state.wrong = 0;
            return Ok(());
        }
        state.wrong += 1;
        let void = state.wrong > self.limits.pin_attempts_max;
        if void {
            state.pin = None;
        }
        // A wrong PIN costs the source too, so guessing across many phones is bounded per address.
        self.charge_source(source, now_us)?;
        if void {
            Err(Refusal::now(RegisterRefusal::TooManyAttempts))
        } else {
            Err(Refusal::now(RegisterRefusal::PinWrong))
        }
    }

    /// Sweeps at most once a minute; call on every timer tick.
    pub fn tick(&mut self, now_us: u64) {
        if now_us.saturating_sub(self.last_sweep_us) >= SWEEP_INTERVAL_US {
            self.last_sweep_us = now_us;
            self.sweep(now_us);
        }
    }

    /// Forgets phones and sources whose window ended and whose PIN (if any) expired. Call now and then.
    pub fn sweep(&mut self, now_us: u64) {
        let window = self.limits.window_us;
        self.phones.retain(|_, state| {
            let pin_live = state.pin.is_some_and(|(_, expires)| now_us < expires);
            pin_live || now_us.saturating_sub(state.window_start_us) < window
        });
        self.sources.retain(|_, state| now_us.saturating_sub(state.window_start_us) < window);
    }

    /// Phones and sources tracked, for metrics and tests.
    pub fn tracked(&self) -> (usize, usize) {
        (self.phones.len(), self.sources.len())
    }

    fn charge_source(&mut self, source: SourceKey, now_us: u64) -> Result<(), Refusal> {
        let limits = self.limits;
        if !self.sources.contains_key(&source) && self.sources.len() >= limits.sources_max {
            self.sweep(now_us);
            if self.sources.len() >= limits.sources_max {
                return Err(Refusal::after(RegisterRefusal::Unavailable, limits.window_us / 60));
            }
        }
        let state = self.sources.entry(source).or_insert(SourceState { actions: 0, window_start_us: now_us });
        if now_us.saturating_sub(state.window_start_us) >= limits.window_us {
            state.actions = 0;
            state.window_start_us = now_us;
        }
        if let Some(refusal) = state.limited(&limits, now_us) {
            return Err(refusal);
        }
        state.actions += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHONE: UserId = 15_551_234_567;
    const SRC: SourceKey = SourceKey(0x7f00_0001);
    const SECOND: u64 = 1_000_000;

    fn limits() -> RegistrationLimits {
        RegistrationLimits {
            pin_ttl_us: 600 * SECOND,
            pin_attempts_max: 2,
            requests_per_phone_max: 3,
            source_actions_max: 10,
            window_us: 3600 * SECOND,
            phones_max: 4,
            sources_max: 4,
        }
    }

    #[test]
    fn the_right_pin_verifies_once() {
        let mut registrar = Registrar::new(limits(), 1);
        let issued = registrar.request(PHONE, SRC, 0).expect("issued");
        assert!(issued.pin < 1_000_000);
        assert_eq!(issued.expires_in_s, 600);
        assert_eq!(registrar.verify(PHONE, issued.pin, SRC, SECOND), Ok(()));
        let again = registrar.verify(PHONE, issued.pin, SRC, 2 * SECOND).expect_err("used up");
        assert_eq!(again.code, RegisterRefusal::PinExpired);
    }

    #[test]
    fn wrong_pins_are_counted_then_the_pin_is_void() {
        let mut registrar = Registrar::new(limits(), 2);
        let issued = registrar.request(PHONE, SRC, 0).expect("issued");
        let wrong = (issued.pin + 1) % 1_000_000;
        assert_eq!(registrar.verify(PHONE, wrong, SRC, 1).expect_err("wrong").code, RegisterRefusal::PinWrong);
        assert_eq!(registrar.verify(PHONE, wrong, SRC, 2).expect_err("wrong").code, RegisterRefusal::PinWrong);
        assert_eq!(registrar.verify(PHONE, wrong, SRC, 3).expect_err("void").code, RegisterRefusal::TooManyAttempts);
        // Even the right PIN is refused now: the attacker's guesses voided it.
        assert_eq!(registrar.verify(PHONE, issued.pin, SRC, 4).expect_err("void").code, RegisterRefusal::PinExpired);
    }

    #[test]
    fn pins_expire() {
        let mut registrar = Registrar::new(limits(), 3);
        let issued = registrar.request(PHONE, SRC, 0).expect("issued");
        let late = registrar.verify(PHONE, issued.pin, SRC, 600 * SECOND).expect_err("expired");
        assert_eq!(late.code, RegisterRefusal::PinExpired);
    }

    #[test]
    fn requests_per_phone_are_limited_per_window_with_a_retry_time() {
        let mut registrar = Registrar::new(limits(), 4);
        for i in 0..3 {
            registrar.request(PHONE, SourceKey(i + 1), i as u64).expect("within limit");
        }
        let refused = registrar.request(PHONE, SourceKey(9), 100 * SECOND).expect_err("limited");
        assert_eq!(refused.code, RegisterRefusal::TooManyRequests);
        assert_eq!(refused.retry_after_s, 3500);
        registrar.request(PHONE, SourceKey(9), 3600 * SECOND).expect("a new window");
    }

    #[test]
    fn a_source_guessing_across_phones_is_limited() {
        let mut registrar = Registrar::new(RegistrationLimits { phones_max: 100, ..limits() }, 5);
        let mut refused = None;
        for i in 0..20u64 {
            let phone = PHONE + i;
            match registrar
                .request(phone, SRC, i)
                .and_then(|issued| registrar.verify(phone, (issued.pin + 1) % 1_000_000, SRC, i))
            {
                Err(refusal) if refusal.code == RegisterRefusal::SourceLimited => {
                    refused = Some(i);
                    break;
                }
                Err(refusal) => assert_eq!(refusal.code, RegisterRefusal::PinWrong),
                Ok(()) => panic!("a wrong PIN verified"),
            }
        }
        // 10 actions per window: 5 requests and 5 wrong PINs.
        assert_eq!(refused, Some(5));
    }

    #[test]
    fn bad_phone_numbers_are_refused() {
        let mut registrar = Registrar::new(limits(), 6);
        for phone in [0, 999_999, PHONE_MAX + 1, u64::MAX] {
            assert_eq!(registrar.request(phone, SRC, 0).expect_err("bad").code, RegisterRefusal::PhoneInvalid);
            assert_eq!(registrar.verify(phone, 1, SRC, 0).expect_err("bad").code, RegisterRefusal::PhoneInvalid);
        }
    }

    #[test]
    fn tracked_phones_are_bounded_and_swept() {
        let mut registrar = Registrar::new(RegistrationLimits { source_actions_max: 100, ..limits() }, 7);
        for i in 0..4 {
            registrar.request(PHONE + i, SRC, 0).expect("room");
        }
        let full = registrar.request(PHONE + 10, SRC, 0).expect_err("full");
        assert_eq!(full.code, RegisterRefusal::Unavailable);
        // After the window and the PIN lifetime, the sweep makes room.
        registrar.request(PHONE + 10, SRC, 3600 * SECOND).expect("swept");
        assert_eq!(registrar.tracked().0, 1);
    }

    #[test]
    fn source_keys_fold_ipv6_networks() {
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2::ffff".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(SourceKey::from_ip(a), SourceKey::from_ip(b));
        assert_ne!(SourceKey::from_ip(a), SourceKey::from_ip(c));
        let v4: IpAddr = "127.0.0.1".parse().expect("ip");
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("ip");
        assert_eq!(SourceKey::from_ip(v4), SourceKey::from_ip(mapped));
    }
}
