//! The `serve` configuration: command-line flags, an optional TOML file with the same keys, and the checked
//! result. Owns defaults (from `limits.rs`), precedence (flag over file over default) and validation with a
//! clear message per bad value. Does not open sockets or files other than the config file.
//!
//! Each setting is listed once, in `ServeArgs`: clap reads it from the command line, serde from the file, and
//! `lay_over` puts the flags given over the file's settings in one generic step, so a new setting is one
//! field (with its doc, which is its `--help` text) plus its default and check in `ServeConfig::resolve`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use std::collections::HashMap;

use wire::UserId;

use ringline_core::account::{Directory, KeyAuthority, RegistrationLimits};

use crate::rt::pin_sender::PinSenderKind;
use ringline_core::limits;
use ringline_core::metrics::AlertThresholds;
use ringline_core::shard::{Durability, QueueLimits, ShardConfig};

/// The data directory when none is given.
pub const DATA_DIR_DEFAULT: &str = "ringline-data";

/// The control socket's file name in the data directory, when `--admin-socket` is not given.
pub const ADMIN_SOCKET_FILE: &str = "admin.sock";

/// `--durability`: what a server ACK promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
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

/// `--log-format`: how log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line of text per event: time, level, target, message, fields (for people and journald).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the event's fields (for log
    /// shippers: Vector, Fluent Bit, Promtail).
    Json,
}

/// Flags of `ringline serve`. Every one can also be set in the `--config` file (same name, `_` for `-`; the
/// `--tls-*` flags go in a `[tls]` table, without the prefix: `[tls] listen = ...`), except `--config`.
#[derive(Debug, Clone, Default, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    #[serde(skip)]
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
    #[serde(default, with = "humantime_text")]
    pub handshake_timeout: Option<Duration>,
    /// Time without progress (no frame received, none of its bytes read) after which a client is closed,
    /// e.g. 180s; default 180s.
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_text")]
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
    #[serde(default, with = "humantime_text")]
    pub queue_age_max: Option<Duration>,
    /// Time SIGTERM waits for in-flight work before closing connections hard, e.g. 10s; default 10s.
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_text")]
    pub shutdown_grace: Option<Duration>,
    /// Shortest time between two socket-readiness wake-ups of a core, e.g. 1ms; 0s: wake on every event. A
    /// core woken again sooner first sleeps out the rest, so that under load each wake-up serves a batch of
    /// connections (a wake-up costs several io_uring submissions and a context switch); an event after a
    /// quiet spell is served at once. Adds at most this much to a message's latency, at most 100ms; default
    /// 1ms.
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_text")]
    pub io_coalesce: Option<Duration>,
    /// Where registration PINs go: `log` (the server log; development), `file:PATH` (one line per PIN),
    /// or `command:PROGRAM` (runs PROGRAM PHONE PIN, e.g. an SMS gateway client); default log.
    #[arg(long)]
    #[serde(default, with = "pin_sender_text")]
    pub pin_sender: Option<PinSenderKind>,
    /// How long a registration PIN stays valid, e.g. 10m; default 10m.
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_text")]
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
    #[serde(default, with = "humantime_text")]
    pub durability_flush_interval: Option<Duration>,
    /// Bytes after which a core's log segment is closed and a new one started (multiple of 4096). Disk use
    /// stays within about max(2 segments, 2 × the pending messages' size) per core: compaction rewrites
    /// what is pending and deletes older segments. Default 67108864 (64 MiB).
    #[arg(long)]
    pub log_segment_bytes: Option<u64>,
    /// How log lines are written to stderr: `text` (one line per event) or `json` (one JSON object per line
    /// with timestamp, level, target, message and the event's fields, for log shippers); default text. The
    /// filter is --log-level (or RINGLINE_LOG) either way.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// The local control socket for `ringline admin` (a Unix socket, mode 0600: its file permissions are
    /// the access control); default DATA_DIR/admin.sock.
    #[arg(long)]
    pub admin_socket: Option<PathBuf>,
    /// The `--tls-*` flags; the `[tls]` table of the file.
    #[command(flatten)]
    #[serde(default)]
    pub tls: TlsArgs,
}

/// The `--tls-*` flags of `ringline serve`; in the `--config` file, the `[tls]` table (without the prefix).
#[derive(Debug, Clone, Default, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsArgs {
    /// Address to accept native-protocol connections over TLS on, e.g. 0.0.0.0:7443 (port 0 picks a free
    /// port); needs --tls-cert and --tls-key. Inside TLS the protocol is unchanged; ALPN is `ringline/1`.
    /// The plain --listen stays for trusted networks and tests. Default: no TLS listener.
    #[arg(id = "tls_listen", long = "tls-listen", value_name = "TLS_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// PEM file with the certificate chain, server certificate first (`ringline tls dev-cert` makes a
    /// self-signed one for development). Reloaded on SIGHUP and when the file changes.
    #[arg(id = "tls_cert", long = "tls-cert", value_name = "TLS_CERT")]
    pub cert: Option<PathBuf>,
    /// PEM file with the certificate's private key (PKCS#8, RSA or SEC1).
    #[arg(id = "tls_key", long = "tls-key", value_name = "TLS_KEY")]
    pub key: Option<PathBuf>,
    /// Time a TLS connection has, from accept, to complete its TLS handshake, e.g. 10s. (HELLO must also come
    /// within --handshake-timeout of accept.) Default 10s.
    #[arg(id = "tls_handshake_timeout", long = "tls-handshake-timeout", value_name = "TLS_HANDSHAKE_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_text")]
    pub handshake_timeout: Option<Duration>,
    /// How often the certificate and key files are checked for a change, which reloads them like SIGHUP,
    /// e.g. 5s; 0 reloads only on SIGHUP; default 5s.
    #[arg(id = "tls_cert_check_interval", long = "tls-cert-check-interval", value_name = "TLS_CERT_CHECK_INTERVAL", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_text")]
    pub cert_check_interval: Option<Duration>,
}

/// A duration setting as humantime text (`10s`, `30days`) in the file; `format_duration` writes what
/// `parse_duration` reads back exactly.
mod humantime_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => serializer.serialize_some(&humantime::format_duration(*duration).to_string()),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(deserializer)?;
        text.map(|text| humantime::parse_duration(&text).map_err(serde::de::Error::custom)).transpose()
    }
}

/// `pin_sender` as the text `--pin-sender` takes: `log`, `file:PATH` or `command:PROGRAM`.
mod pin_sender_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::rt::pin_sender::PinSenderKind;

    pub fn serialize<S: Serializer>(value: &Option<PinSenderKind>, serializer: S) -> Result<S::Ok, S::Error> {
        let path_text = |kind: &str, path: &std::path::Path| match path.to_str() {
            Some(path) => Ok(format!("{kind}:{path}")),
            None => Err(serde::ser::Error::custom(format!("pin sender {kind} path {path:?} is not UTF-8"))),
        };
        match value {
            None => serializer.serialize_none(),
            Some(PinSenderKind::Log) => serializer.serialize_some("log"),
            Some(PinSenderKind::File(path)) => serializer.serialize_some(&path_text("file", path)?),
            Some(PinSenderKind::Command(program)) => serializer.serialize_some(&path_text("command", program)?),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<PinSenderKind>, D::Error> {
        let text: Option<String> = Option::deserialize(deserializer)?;
        text.map(|text| text.parse().map_err(serde::de::Error::custom)).transpose()
    }
}

/// `over`'s settings laid over `under`'s: every setting `over` has (a flag given) replaces `under`'s, table by
/// table; the rest stay. Generic over the settings type, so no setting is named here.
fn lay_over<T: Serialize + DeserializeOwned>(under: &T, over: &T) -> Result<T, serde_json::Error> {
    fn merge(under: &mut serde_json::Map<String, serde_json::Value>, over: serde_json::Map<String, serde_json::Value>) {
        for (key, value) in over {
            match (under.get_mut(&key), value) {
                (_, serde_json::Value::Null) => {}
                (Some(serde_json::Value::Object(under)), serde_json::Value::Object(over)) => merge(under, over),
                (_, value) => {
                    under.insert(key, value);
                }
            }
        }
    }
    let (serde_json::Value::Object(mut merged), serde_json::Value::Object(over)) =
        (serde_json::to_value(under)?, serde_json::to_value(over)?)
    else {
        return Err(serde::ser::Error::custom("settings are not a table"));
    };
    merge(&mut merged, over);
    serde_json::from_value(serde_json::Value::Object(merged))
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
    #[error("writing the configuration as TOML: {message}")]
    Render { message: String },
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
    /// How the binary writes its logs (main.rs sets logging up with it).
    pub log_format: LogFormat,
    /// The TLS listener, if any.
    pub tls: Option<TlsSettings>,
    /// The control socket's path.
    pub admin_socket: PathBuf,
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
    pub fn resolve(flags: &ServeArgs) -> Result<Self, ConfigError> {
        let settings = match &flags.config {
            Some(path) => lay_over(&read_file(path)?, flags)
                .map_err(|error| ConfigError::ParseFile { path: path.to_owned(), message: error.to_string() })?,
            None => flags.clone(),
        };
        let listen = settings.listen.ok_or(ConfigError::MissingListen)?;
        let tls = resolve_tls(settings.tls, listen)?;
        let cores = match settings.cores {
            Some(cores) => Some(in_range("cores", cores, 1, limits::CORES_MAX)?),
            None => None,
        };
        let second = Duration::from_secs(1);
        let millisecond = Duration::from_millis(1);
        let data_dir = settings.data_dir.unwrap_or_else(|| PathBuf::from(DATA_DIR_DEFAULT));
        Ok(Self {
            listen,
            cores,
            admin_socket: settings.admin_socket.unwrap_or_else(|| data_dir.join(ADMIN_SOCKET_FILE)),
            data_dir,
            backlog: in_range(
                "backlog",
                settings.backlog.unwrap_or(limits::LISTEN_BACKLOG_DEFAULT),
                1,
                i32::MAX as u32,
            )?,
            frame_size_max: in_range(
                "frame-size-max",
                settings.frame_size_max.unwrap_or(limits::FRAME_SIZE_MAX_DEFAULT),
                wire::FRAME_SIZE_MAX_MIN,
                limits::OUTBOUND_BYTES_MAX - wire::LENGTH_PREFIX_BYTES,
            )?,
            handshake_timeout: duration_in_range(
                "handshake-timeout",
                settings.handshake_timeout.unwrap_or(limits::HANDSHAKE_TIMEOUT_DEFAULT),
                millisecond,
            )?,
            idle_timeout: duration_in_range(
                "idle-timeout",
                settings.idle_timeout.unwrap_or(limits::IDLE_TIMEOUT_DEFAULT),
                second,
            )?,
            queue: QueueLimits {
                messages_per_user_max: in_range(
                    "queue-messages-max",
                    settings.queue_messages_max.unwrap_or(limits::OFFLINE_QUEUE_MESSAGES_MAX_DEFAULT),
                    1,
                    usize::MAX,
                )?,
                bytes_per_user_max: in_range(
                    "queue-bytes-max",
                    settings.queue_bytes_max.unwrap_or(limits::OFFLINE_QUEUE_BYTES_MAX_DEFAULT),
                    1,
                    u64::MAX,
                )?,
                bytes_per_core_max: in_range(
                    "core-queue-bytes-max",
                    settings.core_queue_bytes_max.unwrap_or(limits::CORE_QUEUE_BYTES_MAX_DEFAULT),
                    1,
                    u64::MAX,
                )?,
                age_max_us: duration_in_range(
                    "queue-age-max",
                    settings.queue_age_max.unwrap_or(limits::OFFLINE_AGE_MAX_DEFAULT),
                    second,
                )?
                .as_micros() as u64,
            },
            shutdown_grace: settings.shutdown_grace.unwrap_or(limits::SHUTDOWN_GRACE_DEFAULT),
            io_coalesce: duration_at_most(
                "io-coalesce",
                settings.io_coalesce.unwrap_or(limits::IO_COALESCE_DEFAULT),
                limits::IO_COALESCE_MAX,
            )?,
            pin_sender: settings.pin_sender.unwrap_or(PinSenderKind::Log),
            registration: RegistrationLimits::standard(
                duration_in_range("pin-ttl", settings.pin_ttl.unwrap_or(limits::PIN_TTL_DEFAULT), second)?.as_micros()
                    as u64,
            ),
            metrics: settings.metrics,
            alerts: AlertThresholds {
                offline_messages: settings.alert_offline_messages.unwrap_or(limits::ALERT_OFFLINE_MESSAGES_DEFAULT),
                offline_bytes: settings.alert_offline_bytes.unwrap_or(limits::ALERT_OFFLINE_BYTES_DEFAULT),
                channel_depth: settings.alert_channel_depth.unwrap_or(limits::ALERT_CHANNEL_DEPTH_DEFAULT),
                outbound_bytes: settings.alert_outbound_bytes.unwrap_or(limits::ALERT_OUTBOUND_BYTES_DEFAULT),
            },
            durability: match settings.durability.unwrap_or_default() {
                DurabilityLevel::Sync => Durability::Sync,
                DurabilityLevel::Async => Durability::Async {
                    flush_interval: duration_in_range(
                        "durability-flush-interval",
                        settings.durability_flush_interval.unwrap_or(limits::LOG_FLUSH_INTERVAL_DEFAULT),
                        millisecond,
                    )?,
                },
            },
            log_segment_bytes: {
                let bytes = in_range(
                    "log-segment-bytes",
                    settings.log_segment_bytes.unwrap_or(limits::LOG_SEGMENT_BYTES_DEFAULT),
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
            log_format: settings.log_format.unwrap_or_default(),
            tls,
        })
    }

    /// The settings that give exactly this configuration, each default filled in: a `--config` file of them
    /// resolves to the same configuration. Settings without a default that are not set (`cores`, `metrics`,
    /// the TLS listener) stay `None`; `durability_flush_interval` with `sync` is the one `async` would use. Every field is named (no `..`), so a new setting must be added here.
    pub fn effective_args(&self) -> ServeArgs {
        let (durability, durability_flush_interval) = match self.durability {
            // Unused with sync; shown as what async would use.
            Durability::Sync => (DurabilityLevel::Sync, Some(limits::LOG_FLUSH_INTERVAL_DEFAULT)),
            Durability::Async { flush_interval } => (DurabilityLevel::Async, Some(flush_interval)),
        };
        let tls = match &self.tls {
            Some(tls) => TlsArgs {
                listen: Some(tls.listen),
                cert: Some(tls.cert.clone()),
                key: Some(tls.key.clone()),
                handshake_timeout: Some(tls.handshake_timeout),
                cert_check_interval: Some(tls.cert_check_interval),
            },
            None => TlsArgs {
                listen: None,
                cert: None,
                key: None,
                handshake_timeout: Some(limits::TLS_HANDSHAKE_TIMEOUT_DEFAULT),
                cert_check_interval: Some(limits::TLS_CERT_CHECK_INTERVAL_DEFAULT),
            },
        };
        ServeArgs {
            listen: Some(self.listen),
            cores: self.cores,
            data_dir: Some(self.data_dir.clone()),
            config: None,
            backlog: Some(self.backlog),
            frame_size_max: Some(self.frame_size_max),
            handshake_timeout: Some(self.handshake_timeout),
            idle_timeout: Some(self.idle_timeout),
            queue_messages_max: Some(self.queue.messages_per_user_max),
            queue_bytes_max: Some(self.queue.bytes_per_user_max),
            core_queue_bytes_max: Some(self.queue.bytes_per_core_max),
            queue_age_max: Some(Duration::from_micros(self.queue.age_max_us)),
            shutdown_grace: Some(self.shutdown_grace),
            io_coalesce: Some(self.io_coalesce),
            pin_sender: Some(self.pin_sender.clone()),
            pin_ttl: Some(Duration::from_micros(self.registration.pin_ttl_us)),
            metrics: self.metrics,
            alert_offline_messages: Some(self.alerts.offline_messages),
            alert_offline_bytes: Some(self.alerts.offline_bytes),
            alert_channel_depth: Some(self.alerts.channel_depth),
            alert_outbound_bytes: Some(self.alerts.outbound_bytes),
            durability: Some(durability),
            durability_flush_interval,
            log_segment_bytes: Some(self.log_segment_bytes),
            log_format: Some(self.log_format),
            admin_socket: Some(self.admin_socket.clone()),
            tls,
        }
    }

    /// This configuration as a TOML `--config` file (`ringline config print`): every setting with its
    /// effective value, then a comment naming each setting left unset. No setting holds a secret: the TLS key
    /// is a path, and the file it names is never read here.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        let args = self.effective_args();
        let failed = |message: String| ConfigError::Render { message };
        let mut text =
            "# ringline serve: the effective configuration (defaults, under the --config file, under the flags)\n"
                .to_owned();
        text.push_str(&toml::to_string(&args).map_err(|error| failed(error.to_string()))?);
        let serde_json::Value::Object(table) =
            serde_json::to_value(&args).map_err(|error| failed(error.to_string()))?
        else {
            return Err(failed("settings are not a table".to_owned()));
        };
        let unset = setting_names(&table, "").into_iter().filter(|(_, set)| !set).map(|(name, _)| name);
        let unset: Vec<String> = unset.collect();
        if !unset.is_empty() {
            text.push_str(&format!("\n# not set: {}\n", unset.join(", ")));
        }
        Ok(text)
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

/// Every setting's name in `table` (a serialized `ServeArgs`; a table's settings as `table.name`) and whether
/// it has a value.
pub fn setting_names(table: &serde_json::Map<String, serde_json::Value>, prefix: &str) -> Vec<(String, bool)> {
    let mut names = Vec::new();
    for (key, value) in table {
        match value {
            serde_json::Value::Object(inner) => names.extend(setting_names(inner, &format!("{prefix}{key}."))),
            value => names.push((format!("{prefix}{key}"), !value.is_null())),
        }
    }
    names
}

/// The TLS settings from the `--tls-*` flags (over the file's `[tls]` table) over defaults.
fn resolve_tls(tls: TlsArgs, plain: SocketAddr) -> Result<Option<TlsSettings>, ConfigError> {
    let Some(listen) = tls.listen else {
        if tls.cert.is_some() || tls.key.is_some() {
            return Err(ConfigError::TlsWithoutListen);
        }
        return Ok(None);
    };
    let (Some(cert), Some(key)) = (tls.cert, tls.key) else { return Err(ConfigError::TlsWithoutCertificate) };
    if listen == plain && listen.port() != 0 {
        return Err(ConfigError::TlsSameAddress { addr: listen });
    }
    Ok(Some(TlsSettings {
        listen,
        cert,
        key,
        handshake_timeout: duration_in_range(
            "tls-handshake-timeout",
            tls.handshake_timeout.unwrap_or(limits::TLS_HANDSHAKE_TIMEOUT_DEFAULT),
            Duration::from_millis(1),
        )?,
        cert_check_interval: tls.cert_check_interval.unwrap_or(limits::TLS_CERT_CHECK_INTERVAL_DEFAULT),
    }))
}

fn read_file(path: &Path) -> Result<ServeArgs, ConfigError> {
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
    fn the_admin_socket_is_in_the_data_directory_unless_given() {
        let listen = Some("127.0.0.1:7001".parse().expect("addr"));
        let config = ServeConfig::resolve(&ServeArgs { listen, ..ServeArgs::default() }).expect("valid");
        assert_eq!(config.admin_socket, PathBuf::from("ringline-data/admin.sock"));
        let data_dir = Some(PathBuf::from("/srv/ringline"));
        let config = ServeConfig::resolve(&ServeArgs { listen, data_dir, ..ServeArgs::default() }).expect("valid");
        assert_eq!(config.admin_socket, PathBuf::from("/srv/ringline/admin.sock"));
        let admin_socket = Some(PathBuf::from("/run/ringline/admin.sock"));
        let config = ServeConfig::resolve(&ServeArgs { listen, admin_socket, ..ServeArgs::default() }).expect("valid");
        assert_eq!(config.admin_socket, PathBuf::from("/run/ringline/admin.sock"));
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
        let args = ServeArgs {
            config: Some(path.clone()),
            tls: TlsArgs { key: Some("other.pem".into()), ..TlsArgs::default() },
            ..ServeArgs::default()
        };
        let tls = ServeConfig::resolve(&args).expect("valid").tls.expect("tls");
        assert_eq!(tls.listen, "127.0.0.1:7443".parse().expect("addr"));
        assert_eq!((tls.cert.as_path(), tls.key.as_path()), (Path::new("c.pem"), Path::new("other.pem")));
        assert_eq!(tls.handshake_timeout, Duration::from_secs(3));
        assert_eq!(tls.cert_check_interval, limits::TLS_CERT_CHECK_INTERVAL_DEFAULT);
        let _ = std::fs::remove_file(path);

        let listen = Some("127.0.0.1:7000".parse().expect("addr"));
        assert!(ServeConfig::resolve(&ServeArgs { listen, ..ServeArgs::default() }).expect("valid").tls.is_none());
        let tls_listen = Some("127.0.0.1:7443".parse().expect("addr"));
        let error = ServeConfig::resolve(&ServeArgs {
            listen,
            tls: TlsArgs { listen: tls_listen, ..TlsArgs::default() },
            ..ServeArgs::default()
        })
        .expect_err("no cert");
        assert!(matches!(error, ConfigError::TlsWithoutCertificate), "{error}");
        let error = ServeConfig::resolve(&ServeArgs {
            listen,
            tls: TlsArgs { cert: Some("c".into()), ..TlsArgs::default() },
            ..ServeArgs::default()
        })
        .expect_err("no listener");
        assert!(matches!(error, ConfigError::TlsWithoutListen), "{error}");
        let error = ServeConfig::resolve(&ServeArgs {
            listen,
            tls: TlsArgs { listen, cert: Some("c".into()), key: Some("k".into()), ..TlsArgs::default() },
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

    /// Laying flags over nothing gives the flags back, every value exact (odd durations, the largest
    /// numbers, every pin sender kind); and over a file, each flag given wins and the file fills the rest.
    #[test]
    fn laying_flags_over_the_file_keeps_every_value_exact() {
        let odd = Duration::new(90_061, 7);
        for pin_sender in
            [PinSenderKind::Log, PinSenderKind::File("/tmp/pins".into()), PinSenderKind::Command("sms".into())]
        {
            let flags = ServeArgs {
                listen: Some("[::1]:7000".parse().expect("addr")),
                cores: Some(usize::MAX),
                data_dir: Some("data dir".into()),
                queue_bytes_max: Some(u64::MAX),
                queue_age_max: Some(odd),
                pin_sender: Some(pin_sender),
                durability: Some(DurabilityLevel::Async),
                tls: TlsArgs { cert_check_interval: Some(Duration::ZERO), ..TlsArgs::default() },
                ..ServeArgs::default()
            };
            assert_eq!(lay_over(&ServeArgs::default(), &flags).expect("merges"), flags);
        }
        let file: ServeArgs = toml::from_str(
            "listen = \"127.0.0.1:1\"\ncores = 2\npin_sender = \"file:/tmp/p\"\n[tls]\nlisten = \"127.0.0.1:2\"\nkey = \"k\"\n",
        )
        .expect("parses");
        let flags = ServeArgs {
            cores: Some(3),
            config: Some("ringline.toml".into()),
            tls: TlsArgs { key: Some("flag-k".into()), ..TlsArgs::default() },
            ..ServeArgs::default()
        };
        let merged = lay_over(&file, &flags).expect("merges");
        let expected = ServeArgs {
            listen: file.listen,
            cores: Some(3),
            pin_sender: Some(PinSenderKind::File("/tmp/p".into())),
            tls: TlsArgs { listen: file.tls.listen, key: Some("flag-k".into()), ..TlsArgs::default() },
            ..ServeArgs::default()
        };
        assert_eq!(merged, expected);
    }

    #[test]
    fn log_format_comes_from_the_flag_or_the_file_and_defaults_to_text() {
        let listen = Some("127.0.0.1:1".parse().expect("addr"));
        let config = ServeConfig::resolve(&ServeArgs { listen, ..ServeArgs::default() }).expect("valid");
        assert_eq!(config.log_format, LogFormat::Text);
        let path = std::env::temp_dir().join(format!("ringline-config-log-format-{}.toml", std::process::id()));
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\nlog_format = \"json\"\n").expect("write");
        let from_file = ServeArgs { config: Some(path.clone()), ..ServeArgs::default() };
        assert_eq!(ServeConfig::resolve(&from_file).expect("valid").log_format, LogFormat::Json);
        let flag_wins = ServeArgs { log_format: Some(LogFormat::Text), ..from_file };
        assert_eq!(ServeConfig::resolve(&flag_wins).expect("valid").log_format, LogFormat::Text);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_bad_pin_sender_in_the_file_is_refused() {
        let path = std::env::temp_dir().join(format!("ringline-config-pin-{}.toml", std::process::id()));
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\npin_sender = \"carrier-pigeon\"\n").expect("write");
        let args = ServeArgs { config: Some(path.clone()), ..ServeArgs::default() };
        let error = ServeConfig::resolve(&args).expect_err("no such sender");
        assert!(error.to_string().contains("expected `log`, `file:PATH` or `command:PROGRAM`"), "{error}");
        let _ = std::fs::remove_file(path);
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
