//! The runtime side of metrics and health: what each core publishes, whether the server is ready, and the
//! thread that serves `/metrics`, `/healthz` and `/readyz`.
//!
//! Each core owns a `CoreMetrics`: on every tick it checks whether `METRICS_PUBLISH_INTERVAL` has passed, and
//! if so captures a `CoreSnapshot` of its shard, checks the alert thresholds (logging a WARN when one is
//! crossed and one line when it clears) and stores the snapshot in its slot of the shared `MetricsHub` with
//! `try_lock`: a core never waits for a scrape, it skips one publish instead. The mesh pump and drain add a
//! relaxed atomic per batch (channel depth) and a histogram entry (hop latency).
//!
//! The endpoint is a plain std thread, not pinned to an executor's CPU, serving HTTP with `tiny_http`; it
//! copies the snapshots, reads the process's resources (`process_resources`) and encodes them
//! (`ringline_core::metrics::encode_text`). Readiness is three facts in atomics (logs recovered, cores
//! listening, the shutdown flag) that `ServingStatus::check` judges. It shares nothing else with cores.

use std::cell::{Cell, RefCell};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use ringline_core::home::ShardId;
use ringline_core::limits::METRICS_PUBLISH_INTERVAL;
use ringline_core::metrics::{
    AlertChange, AlertMonitor, AlertThresholds, BuildInfo, CoreSnapshot, LatencyHistogram, NotReady, ProcessSnapshot,
    QueueKind, ServingStatus,
};
use ringline_core::shard::Shard;
use ringline_core::tls::TlsStats;

use super::ServeError;
use super::process_resources;

/// This binary's version and commit (the commit from `build.rs`).
pub const BUILD_INFO: BuildInfo = BuildInfo { version: env!("CARGO_PKG_VERSION"), commit: env!("RINGLINE_COMMIT") };

/// What the cores publish and the endpoint reads. One per process.
#[derive(Debug)]
pub struct MetricsHub {
    cores: usize,
    thresholds: AlertThresholds,
    snapshots: Vec<Mutex<CoreSnapshot>>,
    /// Messages handed to the channel `from → to`, at `from * cores + to`; written by `from` only.
    channel_sent: Vec<AtomicU64>,
    /// Messages taken out of the channel `from → to`; written by `to` only.
    channel_received: Vec<AtomicU64>,
    /// Certificate reloads that succeeded / failed (process-wide; written by the reload thread).
    pub tls_cert_reloads_ok: AtomicU64,
    pub tls_cert_reloads_failed: AtomicU64,
    /// Set once every core's log is recovered (`Server::start`).
    logs_recovered: AtomicBool,
    /// Cores serving their listeners (each adds itself once, when its I/O loop starts).
    cores_listening: AtomicUsize,
    /// The server's shutdown flag (SIGTERM sets it): draining.
    shutdown: Arc<AtomicBool>,
}

impl MetricsHub {
    pub fn new(cores: usize, thresholds: AlertThresholds, shutdown: Arc<AtomicBool>) -> Self {
        let cores_u16 = u16::try_from(cores).expect("the core count was checked against CORES_MAX");
        Self {
            cores,
            thresholds,
            snapshots: (0..cores_u16)
                .map(|core| Mutex::new(CoreSnapshot { core, cores: cores_u16, ..CoreSnapshot::default() }))
                .collect(),
            channel_sent: (0..cores * cores).map(|_| AtomicU64::new(0)).collect(),
            channel_received: (0..cores * cores).map(|_| AtomicU64::new(0)).collect(),
            tls_cert_reloads_ok: AtomicU64::new(0),
            tls_cert_reloads_failed: AtomicU64::new(0),
            logs_recovered: AtomicBool::new(false),
            cores_listening: AtomicUsize::new(0),
            shutdown,
        }
    }

    /// Every core's log has been recovered.
    pub fn set_logs_recovered(&self) {
        self.logs_recovered.store(true, Ordering::Release);
    }

    /// A core serves its listeners now (called once per core).
    pub fn add_core_listening(&self) {
        self.cores_listening.fetch_add(1, Ordering::AcqRel);
    }

    /// `/readyz`: ready for traffic, or why not.
    pub fn readiness(&self) -> Result<(), NotReady> {
        ServingStatus {
            cores: self.cores,
            cores_listening: self.cores_listening.load(Ordering::Acquire),
            logs_recovered: self.logs_recovered.load(Ordering::Acquire),
            draining: self.shutdown.load(Ordering::Relaxed),
        }
        .check()
    }

    /// Messages in the channel `from → to` now.
    fn channel_depth(&self, from: usize, to: usize) -> u64 {
        let index = from * self.cores + to;
        let received = self.channel_received[index].load(Ordering::Relaxed);
        self.channel_sent[index].load(Ordering::Relaxed).saturating_sub(received)
    }

    /// The Prometheus text of the latest snapshot of every core.
    pub fn encode(&self) -> String {
        let snapshots: Vec<CoreSnapshot> =
            self.snapshots.iter().map(|slot| slot.lock().unwrap_or_else(PoisonError::into_inner).clone()).collect();
        let process = ProcessSnapshot {
            tls_cert_reloads_ok: self.tls_cert_reloads_ok.load(Ordering::Relaxed),
            tls_cert_reloads_failed: self.tls_cert_reloads_failed.load(Ordering::Relaxed),
            build: BUILD_INFO,
            resources: process_resources::read(),
        };
        ringline_core::metrics::encode_text(&snapshots, &process, &self.thresholds)
    }
}

/// One core's metrics state (lives in its `CoreContext`, never crosses cores).
pub struct CoreMetrics {
    id: ShardId,
    hub: Arc<MetricsHub>,
    mesh_hop_us: RefCell<LatencyHistogram>,
    alerts: RefCell<AlertMonitor>,
    changes: RefCell<Vec<AlertChange>>,
    published: Cell<Option<Instant>>,
}

impl CoreMetrics {
    pub fn new(id: ShardId, hub: Arc<MetricsHub>) -> Self {
        let alerts = AlertMonitor::new(hub.thresholds);
        Self {
            id,
            hub,
            mesh_hop_us: RefCell::default(),
            alerts: RefCell::new(alerts),
            changes: RefCell::default(),
            published: Cell::new(None),
        }
    }

    /// The pump hands a batch of `messages` for `peer` to the channel.
    pub fn batch_sent(&self, peer: ShardId, messages: usize) {
        let index = self.id.index() * self.hub.cores + peer.index();
        self.hub.channel_sent[index].fetch_add(messages as u64, Ordering::Relaxed);
    }

    /// The drain took a batch of `messages` from `peer`'s channel; it was sent at `sent_at`.
    pub fn batch_received(&self, peer: ShardId, messages: usize, sent_at: Option<Instant>) {
        let index = peer.index() * self.hub.cores + self.id.index();
        self.hub.channel_received[index].fetch_add(messages as u64, Ordering::Relaxed);
        if let Some(sent_at) = sent_at {
            self.mesh_hop_us.borrow_mut().record(sent_at.elapsed().as_micros() as u64);
        }
    }

    /// Called every tick: once per publish interval, snapshot the shard (and the core's TLS counters), check
    /// alerts, publish.
    pub fn handle_tick(&self, shard: &Shard, tls: Option<&RefCell<TlsStats>>) {
        let now = Instant::now();
        if self.published.get().is_some_and(|at| now.duration_since(at) < METRICS_PUBLISH_INTERVAL) {
            return;
        }
        self.published.set(Some(now));
        let mut snapshot = CoreSnapshot::capture(shard);
        for (peer, depth) in snapshot.channel_messages.iter_mut().enumerate() {
            if peer != self.id.index() {
                *depth = self.hub.channel_depth(self.id.index(), peer);
            }
        }
        snapshot.mesh_hop_us = self.mesh_hop_us.borrow().clone();
        if let Some(tls) = tls {
            snapshot.tls = tls.borrow().clone();
        }
        let levels = snapshot.levels();
        let mut alerts = self.alerts.borrow_mut();
        let mut changes = self.changes.borrow_mut();
        alerts.observe(&levels, &mut changes);
        for change in changes.drain(..) {
            self.log_change(change, levels.channel_depth_peer);
        }
        snapshot.set_alerts(&alerts);
        if let Ok(mut slot) = self.hub.snapshots[self.id.index()].try_lock() {
            *slot = snapshot;
        }
    }

    fn log_change(&self, change: AlertChange, deepest_peer: u16) {
        let core = self.id.0;
        let peer = match change {
            AlertChange::Raised { queue: QueueKind::ChannelDepth, .. }
            | AlertChange::Cleared { queue: QueueKind::ChannelDepth, .. } => format!(" (to core {deepest_peer})"),
            _ => String::new(),
        };
        match change {
            AlertChange::Raised { queue, level, threshold } => tracing::warn!(
                core,
                %queue,
                level,
                threshold,
                "alert raised: core {core} queue {queue}{peer} at {level}, threshold {threshold}"
            ),
            AlertChange::Cleared { queue, level, clear_below } => tracing::info!(
                core,
                %queue,
                level,
                clear_below,
                "alert cleared: core {core} queue {queue}{peer} at {level}, below {clear_below}"
            ),
        }
    }
}

/// Binds `addr` and serves `GET /metrics`, `/healthz` and `/readyz` from `hub` on a thread of its own. Returns
/// the bound address.
pub fn start_endpoint(addr: SocketAddr, hub: Arc<MetricsHub>) -> Result<SocketAddr, ServeError> {
    let listener = TcpListener::bind(addr).map_err(|error| ServeError::MetricsListen { addr, error })?;
    let bound = listener.local_addr().map_err(|error| ServeError::MetricsListen { addr, error })?;
    let server = tiny_http::Server::from_listener(listener, None)
        .map_err(|error| ServeError::MetricsListen { addr, error: std::io::Error::other(error.to_string()) })?;
    std::thread::Builder::new()
        .name("ringline-metrics".to_owned())
        .spawn(move || serve_requests(&server, &hub))
        .map_err(|error| ServeError::MetricsListen { addr, error })?;
    tracing::info!(%bound, "serving metrics on http://{bound}/metrics");
    Ok(bound)
}

fn serve_requests(server: &tiny_http::Server, hub: &MetricsHub) {
    for request in server.incoming_requests() {
        let path = request.url().split('?').next().unwrap_or_default();
        let response = if *request.method() != tiny_http::Method::Get {
            text_response(405, "ringline serves GET only\n".to_owned())
        } else {
            match path {
                "/metrics" => {
                    let content_type = tiny_http::Header::from_bytes(
                        &b"Content-Type"[..],
                        &b"application/openmetrics-text; version=1.0.0; charset=utf-8"[..],
                    )
                    .expect("a valid static header");
                    tiny_http::Response::from_string(hub.encode()).with_header(content_type)
                }
                // Alive: this thread answers.
                "/healthz" => text_response(200, "ok\n".to_owned()),
                "/readyz" => match hub.readiness() {
                    Ok(()) => text_response(200, "ready\n".to_owned()),
                    Err(not_ready) => text_response(503, format!("{not_ready}\n")),
                },
                _ => text_response(404, "ringline serves /metrics, /healthz and /readyz\n".to_owned()),
            }
        };
        // A scraper that went away is its own problem.
        let _ = request.respond(response);
    }
}

fn text_response(status: u16, body: String) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let content_type = tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"text/plain; charset=utf-8"[..])
        .expect("a valid static header");
    tiny_http::Response::from_string(body).with_status_code(status).with_header(content_type)
}
