//! The runtime: the only part of the engine that touches glommio, sockets, signals and threads. It starts
//! one pinned executor per core, each with its own SO_REUSEPORT listener (and TLS listener) and its shard,
//! connects every ordered pair of cores with a bounded channel, turns SIGTERM into an orderly shutdown and
//! SIGHUP into a certificate reload.
//!
//! It makes no protocol decision: what to write, whom to wake, where a socket goes and what crosses cores
//! all come from `Shard`. It does not drive the shard by hand either: every output goes through
//! `driver::drive` (`CoreContext::dispatch`, with `effects::CoreEffects`), and the log, device-record and mesh
//! tasks call `driver`'s steps around their I/O, so the simulator runs the same driving code. What stays here
//! is the glommio glue: tasks, wake-ups, sockets, files, channels and timers.

mod admin;
mod admin_inbox;
mod allocator;
mod conn;
mod context;
mod core;
mod cpus;
mod device_records;
#[doc(hidden)]
pub mod durable_write;
mod effects;
mod linger;
mod listener;
mod log;
#[doc(hidden)]
pub mod log_segment;
mod metrics;
mod notify;
pub mod pin_sender;
mod process_resources;
mod readiness;
mod shutdown;
mod sockets;
mod sys;
mod systemd_notify;
mod tls;
mod tls_reload;
mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use glommio::channels::shared_channel;
use glommio::{LocalExecutorBuilder, Placement};

use self::pin_sender::PinSender;
use crate::config::{ServeConfig, ShardAccounts};
use crate::data_dir::{AccountStore, AccountStoreError, DeviceLog};
use ringline_core::home::ShardId;
use ringline_core::limits::{
    MESH_CHANNEL_CAPACITY, SHUTDOWN_REPORT_INTERVAL, SHUTDOWN_STUCK_AFTER, SHUTDOWN_WATCH_INTERVAL,
};
use ringline_core::tls::TlsSetupError;

/// What one core sends another in one channel slot (public for the mesh benchmark, `benches/benches/mesh.rs`).
#[doc(hidden)]
pub use self::context::MeshBatch;
pub use admin::AdminSocketError;
pub use cpus::choose_cpus;
pub use listener::{ListenError, bind_listeners};
pub use log::LogError;
pub use metrics::{BUILD_INFO, MetricsHub};

use self::context::{Coordination, CoreTlsSetup, MeshEnds};
use self::core::run_core;
use self::readiness::ReadinessSetup;
use self::shutdown::{ShutdownWatch, WatchTimes, WatchVerdict};
use self::systemd_notify::SystemdNotifier;
use self::tls_reload::{TlsCertificates, start_reload_thread};

/// Memory glommio reserves per executor for its own I/O buffers. Small: the engine reads sockets itself into
/// its own per-core buffer (glommio only reads the readiness eventfd), and RLIMIT_MEMLOCK may be as low as
/// 8 MiB for the whole process.
const EXECUTOR_IO_MEMORY_BYTES: usize = 512 * 1024;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error("{0}")]
    Cpus(String),
    #[error(transparent)]
    Accounts(#[from] AccountStoreError),
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("starting the PIN sender: {0}")]
    PinSender(std::io::Error),
    #[error("setting up socket readiness (epoll, io_uring, eventfd): {0}")]
    Readiness(std::io::Error),
    #[error("recovering the logs: {0}")]
    Log(#[from] LogError),
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("starting the executor of core {core}: {message}")]
    Executor { core: usize, message: String },
    #[error("core {core} stopped abnormally: {message}")]
    CorePanicked { core: usize, message: String },
    #[error("the shutdown did not finish; giving up. {report}")]
    ShutdownStuck { report: String },
    #[error("cannot serve metrics on {addr}: {error}")]
    MetricsListen { addr: SocketAddr, error: std::io::Error },
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    #[error(transparent)]
    AdminSocket(#[from] AdminSocketError),
    #[error("starting the TLS certificate reload thread: {0}")]
    TlsReloadThread(std::io::Error),
}

/// A started server: where it listens, and the handle to wait for it.
pub struct Server {
    pub listen: SocketAddr,
    pub cores: usize,
    /// Connections this process can hold under its file-descriptor limit, if it could be read.
    pub connections_max: Option<u64>,
    /// Where `/metrics` is served, if `--metrics` was given.
    pub metrics: Option<SocketAddr>,
    /// Where TLS connections are accepted, if `--tls-listen` was given.
    pub tls_listen: Option<SocketAddr>,
    tls: Option<(Arc<TlsCertificates>, std::time::Duration)>,
    shutdown: Arc<AtomicBool>,
    coordination: Arc<Coordination>,
    executors: Vec<glommio::ExecutorJoinHandle<()>>,
    /// systemd's notification socket, when run as a `Type=notify` unit.
    systemd: Option<SystemdNotifier>,
    /// Where the control socket is (`ringline admin`); its file is removed when the server stops.
    pub admin_socket: std::path::PathBuf,
    _admin_socket: admin::AdminSocket,
    /// Holds the data directory's log lock while the server runs.
    _log_lock: std::fs::File,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("listen", &self.listen).field("cores", &self.cores).finish_non_exhaustive()
    }
}

impl Server {
    /// Starts every core. Returns once all listeners are bound (connections queue in the backlog).
    pub fn start(config: &ServeConfig) -> Result<Self, ServeError> {
        let cpus = choose_cpus(config.cores).map_err(ServeError::Cpus)?;
        let cores = cpus.len();
        let connections_max = log_capacity();
        let accounts = AccountStore::open(&config.data_dir)?;
        // Absolute from here on: the log's directories are opened through glommio, whose io_uring `openat`
        // fails on a relative path (EBADF), and a path that means the same after a chdir is clearer in logs.
        let data_dir = std::fs::canonicalize(&config.data_dir).map_err(|source| {
            ServeError::Accounts(AccountStoreError::Io {
                action: "resolving the data directory",
                path: config.data_dir.clone(),
                source,
            })
        })?;
        let (device_log, devices) = DeviceLog::open(&data_dir, cores)?;
        for skipped in &devices.skipped {
            tracing::warn!(%skipped, "device log: skipped a line (a torn write from a crash; its key was never issued)");
        }
        if accounts.directory().is_empty() && devices.generations.is_empty() {
            tracing::warn!(data_dir = %config.data_dir.display(), "no users provisioned or registered yet: only \
                registration works (run `ringline users provision --data-dir ...` for test users)");
        }
        let pin_sender = PinSender::start(config.pin_sender.clone()).map_err(ServeError::PinSender)?;
        let shutdown = Arc::new(AtomicBool::new(false));
        let metrics_hub = Arc::new(MetricsHub::new(cores, config.alerts, shutdown.clone()));
        // The certificate before any socket: a bad one stops the start with one line.
        let tls_certificates = match &config.tls {
            Some(settings) => Some(Arc::new(TlsCertificates::load(settings, metrics_hub.clone())?)),
            None => None,
        };
        let listeners = bind_listeners(config.listen, cores, config.backlog)?;
        let listen = listeners[0].local_addr().ok().and_then(|addr| addr.as_socket()).unwrap_or(config.listen);
        let (tls_listeners, tls_listen) = match &config.tls {
            Some(settings) => {
                let bound = bind_listeners(settings.listen, cores, config.backlog)?;
                let addr = bound[0].local_addr().ok().and_then(|addr| addr.as_socket()).unwrap_or(settings.listen);
                (bound.into_iter().map(Some).collect(), Some(addr))
            }
            None => ((0..cores).map(|_| None).collect::<Vec<_>>(), None),
        };
        let metrics = match config.metrics {
            Some(addr) => Some(metrics::start_endpoint(addr, metrics_hub.clone())?),
            None => None,
        };

        let mut senders: Vec<Vec<Option<_>>> = (0..cores).map(|_| (0..cores).map(|_| None).collect()).collect();
        let mut receivers: Vec<Vec<Option<_>>> = (0..cores).map(|_| (0..cores).map(|_| None).collect()).collect();
        for from in 0..cores {
            for to in 0..cores {
                if from != to {
                    let (sender, receiver) = shared_channel::new_bounded(MESH_CHANNEL_CAPACITY);
                    senders[from][to] = Some(sender);
                    receivers[to][from] = Some(receiver);
                }
            }
        }

        let coordination = Arc::new(Coordination {
            shutdown: shutdown.clone(),
            quiesced: AtomicUsize::new(0),
            cores,
            shutdown_grace: config.shutdown_grace,
            metrics: metrics_hub.clone(),
            shutdown_states: (0..cores).map(|_| shutdown::CoreShutdownState::default()).collect(),
            device_log: Arc::new(device_log),
            pin_sender,
        });
        let cores_u16 = u16::try_from(cores).map_err(|_| ServeError::Cpus(format!("{cores} cores is too many")))?;
        let log_lock = log::lock(&data_dir)?;
        // After the lock: a second server on this data directory stops at the lock, not at the socket.
        let (admin_senders, admin_inboxes): (Vec<_>, Vec<_>) = (0..cores)
            .map(|_| {
                let (sender, receiver) = std::sync::mpsc::sync_channel(ringline_core::limits::ADMIN_CHANNEL_CAPACITY);
                (sender, admin_inbox::AdminInbox::new(receiver))
            })
            .unzip();
        let admin_socket = admin::start(&config.admin_socket, admin_senders)?;
        let logs = log::recover(&data_dir, cores_u16, ringline_core::limits::DEDUP_WINDOW)?;
        metrics_hub.set_logs_recovered();
        let directory = Arc::new(accounts.directory().clone());
        let shard_accounts = ShardAccounts {
            keys: accounts.authority().clone(),
            directory: directory.clone(),
            generations: Arc::new(devices.generations),
        };
        let mut executors = Vec::with_capacity(cores);
        for (index, (((((cpu, listener), tls_listener), (senders, receivers)), log), admin)) in cpus
            .iter()
            .zip(listeners)
            .zip(tls_listeners)
            .zip(senders.into_iter().zip(receivers))
            .zip(logs)
            .zip(admin_inboxes)
            .enumerate()
        {
            let shard_config = config.shard_config(cores_u16, shard_accounts.clone());
            let coordination = coordination.clone();
            let mesh = MeshEnds { senders, receivers };
            let id = ShardId(index as u16);
            let readiness = ReadinessSetup::new(config.io_coalesce).map_err(ServeError::Readiness)?;
            let tls = match (tls_listener, &tls_certificates, &config.tls) {
                (Some(listener), Some(certificates), Some(settings)) => Some(CoreTlsSetup {
                    listener,
                    certificates: certificates.clone(),
                    handshake_timeout: settings.handshake_timeout,
                }),
                _ => None,
            };
            let handle = LocalExecutorBuilder::new(Placement::Fixed(*cpu))
                .name(&format!("ringline-core-{index}"))
                .io_memory(EXECUTOR_IO_MEMORY_BYTES)
                .spawn(move || run_core(id, shard_config, listener, tls, readiness, mesh, coordination, log, admin))
                .map_err(|error| ServeError::Executor { core: index, message: error.to_string() })?;
            executors.push(handle);
        }
        tracing::info!(%listen, tls_listen = ?tls_listen, cores, cpus = ?cpus, users = directory.len(), "ringline serving");
        let tls = tls_certificates.zip(config.tls.as_ref().map(|settings| settings.cert_check_interval));
        Ok(Self {
            listen,
            cores,
            connections_max,
            metrics,
            tls_listen,
            tls,
            shutdown,
            coordination,
            executors,
            systemd: SystemdNotifier::from_env(cores),
            admin_socket: config.admin_socket.clone(),
            _admin_socket: admin_socket,
            _log_lock: log_lock,
        })
    }

    /// Tells systemd, when run under it, that every core listens and the logs are recovered (`READY=1`).
    pub fn notify_ready(&mut self) {
        let status = format!("serving on {} ({} cores)", self.listen, self.cores);
        if let Some(systemd) = &mut self.systemd {
            systemd.ready(&status);
        }
    }

    /// The flag that starts an orderly shutdown when set (SIGTERM sets it).
    pub fn shutdown_flag(&self) -> Arc<AtomicBool> {
        self.shutdown.clone()
    }

    /// Waits until every core has stopped. Once the shutdown began it logs what is left every
    /// `SHUTDOWN_REPORT_INTERVAL`, and gives up with `ShutdownStuck` when a core has made no progress for
    /// `SHUTDOWN_STUCK_AFTER` after the grace. A core that ends on its own (it panicked) starts the shutdown of the others.
    pub fn wait(mut self) -> Result<(), ServeError> {
        let states = &self.coordination.shutdown_states;
        let times = WatchTimes {
            grace: self.coordination.shutdown_grace,
            stuck_after: SHUTDOWN_STUCK_AFTER,
            report_every: SHUTDOWN_REPORT_INTERVAL,
        };
        let mut watch: Option<ShutdownWatch> = None;
        loop {
            if let Some(systemd) = &mut self.systemd {
                systemd.watchdog(states.iter().map(|state| (!state.is_done()).then(|| state.ticks())));
            }
            if !self.shutdown.load(Ordering::Relaxed) {
                if let Some(core) = states.iter().position(shutdown::CoreShutdownState::is_done) {
                    tracing::error!(core, "a core stopped on its own; shutting the others down");
                    self.shutdown.store(true, Ordering::Relaxed);
                }
                if states.iter().all(shutdown::CoreShutdownState::is_done) {
                    break;
                }
            } else {
                let watch = watch.get_or_insert_with(|| {
                    if let Some(systemd) = &mut self.systemd {
                        systemd.stopping("shutting down: GOAWAY to every client");
                    }
                    ShutdownWatch::new(states.len(), Instant::now())
                });
                match watch.look(states, Instant::now(), times) {
                    WatchVerdict::Done => break,
                    WatchVerdict::Waiting { report: Some(report) } => {
                        tracing::warn!("still shutting down: {report}");
                        if let Some(systemd) = &mut self.systemd {
                            systemd.status(&format!("still shutting down: {report}"));
                        }
                    }
                    WatchVerdict::Waiting { report: None } => {}
                    WatchVerdict::Stuck { report } => return Err(ServeError::ShutdownStuck { report }),
                }
            }
            std::thread::sleep(SHUTDOWN_WATCH_INTERVAL);
        }
        for (core, executor) in self.executors.into_iter().enumerate() {
            executor.join().map_err(|error| ServeError::CorePanicked { core, message: error.to_string() })?;
        }
        Ok(())
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit and logs how many connections this process can hold and
/// what to raise for more. Returns that number.
fn log_capacity() -> Option<u64> {
    if let Err(error) = tuning::raise_nofile_soft_limit() {
        tracing::warn!(%error, "cannot raise the soft RLIMIT_NOFILE");
    }
    let host = match tuning::HostLimits::read() {
        Ok(host) => host,
        Err(error) => {
            tracing::warn!(%error, "cannot read the host's limits; capacity unknown");
            return None;
        }
    };
    let connections_max = host.connections_per_process_max();
    let warnings: Vec<String> = host
        .advice(connections_max)
        .into_iter()
        .filter(|advice| advice.status == tuning::Status::Warn)
        .map(|advice| advice.setting.to_string())
        .collect();
    tracing::info!(
        nofile_soft = host.nofile.soft,
        nofile_hard = host.nofile.hard,
        nr_open = host.nr_open,
        "this process can hold about {connections_max} connections; for more, raise the hard RLIMIT_NOFILE \
         and fs.nr_open, or run more engine processes (docs/TUNING.md)"
    );
    if !warnings.is_empty() {
        tracing::warn!(
            "for {connections_max} loopback connections these host settings are short: {}; \
             `ringline-tune check --connections {connections_max}` says how to fix them",
            warnings.join(", ")
        );
    }
    Some(connections_max)
}

/// Runs the server until SIGTERM or SIGINT, then shuts down in order. A second signal exits at once. SIGHUP
/// reloads the TLS certificate (and is ignored without TLS).
///
/// Stdout, in this order, each line once the address is bound (port 0 resolved): `ringline listening on
/// ADDR (N cores)`; with `--tls-listen`, `ringline tls listening on ADDR`; with `--metrics`, `ringline
/// metrics on ADDR`.
pub fn serve(config: &ServeConfig) -> Result<(), ServeError> {
    let mut server = Server::start(config)?;
    let flag = server.shutdown_flag();
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, flag.clone()).map_err(ServeError::Signals)?;
        signal_hook::flag::register(signal, flag.clone()).map_err(ServeError::Signals)?;
    }
    let sighup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, sighup.clone()).map_err(ServeError::Signals)?;
    if let Some((certificates, check_interval)) = &server.tls {
        start_reload_thread(certificates.clone(), sighup, *check_interval).map_err(ServeError::TlsReloadThread)?;
    }
    println!("ringline listening on {} ({} cores)", server.listen, server.cores);
    // Further lines after the first that tools parse; a closed stdout is not the server's problem.
    use std::io::Write;
    if let Some(tls_listen) = server.tls_listen {
        let _ = writeln!(std::io::stdout(), "ringline tls listening on {tls_listen}");
    }
    if let Some(metrics) = server.metrics {
        let _ = writeln!(std::io::stdout(), "ringline metrics on {metrics}");
    }
    server.notify_ready();
    server.wait()?;
    tracing::info!("ringline stopped");
    Ok(())
}
