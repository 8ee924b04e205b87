//! The `serve` configuration: command-line flags, an optional TOML file with the same keys, and the checked
//! result. Owns defaults (from `limits.rs`), precedence (flag over file over default) and validation with a
//! clear message per bad value. Does not open sockets or files other than the config file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use std::collections::HashMap;

use wire::UserId;

use ringline_core::account::{Directory, KeyAuthority, RegistrationLimits};

use crate::rt::pin_sender::PinSenderKind;
use ringline_core::limits;
use ringline_core::metrics::AlertThresholds;
use ringline_core::shard::{Durability, QueueLimits, ShardConfig};

/// `--durability`: what a server ACK promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityLevel {
    /// ACK after the message's log record is written and fdatasync'ed on the recipient's home core (group
    /// commit); an ACKed message survives a crash of the engine or of the machine.
    #[default]
    Sync,
    /// ACK as soon as the recipient's home core holds the message in memory; each core writes and syncs its
    /// log every --durability-flush-interval, so a crash loses the messages ACKed in about the last interval.
    Async,
}

/// Flags of `ringline serve`. Every one can also be set in the `--config` file (same name, `_` for `-`; the
/// `--tls-*` flags go in a `[tls]` table, without the prefix: `[tls] listen = ...`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Address to accept native-protocol connections on, e.g. 127.0.0.1:7000 (port 0 picks a free port).
    /// Required (flag or config file).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Cores to run on (one pinned executor each); default: every core this process may use.
    #[arg(long)]
    pub cores: Option<usize>,
    /// Directory of the account files (secret, provisioned users) and of each core's log (wal/); default
    /// ./ringline-data.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// TOML file with any of these settings; flags given on the command line win; default: none.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Listen backlog per core; default 65535.
    #[arg(long)]
    pub backlog: Option<u32>,
    /// Largest frame a client may send, in bytes (at least 256); default 65536 (64 KiB). A larger one gets
    /// ERROR(FrameTooLarge).
    #[arg(long)]
    pub frame_size_max: Option<usize>,
    /// Time a new connection has to complete HELLO, e.g. 10s; default 10s.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub handshake_timeout: Option<Duration>,
    /// Time without progress (no frame received, none of its bytes read) after which a client is closed,
    /// e.g. 180s; default 180s.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Messages that may wait for one user; default 10000 (then REJECT RecipientQueueFull).
    #[arg(long)]
    pub queue_messages_max: Option<usize>,
    /// Body bytes that may wait for one user; default 16777216 (16 MiB; then REJECT RecipientQueueBytesFull).
    #[arg(long)]
    pub queue_bytes_max: Option<u64>,
    /// Body bytes that may wait on one core, all users together; default 4294967296 (4 GiB; then REJECT
    /// ServerQueueFull).
    #[arg(long)]
    pub core_queue_bytes_max: Option<u64>,
    /// Age after which an undelivered message is dropped and its sender told, e.g. 30days; default 30days.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub queue_age_max: Option<Duration>,
    /// Time SIGTERM waits for in-flight work before closing connections hard, e.g. 10s; default 10s.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub shutdown_grace: Option<Duration>,
    /// Shortest time between two socket-readiness wake-ups of a core, e.g. 1ms; 0s: wake on every event. A
    /// core woken again sooner first sleeps out the rest, so that under load each wake-up serves a batch of
    /// connections (a wake-up costs several io_uring submissions and a context switch); an event after a
    /// quiet spell is served at once. Adds at most this much to a message's latency, at most 100ms; default
    /// 1ms.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub io_coalesce: Option<Duration>,
    /// Where registration PINs go: `log` (the server log; development), `file:PATH` (one line per PIN),
    /// or `command:PROGRAM` (runs PROGRAM PHONE PIN, e.g. an SMS gateway client); default log.
    #[arg(long)]
    pub pin_sender: Option<PinSenderKind>,
    /// How long a registration PIN stays valid, e.g. 10m; default 10m.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub pin_ttl: Option<Duration>,
    /// Address to serve Prometheus metrics on (path /metrics), e.g. 127.0.0.1:9100; default: no endpoint.
    #[arg(long)]
    pub metrics: Option<SocketAddr>,
    /// Alert when one core's offline queue holds this many items (messages and receipts); 0: off; default
    /// 1000000.
    #[arg(long)]
    pub alert_offline_messages: Option<u64>,
    /// Alert when one core's offline queue holds this many body bytes; 0: off; default 1073741824 (1 GiB).
    #[arg(long)]
    pub alert_offline_bytes: Option<u64>,
    /// Alert when this many messages wait for one peer core (outbox plus channel); 0: off; default 4096.
    #[arg(long)]
    pub alert_channel_depth: Option<u64>,
    /// Alert when one core's connections hold this many unwritten outbound bytes; 0: off; default 16777216
    /// (16 MiB).
    #[arg(long)]
    pub alert_outbound_bytes: Option<u64>,
    /// What the ACK of a SEND promises. `sync` (default): the message is in the recipient's home core's log
    /// and fdatasync'ed before the ACK, so it survives a crash of the engine or the machine. `async`: the ACK
    /// goes once the message is in memory; logs are synced every --durability-flush-interval, so a crash
    /// loses the messages ACKed in about that last interval. Both replay the logs at start.
    #[arg(long, value_enum)]
    pub durability: Option<DurabilityLevel>,
    /// With --durability async: how often each core writes and syncs its log, e.g. 10ms; default 10ms.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub durability_flush_interval: Option<Duration>,
    /// Bytes after which a core's log segment is closed and a new one started (multiple of 4096). Disk use
    /// stays within about max(2 segments, 2 × the pending messages' size) per core: compaction rewrites
    /// what is pending and deletes older segments. Default 67108864 (64 MiB).
    #[arg(long)]
    pub log_segment_bytes: Option<u64>,
    /// Address to accept native-protocol connections over TLS on, e.g. 0.0.0.0:7443 (port 0 picks a free
    /// port); needs --tls-cert and --tls-key. Inside TLS the protocol is unchanged; ALPN is `ringline/1`.
    /// The plain --listen stays for trusted networks and tests. Default: no TLS listener.
    #[arg(long)]
    pub tls_listen: Option<SocketAddr>,
    /// PEM file with the certificate chain, server certificate first (`ringline tls dev-cert` makes a
    /// self-signed one for development). Reloaded on SIGHUP and when the file changes.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the certificate's private key (PKCS#8, RSA or SEC1).
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Time a TLS connection has, from accept, to complete its TLS handshake, e.g. 10s. (HELLO must also come
    /// within --handshake-timeout of accept.) Default 10s.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub tls_handshake_timeout: Option<Duration>,
    /// How often the certificate and key files are checked for a change, which reloads them like SIGHUP,
    /// e.g. 5s; 0 reloads only on SIGHUP; default 5s.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub tls_cert_check_interval: Option<Duration>,
}

/// The `--config` file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeFile {
    listen: Option<SocketAddr>,
    cores: Option<usize>,
    data_dir: Option<PathBuf>,
    backlog: Option<u32>,
    frame_size_max: Option<usize>,
    #[serde(default, with = "humantime_serde_opt")]
    handshake_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    idle_timeout: Option<Duration>,
    queue_messages_max: Option<usize>,
    queue_bytes_max: Option<u64>,
    core_queue_bytes_max: Option<u64>,
    #[serde(default, with = "humantime_serde_opt")]
    queue_age_max: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    shutdown_grace: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    io_coalesce: Option<Duration>,
    pin_sender: Option<String>,
    #[serde(default, with = "humantime_serde_opt")]
    pin_ttl: Option<Duration>,
    metrics: Option<SocketAddr>,
    alert_offline_messages: Option<u64>,
    alert_offline_bytes: Option<u64>,
    alert_channel_depth: Option<u64>,
    alert_outbound_bytes: Option<u64>,
    durability: Option<DurabilityLevel>,
    #[serde(default, with = "humantime_serde_opt")]
    durability_flush_interval: Option<Duration>,
    log_segment_bytes: Option<u64>,
    tls: Option<TlsFile>,
}

/// The `[tls]` table of the `--config` file: the `--tls-*` flags without the prefix.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    listen: Option<SocketAddr>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    #[serde(default, with = "humantime_serde_opt")]
    handshake_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    cert_check_interval: Option<Duration>,
}

mod humantime_serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(deserializer)?;
        text.map(|text| humantime::parse_duration(&text).map_err(serde::de::Error::custom)).transpose()
    }
}

/// Why a configuration is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("--listen is required (flag or `listen` in the config file)")]
    MissingListen,
    #[error("reading config file {path}: {source}")]
    ReadFile { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("{setting} = {value} is out of range: {expected}")]
    OutOfRange { setting: &'static str, value: String, expected: String },
    #[error("--tls-listen needs --tls-cert and --tls-key (flags, or cert and key in the config file's [tls] table)")]
    TlsWithoutCertificate,
    #[error(
        "--tls-cert and --tls-key are used only with --tls-listen (flag, or listen in the config file's [tls] table)"
    )]
    TlsWithoutListen,
    #[error("--tls-listen {addr} is the same address as --listen")]
    TlsSameAddress { addr: SocketAddr },
}

/// Where and how the engine serves TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub handshake_timeout: Duration,
    /// Zero: reload only on SIGHUP.
    pub cert_check_interval: Duration,
}

/// The checked `serve` configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub cores: Option<usize>,
    pub data_dir: PathBuf,
    pub backlog: u32,
    pub frame_size_max: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub queue: QueueLimits,
    pub shutdown_grace: Duration,
    /// Shortest time between two readiness wake-ups of a core (zero: none).
    pub io_coalesce: Duration,
    pub pin_sender: PinSenderKind,
    pub registration: RegistrationLimits,
    /// Where `/metrics` is served, if anywhere.
    pub metrics: Option<SocketAddr>,
    pub alerts: AlertThresholds,
    pub durability: Durability,
    pub log_segment_bytes: u64,
    /// The TLS listener, if any.
    pub tls: Option<TlsSettings>,
}

fn in_range<T: PartialOrd + std::fmt::Display>(
    setting: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::OutOfRange { setting, value: value.to_string(), expected: format!("{min} to {max}") });
    }
    Ok(value)
}

fn duration_in_range(setting: &'static str, value: Duration, min: Duration) -> Result<Duration, ConfigError> {
    if value < min {
        return Err(ConfigError::OutOfRange {
            setting,
            value: humantime::format_duration(value).to_string(),
            expected: format!("at least {}", humantime::format_duration(min)),
        });
    }
    Ok(value)
}

fn duration_at_most(setting: &'static str, value: Duration, max: Duration) -> Result<Duration, ConfigError> {
    if value > max {
        return Err(ConfigError::OutOfRange {
            setting,
            value: humantime::format_duration(value).to_string(),
            expected: format!("at most {}", humantime::format_duration(max)),
        });
    }
    Ok(value)
}

impl ServeConfig {
    /// Flags over the config file over defaults, each value checked.
    pub fn resolve(args: &ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => ServeFile::default(),
        };
        let listen = args.listen.or(file.listen).ok_or(ConfigError::MissingListen)?;
        let tls = resolve_tls(args, file.tls.unwrap_or_default(), listen)?;
        let cores = match args.cores.or(file.cores) {
            Some(cores) => Some(in_range("cores", cores, 1, limits::CORES_MAX)?),
            None => None,
        };
        let second = Duration::from_secs(1);
        let millisecond = Duration::from_millis(1);
        Ok(Self {
            listen,
            cores,
            data_dir: args.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from("ringline-data")),
            backlog: in_range(
                "backlog",
                args.backlog.or(file.backlog).unwrap_or(limits::LISTEN_BACKLOG_DEFAULT),
                1,
                i32::MAX as u32,
            )?,
            frame_size_max: in_range(
                "frame-size-max",
                args.frame_size_max.or(file.frame_size_max).unwrap_or(limits::FRAME_SIZE_MAX_DEFAULT),
                wire::FRAME_SIZE_MAX_MIN,
                limits::OUTBOUND_BYTES_MAX - wire::LENGTH_PREFIX_BYTES,
            )?,
            handshake_timeout: duration_in_range(
                "handshake-timeout",
                args.handshake_timeout.or(file.handshake_timeout).unwrap_or(limits::HANDSHAKE_TIMEOUT_DEFAULT),
                millisecond,
            )?,
            idle_timeout: duration_in_range(
                "idle-timeout",
                args.idle_timeout.or(file.idle_timeout).unwrap_or(limits::IDLE_TIMEOUT_DEFAULT),
                second,
            )?,
            queue: QueueLimits {
                messages_per_user_max: in_range(
                    "queue-messages-max",
                    args.queue_messages_max
                        .or(file.queue_messages_max)
                        .unwrap_or(limits::OFFLINE_QUEUE_MESSAGES_MAX_DEFAULT),
                    1,
                    usize::MAX,
                )?,
                bytes_per_user_max: in_range(
                    "queue-bytes-max",
                    args.queue_bytes_max.or(file.queue_bytes_max).unwrap_or(limits::OFFLINE_QUEUE_BYTES_MAX_DEFAULT),
                    1,
                    u64::MAX,
                )?,
                bytes_per_core_max: in_range(
                    "core-queue-bytes-max",
                    args.core_queue_bytes_max
                        .or(file.core_queue_bytes_max)
                        .unwrap_or(limits::CORE_QUEUE_BYTES_MAX_DEFAULT),
                    1,
                    u64::MAX,
                )?,
                age_max_us: duration_in_range(
                    "queue-age-max",
                    args.queue_age_max.or(file.queue_age_max).unwrap_or(limits::OFFLINE_AGE_MAX_DEFAULT),
                    second,
                )?
                .as_micros() as u64,
            },
            shutdown_grace: args.shutdown_grace.or(file.shutdown_grace).unwrap_or(limits::SHUTDOWN_GRACE_DEFAULT),
            io_coalesce: duration_at_most(
                "io-coalesce",
                args.io_coalesce.or(file.io_coalesce).unwrap_or(limits::IO_COALESCE_DEFAULT),
                limits::IO_COALESCE_MAX,
            )?,
            pin_sender: match (&args.pin_sender, &file.pin_sender) {
                (Some(kind), _) => kind.clone(),
                (None, Some(text)) => text.parse().map_err(|expected| ConfigError::OutOfRange {
                    setting: "pin-sender",
                    value: text.clone(),
                    expected,
                })?,
                (None, None) => PinSenderKind::Log,
            },
            registration: RegistrationLimits::standard(
                duration_in_range("pin-ttl", args.pin_ttl.or(file.pin_ttl).unwrap_or(limits::PIN_TTL_DEFAULT), second)?
                    .as_micros() as u64,
            ),
            metrics: args.metrics.or(file.metrics),
            alerts: AlertThresholds {
                offline_messages: args
                    .alert_offline_messages
                    .or(file.alert_offline_messages)
                    .unwrap_or(limits::ALERT_OFFLINE_MESSAGES_DEFAULT),
                offline_bytes: args
                    .alert_offline_bytes
                    .or(file.alert_offline_bytes)
                    .unwrap_or(limits::ALERT_OFFLINE_BYTES_DEFAULT),
                channel_depth: args
                    .alert_channel_depth
                    .or(file.alert_channel_depth)
                    .unwrap_or(limits::ALERT_CHANNEL_DEPTH_DEFAULT),
                outbound_bytes: args
                    .alert_outbound_bytes
                    .or(file.alert_outbound_bytes)
                    .unwrap_or(limits::ALERT_OUTBOUND_BYTES_DEFAULT),
            },
            durability: match args.durability.or(file.durability).unwrap_or_default() {
                DurabilityLevel::Sync => Durability::Sync,
                DurabilityLevel::Async => Durability::Async {
                    flush_interval: duration_in_range(
                        "durability-flush-interval",
                        args.durability_flush_interval
                            .or(file.durability_flush_interval)
                            .unwrap_or(limits::LOG_FLUSH_INTERVAL_DEFAULT),
                        millisecond,
                    )?,
                },
            },
            log_segment_bytes: {
                let bytes = in_range(
                    "log-segment-bytes",
                    args.log_segment_bytes.or(file.log_segment_bytes).unwrap_or(limits::LOG_SEGMENT_BYTES_DEFAULT),
                    ringline_core::wal::PAGE_BYTES as u64,
                    limits::LOG_SEGMENT_BYTES_MAX,
                )?;
                if !bytes.is_multiple_of(ringline_core::wal::PAGE_BYTES as u64) {
                    return Err(ConfigError::OutOfRange {
                        setting: "log-segment-bytes",
                        value: bytes.to_string(),
                        expected: format!("a multiple of {}", ringline_core::wal::PAGE_BYTES),
                    });
                }
                bytes
            },
            tls,
        })
    }

    /// The per-core configuration for `cores` cores with these accounts.
    pub fn shard_config(&self, cores: u16, accounts: ShardAccounts) -> ShardConfig {
        ShardConfig {
            cores,
            frame_size_max: self.frame_size_max,
            handshake_timeout_us: self.handshake_timeout.as_micros() as u64,
            idle_timeout_us: self.idle_timeout.as_micros() as u64,
            queue: self.queue,
            dedup_entries_max: limits::DEDUP_ENTRIES_PER_SHARD_MAX,
            dedup_window_us: limits::DEDUP_WINDOW.as_micros() as u64,
            keys: accounts.keys,
            directory: accounts.directory,
            generations: accounts.generations,
            registration: self.registration,
            durability: self.durability,
            log_segment_bytes_max: self.log_segment_bytes,
        }
    }
}

/// The account state every shard shares.
#[derive(Debug, Clone)]
pub struct ShardAccounts {
    pub keys: KeyAuthority,
    pub directory: Arc<Directory>,
    pub generations: Arc<HashMap<UserId, u32>>,
}

/// The TLS settings from the `--tls-*` flags over the file's `[tls]` table over defaults.
fn resolve_tls(args: &ServeArgs, file: TlsFile, plain: SocketAddr) -> Result<Option<TlsSettings>, ConfigError> {
    let cert = args.tls_cert.clone().or(file.cert);
    let key = args.tls_key.clone().or(file.key);
    let Some(listen) = args.tls_listen.or(file.listen) else {
        if cert.is_some() || key.is_some() {
            return Err(ConfigError::TlsWithoutListen);
        }
        return Ok(None);
    };
    let (Some(cert), Some(key)) = (cert, key) else { return Err(ConfigError::TlsWithoutCertificate) };
    if listen == plain && listen.port() != 0 {
        return Err(ConfigError::TlsSameAddress { addr: listen });
    }
    Ok(Some(TlsSettings {
        listen,
        cert,
        key,
        handshake_timeout: duration_in_range(
            "tls-handshake-timeout",
            args.tls_handshake_timeout.or(file.handshake_timeout).unwrap_or(limits::TLS_HANDSHAKE_TIMEOUT_DEFAULT),
            Duration::from_millis(1),
        )?,
        cert_check_interval: args
            .tls_cert_check_interval
            .or(file.cert_check_interval)
            .unwrap_or(limits::TLS_CERT_CHECK_INTERVAL_DEFAULT),
    }))
}

fn read_file(path: &Path) -> Result<ServeFile, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile { path: path.to_owned(), source })?;
    toml::from_str(&text).map_err(|error| ConfigError::ParseFile { path: path.to_owned(), message: error.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_defaults_fill_the_rest() {
        let path = std::env::temp_dir().join(format!("ringline-config-{}.toml", std::process::id()));
        std::fs::write(&path, "listen = \"127.0.0.1:7001\"\ncores = 3\nidle_timeout = \"2m\"\n").expect("write");
        let args = ServeArgs { cores: Some(1), config: Some(path.clone()), ..ServeArgs::default() };
        let config = ServeConfig::resolve(&args).expect("valid");
        assert_eq!(config.listen, "127.0.0.1:7001".parse().expect("addr"));
        assert_eq!(config.cores, Some(1));
        assert_eq!(config.idle_timeout, Duration::from_secs(120));
        assert_eq!(config.frame_size_max, limits::FRAME_SIZE_MAX_DEFAULT);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn bad_values_name_the_setting() {
        assert!(matches!(ServeConfig::resolve(&ServeArgs::default()), Err(ConfigError::MissingListen)));
        let listen = Some("127.0.0.1:0".parse().expect("addr"));
        let error = ServeConfig::resolve(&ServeArgs { listen, frame_size_max: Some(10), ..ServeArgs::default() })
            .expect_err("too small");
        assert!(error.to_string().starts_with("frame-size-max = 10"), "{error}");
        let error =
            ServeConfig::resolve(&ServeArgs { listen, cores: Some(0), ..ServeArgs::default() }).expect_err("no cores");
        assert!(error.to_string().contains("cores"), "{error}");
        let error = ServeConfig::resolve(&ServeArgs { listen, log_segment_bytes: Some(5000), ..ServeArgs::default() })
            .expect_err("not whole pages");
        assert!(error.to_string().contains("multiple of 4096"), "{error}");
        let config = ServeConfig::resolve(&ServeArgs {
            listen,
            durability: Some(DurabilityLevel::Async),
            durability_flush_interval: Some(Duration::from_millis(3)),
            ..ServeArgs::default()
        })
        .expect("valid");
        assert_eq!(config.durability, Durability::Async { flush_interval: Duration::from_millis(3) });
        assert_eq!(
            ServeConfig::resolve(&ServeArgs { listen, ..ServeArgs::default() }).expect("valid").durability,
            Durability::Sync
        );
        let error = ServeConfig::resolve(&ServeArgs {
            listen,
            io_coalesce: Some(Duration::from_millis(101)),
            ..ServeArgs::default()
        })
        .expect_err("too long");
        assert!(error.to_string().starts_with("io-coalesce = 101ms"), "{error}");
        let config =
            ServeConfig::resolve(&ServeArgs { listen, io_coalesce: Some(Duration::ZERO), ..ServeArgs::default() })
                .expect("zero turns it off");
        assert_eq!(config.io_coalesce, Duration::ZERO);
    }

    #[test]
    fn metrics_and_alert_thresholds_come_from_flags_file_or_defaults() {
        let path = std::env::temp_dir().join(format!("ringline-config-alerts-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:7001\"\nmetrics = \"127.0.0.1:9100\"\nalert_offline_messages = 50\n\
             alert_channel_depth = 0\n",
        )
        .expect("write");
        let args = ServeArgs { config: Some(path.clone()), alert_offline_messages: Some(60), ..ServeArgs::default() };
        let config = ServeConfig::resolve(&args).expect("valid");
        assert_eq!(config.metrics, Some("127.0.0.1:9100".parse().expect("addr")));
        assert_eq!(config.alerts.offline_messages, 60, "the flag wins");
        assert_eq!(config.alerts.channel_depth, 0, "the file turns it off");
        assert_eq!(config.alerts.offline_bytes, limits::ALERT_OFFLINE_BYTES_DEFAULT);
        assert_eq!(config.alerts.outbound_bytes, limits::ALERT_OUTBOUND_BYTES_DEFAULT);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn tls_comes_from_flags_or_the_tls_table_and_needs_all_its_parts() {
        let path = std::env::temp_dir().join(format!("ringline-config-tls-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:7001\"\n[tls]\nlisten = \"127.0.0.1:7443\"\ncert = \"c.pem\"\nkey = \"k.pem\"\n\
             handshake_timeout = \"3s\"\n",
        )
        .expect("write");
        let args = ServeArgs { config: Some(path.clone()), tls_key: Some("other.pem".into()), ..ServeArgs::default() };
        let tls = ServeConfig::resolve(&args).expect("valid").tls.expect("tls");
        assert_eq!(tls.listen, "127.0.0.1:7443".parse().expect("addr"));
        assert_eq!((tls.cert.as_path(), tls.key.as_path()), (Path::new("c.pem"), Path::new("other.pem")));
        assert_eq!(tls.handshake_timeout, Duration::from_secs(3));
        assert_eq!(tls.cert_check_interval, limits::TLS_CERT_CHECK_INTERVAL_DEFAULT);
        let _ = std::fs::remove_file(path);

        let listen = Some("127.0.0.1:7000".parse().expect("addr"));
        assert!(ServeConfig::resolve(&ServeArgs { listen, ..ServeArgs::default() }).expect("valid").tls.is_none());
        let tls_listen = Some("127.0.0.1:7443".parse().expect("addr"));
        let error =
            ServeConfig::resolve(&ServeArgs { listen, tls_listen, ..ServeArgs::default() }).expect_err("no cert");
        assert!(matches!(error, ConfigError::TlsWithoutCertificate), "{error}");
        let error = ServeConfig::resolve(&ServeArgs { listen, tls_cert: Some("c".into()), ..ServeArgs::default() })
            .expect_err("no listener");
        assert!(matches!(error, ConfigError::TlsWithoutListen), "{error}");
        let error = ServeConfig::resolve(&ServeArgs {
            listen,
            tls_listen: listen,
            tls_cert: Some("c".into()),
            tls_key: Some("k".into()),
            ..ServeArgs::default()
        })
        .expect_err("same address");
        assert!(matches!(error, ConfigError::TlsSameAddress { .. }), "{error}");
    }

    /// `serve --help` states every default; the figures it states are the ones `limits.rs` holds.
    #[test]
    fn the_help_states_each_default_from_limits() {
        use clap::CommandFactory;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let help = Wrapper::command().render_long_help().to_string();
        let seconds = |duration: Duration| format!("default {}s", duration.as_secs());
        for expected in [
            format!("default {}", limits::LISTEN_BACKLOG_DEFAULT),
            format!("default {}", limits::FRAME_SIZE_MAX_DEFAULT),
            seconds(limits::HANDSHAKE_TIMEOUT_DEFAULT),
            seconds(limits::IDLE_TIMEOUT_DEFAULT),
            format!("default {}", limits::OFFLINE_QUEUE_MESSAGES_MAX_DEFAULT),
            format!("default {}", limits::OFFLINE_QUEUE_BYTES_MAX_DEFAULT),
            format!("default {}", limits::CORE_QUEUE_BYTES_MAX_DEFAULT),
            format!("default {}days", limits::OFFLINE_AGE_MAX_DEFAULT.as_secs() / 86_400),
            seconds(limits::SHUTDOWN_GRACE_DEFAULT),
            format!("default {}ms", limits::IO_COALESCE_DEFAULT.as_millis()),
            format!("default {}m", limits::PIN_TTL_DEFAULT.as_secs() / 60),
            format!("default {}", limits::ALERT_OFFLINE_MESSAGES_DEFAULT),
            format!("default {}", limits::ALERT_OFFLINE_BYTES_DEFAULT),
            format!("default {}", limits::ALERT_CHANNEL_DEPTH_DEFAULT),
            format!("default {}", limits::ALERT_OUTBOUND_BYTES_DEFAULT),
            format!("default {}ms", limits::LOG_FLUSH_INTERVAL_DEFAULT.as_millis()),
            format!("Default {}", limits::LOG_SEGMENT_BYTES_DEFAULT),
            format!("Default {}s", limits::TLS_HANDSHAKE_TIMEOUT_DEFAULT.as_secs()),
            seconds(limits::TLS_CERT_CHECK_INTERVAL_DEFAULT),
        ] {
            // Long lines wrap: compare with the help's words joined by single spaces.
            let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(flat.contains(&expected), "serve --help does not say `{expected}`:\n{help}");
        }
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let path = std::env::temp_dir().join(format!("ringline-config-bad-{}.toml", std::process::id()));
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\nlisten_adress = 1\n").expect("write");
        let args = ServeArgs { config: Some(path.clone()), ..ServeArgs::default() };
        assert!(matches!(ServeConfig::resolve(&args), Err(ConfigError::ParseFile { .. })));
        let _ = std::fs::remove_file(path);
    }
}
