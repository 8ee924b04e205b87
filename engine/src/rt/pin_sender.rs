//! Getting a one-time PIN to a phone, off the cores' threads. Owns the PIN sender kinds (`--pin-sender`):
//! `log` (development: the PIN goes to the server log), `file:PATH` (development and tests: one line
//! `PHONE PIN EXPIRES_IN_S` appended per PIN) and `command:PROGRAM` (production: runs PROGRAM with the phone
//! and the PIN as arguments and in `RINGLINE_PHONE`/`RINGLINE_PIN`, so any SMS gateway can be plugged in).
//! A core hands a PIN over with `send`, which never blocks: a bounded queue feeds one worker thread, and a
//! full queue is an explicit refusal for the client (`Unavailable`), not a wait.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use ringline_core::account::IssuedPin;
use ringline_core::limits::{PIN_COMMAND_TIMEOUT, PIN_SEND_QUEUE_MAX};

/// Which PIN sender to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinSenderKind {
    Log,
    File(PathBuf),
    Command(PathBuf),
}

impl std::str::FromStr for PinSenderKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once(':') {
            None if text == "log" => Ok(Self::Log),
            Some(("file", path)) if !path.is_empty() => Ok(Self::File(path.into())),
            Some(("command", program)) if !program.is_empty() => Ok(Self::Command(program.into())),
            _ => Err(format!("{text:?}: expected `log`, `file:PATH` or `command:PROGRAM`")),
        }
    }
}

/// Why a PIN could not be handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PinSendError {
    #[error("the PIN sender's queue is full")]
    Busy,
    #[error("the PIN sender has stopped")]
    Stopped,
}

#[derive(Debug)]
enum Route {
    Worker(SyncSender<IssuedPin>, std::thread::JoinHandle<()>),
    /// For tests: PINs kept in memory.
    Memory(Mutex<Vec<IssuedPin>>),
}

/// Hands PINs to the configured sender without blocking the caller.
#[derive(Debug)]
pub struct PinSender {
    route: Route,
}

impl PinSender {
    /// Starts the worker thread for `kind`.
    pub fn start(kind: PinSenderKind) -> std::io::Result<Self> {
        let (sender, receiver) = sync_channel(PIN_SEND_QUEUE_MAX);
        let worker =
            std::thread::Builder::new().name("ringline-pins".into()).spawn(move || run_worker(&kind, &receiver))?;
        Ok(Self { route: Route::Worker(sender, worker) })
    }

    /// A sender that keeps PINs in memory (tests and simulations).
    pub fn in_memory() -> Self {
        Self { route: Route::Memory(Mutex::new(Vec::new())) }
    }

    /// Queues `pin` for sending; never blocks.
    pub fn send(&self, pin: IssuedPin) -> Result<(), PinSendError> {
        match &self.route {
            Route::Worker(sender, _) => sender.try_send(pin).map_err(|error| match error {
                TrySendError::Full(_) => PinSendError::Busy,
                TrySendError::Disconnected(_) => PinSendError::Stopped,
            }),
            Route::Memory(pins) => {
                pins.lock().map_err(|_| PinSendError::Stopped)?.push(pin);
                Ok(())
            }
        }
    }

    /// PINs kept by an in-memory sender.
    pub fn memory_pins(&self) -> Vec<IssuedPin> {
        match &self.route {
            Route::Memory(pins) => pins.lock().map(|pins| pins.clone()).unwrap_or_default(),
            Route::Worker(..) => Vec::new(),
        }
    }

    /// Stops taking PINs and waits until the worker has handed over every queued one.
    pub fn finish(self) {
        if let Route::Worker(sender, worker) = self.route {
            drop(sender);
            let _ = worker.join();
        }
    }
}

fn run_worker(kind: &PinSenderKind, receiver: &Receiver<IssuedPin>) {
    while let Ok(pin) = receiver.recv() {
        let outcome = match kind {
            PinSenderKind::Log => {
                tracing::info!(
                    phone = pin.phone,
                    pin = format_args!("{:06}", pin.pin),
                    "registration PIN (log PIN sender)"
                );
                Ok(())
            }
            PinSenderKind::File(path) => append_line(path, &pin),
            PinSenderKind::Command(program) => run_command(program, &pin),
        };
        if let Err(error) = outcome {
            tracing::warn!(phone = pin.phone, %error, "PIN sender failed; the user can request a new PIN");
        }
    }
}

fn append_line(path: &PathBuf, pin: &IssuedPin) -> Result<(), String> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|error| format!("opening {}: {error}", path.display()))?;
    file.write_all(format!("{} {:06} {}\n", pin.phone, pin.pin, pin.expires_in_s).as_bytes())
        .map_err(|error| format!("writing {}: {error}", path.display()))
}

fn run_command(program: &PathBuf, pin: &IssuedPin) -> Result<(), String> {
    let pin_text = format!("{:06}", pin.pin);
    let mut child = Command::new(program)
        .arg(pin.phone.to_string())
        .arg(&pin_text)
        .env("RINGLINE_PHONE", pin.phone.to_string())
        .env("RINGLINE_PIN", &pin_text)
        .env("RINGLINE_PIN_EXPIRES_IN_S", pin.expires_in_s.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| format!("starting {}: {error}", program.display()))?;
    let deadline = Instant::now() + PIN_COMMAND_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{} exited with {status}", program.display())),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{} ran longer than {:?} and was killed", program.display(), PIN_COMMAND_TIMEOUT));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(error) => return Err(format!("waiting for {}: {error}", program.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_with_clear_errors() {
        assert_eq!("log".parse::<PinSenderKind>(), Ok(PinSenderKind::Log));
        assert_eq!("file:/tmp/pins".parse::<PinSenderKind>(), Ok(PinSenderKind::File("/tmp/pins".into())));
        assert_eq!("command:/bin/sms".parse::<PinSenderKind>(), Ok(PinSenderKind::Command("/bin/sms".into())));
        for bad in ["", "file:", "sms", "command:"] {
            assert!(bad.parse::<PinSenderKind>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_file_sender_appends_a_line_per_pin() {
        let path = std::env::temp_dir().join(format!("ringline-pins-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let sender = PinSender::start(PinSenderKind::File(path.clone())).expect("start");
        sender.send(IssuedPin { phone: 15_551_234_567, pin: 42, expires_in_s: 600 }).expect("queued");
        sender.finish();
        let text = std::fs::read_to_string(&path).expect("written");
        assert_eq!(text, "15551234567 000042 600\n");
        let _ = std::fs::remove_file(&path);
    }
}
