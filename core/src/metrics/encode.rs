//! The Prometheus text of all cores' snapshots and the process's numbers, with `prometheus-client`. A fresh
//! registry per scrape: the values are copies already, so there is nothing to keep between scrapes. Per-core
//! series carry a `core` label; the process's CPU, memory and descriptors use the standard unprefixed
//! `process_*` names, so dashboards made for any Prometheus exporter read them; docs/METRICS.md lists every
//! metric.

use std::sync::Mutex;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use super::alert::{AlertThresholds, QueueKind};
use super::histogram::LatencyHistogram;
use super::snapshot::{CoreSnapshot, ProcessResources, ProcessSnapshot};
use crate::tls::TlsFailure;

type Labels = Vec<(&'static str, String)>;

/// A histogram whose buckets are set from a `LatencyHistogram` (prometheus-client's own only observes).
#[derive(Debug, Default)]
struct SetHistogram(Mutex<LatencyHistogram>);

impl SetHistogram {
    fn set(&self, histogram: &LatencyHistogram) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = histogram.clone();
    }
}

impl TypedMetric for SetHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for SetHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let histogram = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        encoder.encode_histogram::<()>(
            histogram.sum_us() as f64 / 1e6,
            histogram.count(),
            &histogram.buckets_seconds(),
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Families of one scrape, registered in `Registry` order.
struct Builder {
    registry: Registry,
}

impl Builder {
    fn counter(&mut self, name: &str, help: &str) -> Family<Labels, Counter> {
        let family = Family::<Labels, Counter>::default();
        self.registry.register(name, help.trim_end_matches('.'), family.clone());
        family
    }

    fn gauge(&mut self, name: &str, help: &str) -> Family<Labels, Gauge> {
        let family = Family::<Labels, Gauge>::default();
        self.registry.register(name, help.trim_end_matches('.'), family.clone());
        family
    }

    fn histogram(&mut self, name: &str, help: &str) -> Family<Labels, SetHistogram> {
        let family = Family::<Labels, SetHistogram>::default();
        self.registry.register(name, help.trim_end_matches('.'), family.clone());
        family
    }
}

fn core_label(snapshot: &CoreSnapshot) -> Labels {
    vec![("core", snapshot.core.to_string())]
}

fn with(mut labels: Labels, key: &'static str, value: impl ToString) -> Labels {
    labels.push((key, value.to_string()));
    labels
}

fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Encodes every core's snapshot, the process's numbers and the configured thresholds as
/// Prometheus/OpenMetrics text.
pub fn encode_text(snapshots: &[CoreSnapshot], process: &ProcessSnapshot, thresholds: &AlertThresholds) -> String {
    let mut builder = Builder { registry: Registry::with_prefix("ringline") };

    let cores = Gauge::<i64>::default();
    builder.registry.register("cores", "Cores (shards) this engine runs", cores.clone());
    let connections = builder.gauge("connections", "Connections on the core, any stage.");
    let sessions = builder.gauge("sessions", "Logged-in users on the core.");
    let accepted = builder.counter("accepted", "Connections accepted by the core.");
    let logins = builder.counter("logins", "Logins completed on the core (the user's home core).");
    let handoffs = builder.counter("handoffs", "Logged-in connections handed to the user's home core.");
    let adopted = builder.counter("adopted", "Connections adopted from another core.");
    let replaced = builder.counter("replaced", "Sessions replaced by a newer login of the same user.");
    let closed = builder.counter("closed", "Connections closed.");
    let pins_sent = builder.counter("registration_pins_sent", "Registration PINs handed to the PIN sender.");
    let registrations = builder.counter("registrations", "Devices registered by PIN (new device keys issued).");
    let registrations_refused =
        builder.counter("registrations_refused", "Registration steps refused (REGISTER_REFUSED, any code).");
    let revoked =
        builder.counter("revoked", "Live sessions closed because their device was replaced (GOAWAY Revoked).");
    let messages_in = builder.counter("messages_in", "SEND frames received from clients of the core.");
    let messages_stored =
        builder.counter("messages_stored", "Messages stored in the offline queue of the core (recipients' home).");
    let messages_out = builder.counter("messages_out", "DELIVER frames written to clients of the core.");
    let messages_delivered =
        builder.counter("messages_delivered", "Messages acknowledged by their recipient (DELIVERED).");
    let receipts = builder.counter("receipts_queued", "Receipts queued for senders on the core.");
    let duplicates = builder.counter("duplicates_suppressed", "Retried SENDs answered from dedup memory.");
    let refused = builder.counter(
        "receipt_frames_refused",
        "READ and DELIVERED frames refused, by frame: not about an item delivered to that user (forged or repeated).",
    );
    let expired = builder.counter("messages_expired", "Messages dropped for age (sender told).");
    let rejects = builder.counter("rejects", "SENDs refused with REJECT, by reason.");
    let errors = builder.counter("errors", "Connections failed or timed out, by kind.");
    let mesh_sent = builder.counter("mesh_sent_messages", "Messages sent to other cores.");
    let mesh_received = builder.counter("mesh_received_messages", "Messages received from other cores.");
    let offline_items =
        builder.gauge("offline_queue_messages", "Items (messages and receipts) waiting in the core's offline queue.");
    let offline_bytes = builder.gauge("offline_queue_bytes", "Body bytes waiting in the core's offline queue.");
    let offline_users = builder.gauge("offline_queue_users", "Users with something waiting on the core.");
    let dedup = builder.gauge("dedup_entries", "SENDs remembered for deduplicating retries.");
    let unread = builder.gauge(
        "unread_messages",
        "Messages delivered and not yet READ that the core remembers (what a READ may name).",
    );
    let outbound_bytes =
        builder.gauge("outbound_bytes", "Bytes queued for clients' sockets and not yet written, whole core.");
    let outbound_full =
        builder.gauge("outbound_full_connections", "Connections whose outbound buffer is full (stalled readers).");
    let outbox = builder.gauge("mesh_outbox_messages", "Messages waiting in the core's outbox for a peer core.");
    let channel =
        builder.gauge("mesh_channel_messages", "Messages in the bounded channel to a peer core, not yet drained.");
    let send_stored = builder.histogram(
        "send_stored_latency_seconds",
        "Time from a SEND received to its Stored reply on the sender's home core.",
    );
    let mesh_hop = builder
        .histogram("mesh_hop_latency_seconds", "Time a batch spent between a peer's pump and this core's drain.");
    let wal_sync = builder.histogram("wal_sync_latency_seconds", "Time of one write-ahead log sync (fsync).");
    let alert = builder.gauge("alert", "1 while a queue of the core is above its alert threshold (hysteresis).");
    let alert_threshold = builder.gauge("alert_threshold", "Level at which a queue's alert is raised (0: off).");
    let tls_connections = builder.gauge("tls_connections", "TLS connections on the core, any stage.");
    let tls_in_progress = builder.gauge("tls_handshakes_in_progress", "TLS handshakes in progress on the core.");
    let tls_handshakes = builder.counter("tls_handshakes", "TLS handshakes completed, by kind (full, resumed).");
    let tls_failures = builder.counter(
        "tls_handshake_failures",
        "TLS connections refused or failed, by reason (bad_record: after the handshake).",
    );
    let tls_limit_waits = builder.counter(
        "tls_handshake_limit_waits",
        "Times the core left new TLS connections in the backlog at its limit of handshakes in progress.",
    );
    let tls_latency = builder.histogram("tls_handshake_latency_seconds", "Time from accept to TLS handshake complete.");
    let tls_reloads = builder.counter("tls_cert_reloads", "TLS certificate reloads, by result (ok, failed).");
    for (result, value) in [("ok", process.tls_cert_reloads_ok), ("failed", process.tls_cert_reloads_failed)] {
        tls_reloads.get_or_create(&vec![("result", result.to_owned())]).inc_by(value);
    }

    for queue in QueueKind::ALL {
        alert_threshold
            .get_or_create(&vec![("queue", queue.name().to_owned())])
            .set(gauge_value(thresholds.get(queue)));
    }
    if let Some(first) = snapshots.first() {
        cores.set(i64::from(first.cores));
    }
    for snapshot in snapshots {
        let core = core_label(snapshot);
        let stats = &snapshot.stats;
        connections.get_or_create(&core).set(gauge_value(snapshot.connections));
        sessions.get_or_create(&core).set(gauge_value(snapshot.sessions));
        accepted.get_or_create(&core).inc_by(stats.accepted);
        logins.get_or_create(&core).inc_by(stats.logins);
        handoffs.get_or_create(&core).inc_by(stats.handoffs_out);
        adopted.get_or_create(&core).inc_by(stats.adopted);
        replaced.get_or_create(&core).inc_by(stats.replaced);
        closed.get_or_create(&core).inc_by(stats.closed);
        pins_sent.get_or_create(&core).inc_by(stats.pins_sent);
        registrations.get_or_create(&core).inc_by(stats.registrations);
        registrations_refused.get_or_create(&core).inc_by(stats.registrations_refused);
        revoked.get_or_create(&core).inc_by(stats.revoked);
        messages_in.get_or_create(&core).inc_by(stats.messages_in);
        messages_stored.get_or_create(&core).inc_by(stats.messages_stored);
        messages_out.get_or_create(&core).inc_by(stats.deliveries_written);
        messages_delivered.get_or_create(&core).inc_by(stats.messages_delivered);
        receipts.get_or_create(&core).inc_by(stats.receipts_queued);
        duplicates.get_or_create(&core).inc_by(stats.duplicates_suppressed);
        refused.get_or_create(&with(core.clone(), "frame", "read")).inc_by(stats.read_refused);
        refused.get_or_create(&with(core.clone(), "frame", "delivered")).inc_by(stats.delivered_refused);
        expired.get_or_create(&core).inc_by(stats.expired);
        rejects.get_or_create(&with(core.clone(), "reason", "queue_full")).inc_by(stats.rejects_queue_full);
        rejects
            .get_or_create(&with(core.clone(), "reason", "other"))
            .inc_by(stats.rejects.saturating_sub(stats.rejects_queue_full));
        let errors_other =
            stats.errors_sent.saturating_sub(stats.errors_auth + stats.errors_malformed + stats.timeouts_handshake);
        for (kind, value) in [
            ("auth", stats.errors_auth),
            ("malformed", stats.errors_malformed),
            ("handshake_timeout", stats.timeouts_handshake),
            ("idle_timeout", stats.timeouts_idle),
            ("other", errors_other),
        ] {
            errors.get_or_create(&with(core.clone(), "kind", kind)).inc_by(value);
        }
        mesh_sent.get_or_create(&core).inc_by(stats.mesh_sent);
        mesh_received.get_or_create(&core).inc_by(stats.mesh_received);
        offline_items.get_or_create(&core).set(gauge_value(snapshot.offline_items));
        offline_bytes.get_or_create(&core).set(gauge_value(snapshot.offline_bytes));
        offline_users.get_or_create(&core).set(gauge_value(snapshot.offline_users));
        dedup.get_or_create(&core).set(gauge_value(snapshot.dedup_entries));
        unread.get_or_create(&core).set(gauge_value(snapshot.unread_messages));
        outbound_bytes.get_or_create(&core).set(gauge_value(snapshot.outbound_bytes));
        outbound_full.get_or_create(&core).set(gauge_value(snapshot.outbound_full_connections));
        for (peer, (&waiting, &in_channel)) in
            snapshot.outbox_messages.iter().zip(&snapshot.channel_messages).enumerate()
        {
            if peer == usize::from(snapshot.core) {
                continue;
            }
            outbox.get_or_create(&with(core.clone(), "peer", peer)).set(gauge_value(waiting));
            channel.get_or_create(&with(core.clone(), "peer", peer)).set(gauge_value(in_channel));
        }
        send_stored.get_or_create(&core).set(&stats.send_stored_us);
        mesh_hop.get_or_create(&core).set(&snapshot.mesh_hop_us);
        wal_sync.get_or_create(&core).set(&stats.wal_sync_us);
        for &(queue, raised) in &snapshot.alerts {
            alert.get_or_create(&with(core.clone(), "queue", queue.name())).set(i64::from(raised));
        }
        let tls = &snapshot.tls;
        tls_connections.get_or_create(&core).set(gauge_value(tls.connections));
        tls_in_progress.get_or_create(&core).set(gauge_value(tls.handshakes_in_progress));
        tls_handshakes.get_or_create(&with(core.clone(), "kind", "full")).inc_by(tls.handshakes_full);
        tls_handshakes.get_or_create(&with(core.clone(), "kind", "resumed")).inc_by(tls.handshakes_resumed);
        for failure in TlsFailure::ALL {
            tls_failures.get_or_create(&with(core.clone(), "reason", failure.name())).inc_by(tls.failures_of(failure));
        }
        tls_limit_waits.get_or_create(&core).inc_by(tls.handshake_limit_waits);
        tls_latency.get_or_create(&core).set(&tls.handshake_us);
    }

    let build =
        Info::new(vec![("version", process.build.version.to_owned()), ("commit", process.build.commit.to_owned())]);
    builder.registry.register("build", "The version and commit of this binary", build);

    let mut text = String::new();
    let written = prometheus_client::encoding::text::encode_registry(&mut text, &builder.registry)
        .and_then(|()| match &process.resources {
            Some(resources) => {
                prometheus_client::encoding::text::encode_registry(&mut text, &resources_registry(resources))
            }
            None => Ok(()),
        })
        .and_then(|()| prometheus_client::encoding::text::encode_eof(&mut text));
    written.expect("writing to a String cannot fail");
    text
}

/// The standard `process_*` families (no `ringline_` prefix: the names every exporter uses).
fn resources_registry(resources: &ProcessResources) -> Registry {
    let mut registry = Registry::default();
    let cpu = Counter::<f64, std::sync::atomic::AtomicU64>::default();
    cpu.inc_by(resources.cpu_us as f64 / 1e6);
    registry.register("process_cpu_seconds", "Total user and system CPU time spent in seconds", cpu);
    let resident = Gauge::<i64>::default();
    resident.set(gauge_value(resources.resident_bytes));
    registry.register("process_resident_memory_bytes", "Resident memory size in bytes", resident);
    let open_fds = Gauge::<i64>::default();
    open_fds.set(gauge_value(resources.open_fds));
    registry.register("process_open_fds", "Number of open file descriptors", open_fds);
    let max_fds = Gauge::<i64>::default();
    max_fds.set(gauge_value(resources.max_fds));
    registry.register("process_max_fds", "Maximum number of open file descriptors (the soft RLIMIT_NOFILE)", max_fds);
    registry
}

#[cfg(test)]
mod tests {
    use super::super::snapshot::BuildInfo;
    use super::*;

    #[test]
    fn every_core_gets_its_series_and_histograms_are_cumulative() {
        let mut first = CoreSnapshot { core: 0, cores: 2, ..CoreSnapshot::default() };
        first.stats.logins = 7;
        first.tls.handshakes_resumed = 4;
        first.tls.count_failure(TlsFailure::Plaintext);
        first.tls.connections = 3;
        first.stats.send_stored_us.record(10);
        first.stats.send_stored_us.record(40);
        first.outbox_messages = vec![0, 3];
        first.channel_messages = vec![0, 2];
        first.alerts = vec![(QueueKind::OfflineMessages, true)];
        let second = CoreSnapshot { core: 1, cores: 2, offline_items: 5, ..CoreSnapshot::default() };
        let thresholds =
            AlertThresholds { offline_messages: 10, offline_bytes: 0, channel_depth: 0, outbound_bytes: 0 };
        let process = ProcessSnapshot {
            tls_cert_reloads_ok: 2,
            tls_cert_reloads_failed: 1,
            build: BuildInfo { version: "0.1.0", commit: "0123456789ab" },
            resources: Some(ProcessResources { cpu_us: 1_500_000, resident_bytes: 4096, open_fds: 12, max_fds: 1024 }),
        };
        let text = encode_text(&[first, second], &process, &thresholds);
        for line in [
            "ringline_cores 2",
            "ringline_logins_total{core=\"0\"} 7",
            "ringline_logins_total{core=\"1\"} 0",
            "ringline_offline_queue_messages{core=\"1\"} 5",
            "ringline_mesh_outbox_messages{core=\"0\",peer=\"1\"} 3",
            "ringline_mesh_channel_messages{core=\"0\",peer=\"1\"} 2",
            "ringline_alert{core=\"0\",queue=\"offline_messages\"} 1",
            "ringline_alert_threshold{queue=\"offline_messages\"} 10",
            "ringline_send_stored_latency_seconds_count{core=\"0\"} 2",
            "ringline_send_stored_latency_seconds_bucket{le=\"0.000016\",core=\"0\"} 1",
            "ringline_send_stored_latency_seconds_bucket{le=\"0.000064\",core=\"0\"} 2",
            "ringline_send_stored_latency_seconds_bucket{le=\"+Inf\",core=\"0\"} 2",
            "ringline_errors_total{core=\"0\",kind=\"auth\"} 0",
            "ringline_tls_connections{core=\"0\"} 3",
            "ringline_tls_handshakes_total{core=\"0\",kind=\"resumed\"} 4",
            "ringline_tls_handshakes_total{core=\"1\",kind=\"full\"} 0",
            "ringline_tls_handshake_failures_total{core=\"0\",reason=\"plaintext\"} 1",
            "ringline_tls_handshake_failures_total{core=\"0\",reason=\"timeout\"} 0",
            "ringline_tls_cert_reloads_total{result=\"ok\"} 2",
            "ringline_tls_cert_reloads_total{result=\"failed\"} 1",
            "ringline_build_info{version=\"0.1.0\",commit=\"0123456789ab\"} 1",
            "process_cpu_seconds_total 1.5",
            "process_resident_memory_bytes 4096",
            "process_open_fds 12",
            "process_max_fds 1024",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("peer=\"0\",core=\"0\""), "no series for a core's own index");
        assert_eq!(text.matches("# EOF").count(), 1, "one end marker, at the end:\n{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn unreadable_process_resources_leave_their_series_out() {
        let process = ProcessSnapshot { resources: None, ..ProcessSnapshot::default() };
        let thresholds = AlertThresholds { offline_messages: 0, offline_bytes: 0, channel_depth: 0, outbound_bytes: 0 };
        let text = encode_text(&[CoreSnapshot::default()], &process, &thresholds);
        assert!(!text.contains("process_"), "{text}");
        assert!(text.contains("ringline_build_info"), "{text}");
    }
}
