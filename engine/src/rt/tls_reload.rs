//! The certificate the engine serves, and reloading it without a restart. One `TlsCertificates` per process
//! holds the current rustls settings, built from the PEM files, with a generation number. A reload reads the
//! files again and builds new settings around the same session resumption state (tickets issued before still
//! resume), then bumps the generation; each core takes the new settings on its next tick, for new handshakes
//! only: established connections keep the keys they have. A bad file keeps the old certificate in place and
//! says so in one line.
//!
//! The reload thread (`ringline-tls-reload`, a plain std thread, never a core) reloads on SIGHUP, and, every
//! `--tls-cert-check-interval`, when the files changed (size, time or inode) and then stayed the same for one
//! more interval, so a rotation that writes the two files one after the other is read once both are done.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustls::ServerConfig;

use crate::config::TlsSettings;
use ringline_core::limits::TLS_RELOAD_SIGNAL_POLL;
use ringline_core::tls::{Resumption, TlsSetupError, server_config};

use super::metrics::MetricsHub;

/// The process's TLS certificate and settings.
pub struct TlsCertificates {
    cert: PathBuf,
    key: PathBuf,
    resumption: Resumption,
    /// What the files looked like just before `load` read them: the reload thread starts watching from
    /// here, so a change made after loading but before the thread first runs is not missed.
    loaded_stamps: [Option<FileStamp>; 2],
    /// The settings for new handshakes and their generation.
    current: Mutex<(u64, Arc<ServerConfig>)>,
    /// Same generation, read by the cores every tick without the lock.
    generation: AtomicU64,
    hub: Arc<MetricsHub>,
}

impl std::fmt::Debug for TlsCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsCertificates")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl TlsCertificates {
    /// Loads the certificate and key of `settings`; an unusable pair is an error (the engine does not start).
    pub fn load(settings: &TlsSettings, hub: Arc<MetricsHub>) -> Result<Self, TlsSetupError> {
        let loaded_stamps = [FileStamp::of(&settings.cert), FileStamp::of(&settings.key)];
        let identity = crate::tls_files::load_identity(&settings.cert, &settings.key)?;
        let resumption = Resumption::new()?;
        let config = server_config(&identity, &resumption)?;
        tracing::info!(cert = %settings.cert.display(), "serving TLS with certificate sha256 {}", identity.fingerprint());
        Ok(Self {
            cert: settings.cert.clone(),
            key: settings.key.clone(),
            resumption,
            loaded_stamps,
            current: Mutex::new((0, config)),
            generation: AtomicU64::new(0),
            hub,
        })
    }

    /// The generation of the current settings (bumped by each successful reload).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current settings and their generation.
    pub fn current(&self) -> (u64, Arc<ServerConfig>) {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        (current.0, current.1.clone())
    }

    /// Reads the files again and, if they make a usable pair, serves them to new handshakes. Logs one line
    /// either way and counts the outcome. Returns whether it reloaded.
    pub fn reload(&self, cause: &str) -> bool {
        let loaded = crate::tls_files::load_identity(&self.cert, &self.key)
            .and_then(|identity| Ok((server_config(&identity, &self.resumption)?, identity)));
        match loaded {
            Ok((config, identity)) => {
                let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
                let generation = current.0 + 1;
                *current = (generation, config);
                self.generation.store(generation, Ordering::Release);
                drop(current);
                self.hub.tls_cert_reloads_ok.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    cause,
                    generation,
                    "TLS certificate reloaded ({cause}): new handshakes get sha256 {}",
                    identity.fingerprint()
                );
                true
            }
            Err(error) => {
                self.hub.tls_cert_reloads_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    cause,
                    "TLS certificate reload ({cause}) failed, still serving the previous one: {error}"
                );
                false
            }
        }
    }

    fn stamps(&self) -> [Option<FileStamp>; 2] {
        [FileStamp::of(&self.cert), FileStamp::of(&self.key)]
    }
}

/// What tells a changed file: size, modification time, inode (a rename over it makes a new one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(path).ok()?;
        Some(Self { len: metadata.len(), modified: metadata.modified().ok(), inode: metadata.ino() })
    }
}

/// Starts the thread that reloads on SIGHUP (`sighup` is set by the signal handler) and on file changes
/// every `check_interval` (zero: SIGHUP only). It runs until the process exits.
pub fn start_reload_thread(
    certificates: Arc<TlsCertificates>,
    sighup: Arc<AtomicBool>,
    check_interval: Duration,
) -> std::io::Result<()> {
    std::thread::Builder::new().name("ringline-tls-reload".to_owned()).spawn(move || {
        let mut seen = certificates.loaded_stamps;
        let mut changed: Option<[Option<FileStamp>; 2]> = None;
        let mut checked = Instant::now();
        loop {
            std::thread::sleep(TLS_RELOAD_SIGNAL_POLL);
            if sighup.swap(false, Ordering::AcqRel) {
                seen = certificates.stamps();
                changed = None;
                certificates.reload("SIGHUP");
                continue;
            }
            if check_interval.is_zero() || checked.elapsed() < check_interval {
                continue;
            }
            checked = Instant::now();
            let now = certificates.stamps();
            if now == seen {
                changed = None;
            } else if changed == Some(now) {
                // Changed, then the same for a whole interval: the writer is done.
                seen = now;
                changed = None;
                certificates.reload("the files changed");
            } else {
                changed = Some(now);
            }
        }
    })?;
    Ok(())
}
