//! `ringline top`: a live per-core view of a running engine, from its `/metrics` endpoint. Scrapes the
//! Prometheus text over plain HTTP/1.0, parses it (a small parser for the sample lines; comments are
//! skipped), computes rates between two scrapes and renders one table. Client-side only: it shares no state
//! with the engine, and parsing and rendering are pure functions so they are tested without a server.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// How long one scrape may take before `top` gives up on it.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest `/metrics` response `top` reads.
const RESPONSE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TopError {
    #[error("cannot resolve {addr}: {error}")]
    Resolve { addr: String, error: std::io::Error },
    #[error("scraping http://{addr}/metrics: {error}")]
    Io { addr: String, error: std::io::Error },
    #[error("http://{addr}/metrics answered {status:?}")]
    Status { addr: String, status: String },
    #[error("line {line} of the metrics text: {message}")]
    Parse { line: usize, message: String },
}

/// One sample line: `name{label="value",...} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// The samples of one scrape, and when it was taken.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    pub at: Instant,
}

/// Parses Prometheus or OpenMetrics text: every non-comment line is a sample.
pub fn parse(text: &str) -> Result<Vec<Sample>, TopError> {
    let mut samples = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let error = |message: &str| TopError::Parse { line: index + 1, message: format!("{message}: {line:?}") };
        let (name, labels, rest) = match line.find('{') {
            Some(open) => {
                let close = line.rfind('}').filter(|&close| close > open).ok_or_else(|| error("unclosed labels"))?;
                (
                    &line[..open],
                    parse_labels(&line[open + 1..close]).ok_or_else(|| error("bad labels"))?,
                    &line[close + 1..],
                )
            }
            None => {
                let space = line.find(' ').ok_or_else(|| error("no value"))?;
                (&line[..space], Vec::new(), &line[space..])
            }
        };
        let value = rest.split_whitespace().next().ok_or_else(|| error("no value"))?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            value => value.parse().map_err(|_| error("bad value"))?,
        };
        samples.push(Sample { name: name.to_owned(), labels, value });
    }
    Ok(samples)
}

/// `k="v",k2="v2"` (values may hold escaped quotes and backslashes).
fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let equals = rest.find('=')?;
        let key = rest[..equals].trim().to_owned();
        let after = rest[equals + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (at, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break at,
                other => value.push(other),
            }
        };
        labels.push((key, value));
        rest = after[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Some(labels)
}

/// Fetches `http://addr/metrics` and parses it.
pub fn scrape(addr: &str) -> Result<Scrape, TopError> {
    let socket = addr
        .to_socket_addrs()
        .map_err(|error| TopError::Resolve { addr: addr.to_owned(), error })?
        .next()
        .ok_or_else(|| TopError::Resolve { addr: addr.to_owned(), error: std::io::Error::other("no address") })?;
    let io = |error| TopError::Io { addr: addr.to_owned(), error };
    let mut stream = TcpStream::connect_timeout(&socket, SCRAPE_TIMEOUT).map_err(io)?;
    stream.set_read_timeout(Some(SCRAPE_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(SCRAPE_TIMEOUT)).map_err(io)?;
    let at = Instant::now();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\nAccept: text/plain\r\n\r\n").map_err(io)?;
    let mut response = Vec::new();
    stream.take(RESPONSE_BYTES_MAX).read_to_end(&mut response).map_err(io)?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(TopError::Status { addr: addr.to_owned(), status: status.to_owned() });
    }
    Ok(Scrape { samples: parse(body)?, at })
}

/// Per-core numbers `top` shows, from one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
struct CoreRow {
    connections: f64,
    sessions: f64,
    logins: f64,
    messages_in: f64,
    messages_out: f64,
    offline_messages: f64,
    offline_bytes: f64,
    outbound_bytes: f64,
    mesh_depth: f64,
    alerts: Vec<String>,
}

fn rows(samples: &[Sample]) -> Vec<(String, CoreRow)> {
    let cores: BTreeSet<u32> =
        samples.iter().filter_map(|sample| sample.label("core")).filter_map(|core| core.parse().ok()).collect();
    cores
        .into_iter()
        .map(|core| {
            let core = core.to_string();
            let mut row = CoreRow::default();
            for sample in samples.iter().filter(|sample| sample.label("core") == Some(core.as_str())) {
                let value = sample.value;
                match sample.name.as_str() {
                    "ringline_connections" => row.connections += value,
                    "ringline_sessions" => row.sessions += value,
                    "ringline_logins_total" => row.logins += value,
                    "ringline_messages_in_total" => row.messages_in += value,
                    "ringline_messages_out_total" => row.messages_out += value,
                    "ringline_offline_queue_messages" => row.offline_messages += value,
                    "ringline_offline_queue_bytes" => row.offline_bytes += value,
                    "ringline_outbound_bytes" => row.outbound_bytes += value,
                    "ringline_mesh_outbox_messages" | "ringline_mesh_channel_messages" => row.mesh_depth += value,
                    "ringline_alert" if value > 0.0 => {
                        row.alerts.push(sample.label("queue").unwrap_or("?").to_owned());
                    }
                    _ => {}
                }
            }
            (core, row)
        })
        .collect()
}

fn rate(current: f64, previous: Option<f64>, seconds: f64) -> String {
    match previous {
        Some(previous) if seconds > 0.0 => format!("{:.1}", ((current - previous) / seconds).max(0.0)),
        _ => "-".to_owned(),
    }
}

/// The table's columns before ALERTS, each right-aligned to its width; ALERTS follows after two spaces.
const COLUMNS: [(&str, usize); 10] = [
    ("CORE", 4),
    ("CONNS", 9),
    ("SESSIONS", 9),
    ("LOGINS/S", 9),
    ("MSG_IN/S", 10),
    ("MSG_OUT/S", 10),
    ("OFFLINE_MSGS", 12),
    ("OFFLINE_BYTES", 14),
    ("OUTBOUND_B", 14),
    ("MESH_DEPTH", 10),
];

/// One line of the table: `cells` under `COLUMNS`, then `alerts`.
fn line(cells: [String; 10], alerts: &str) -> String {
    let mut line = String::new();
    for ((_, width), cell) in COLUMNS.iter().zip(cells) {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&format!("{cell:>width$}"));
    }
    line.push_str("  ");
    line.push_str(alerts);
    line.push('\n');
    line
}

/// Renders the table of `current`, with rates per second against `previous` if given.
pub fn render(previous: Option<&Scrape>, current: &Scrape) -> String {
    let seconds = previous.map_or(0.0, |previous| current.at.duration_since(previous.at).as_secs_f64());
    let before = previous.map(|previous| rows(&previous.samples));
    let mut table = line(COLUMNS.map(|(name, _)| name.to_owned()), "ALERTS");
    for (core, row) in rows(&current.samples) {
        let old = before.as_ref().and_then(|before| before.iter().find(|(c, _)| *c == core)).map(|(_, row)| row);
        let alerts = if row.alerts.is_empty() { "-".to_owned() } else { row.alerts.join(",") };
        let cells = [
            core,
            row.connections.to_string(),
            row.sessions.to_string(),
            rate(row.logins, old.map(|old| old.logins), seconds),
            rate(row.messages_in, old.map(|old| old.messages_in), seconds),
            rate(row.messages_out, old.map(|old| old.messages_out), seconds),
            row.offline_messages.to_string(),
            row.offline_bytes.to_string(),
            row.outbound_bytes.to_string(),
            row.mesh_depth.to_string(),
        ];
        table.push_str(&line(cells, &alerts));
    }
    table
}

/// `ringline top`: with `once`, two scrapes `interval` apart and one table; otherwise a table every
/// `interval` until interrupted (a failed scrape is shown and retried).
pub fn run(addr: &str, once: bool, interval: Duration, out: &mut impl Write) -> Result<(), TopError> {
    let io = |error| TopError::Io { addr: addr.to_owned(), error };
    let mut previous = scrape(addr)?;
    if once {
        std::thread::sleep(interval);
        let current = scrape(addr)?;
        out.write_all(render(Some(&previous), &current).as_bytes()).map_err(io)?;
        return Ok(());
    }
    loop {
        std::thread::sleep(interval);
        let screen = match scrape(addr) {
            Ok(current) => {
                let table = render(Some(&previous), &current);
                previous = current;
                table
            }
            Err(error) => format!("{error}\n"),
        };
        write!(out, "\x1b[2J\x1b[Hringline top: http://{addr}/metrics, every {interval:?}\n\n{screen}").map_err(io)?;
        out.flush().map_err(io)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP ringline_logins Logins.\n# TYPE ringline_logins counter\n\
        ringline_logins_total{core=\"0\"} 10\nringline_logins_total{core=\"1\"} 4\n\
        ringline_connections{core=\"0\"} 3\nringline_cores 2\n\
        ringline_alert{core=\"1\",queue=\"offline_messages\"} 1\n\
        ringline_alert{core=\"0\",queue=\"offline_messages\"} 0\n\
        ringline_mesh_outbox_messages{core=\"0\",peer=\"1\"} 5\n\
        ringline_mesh_channel_messages{core=\"0\",peer=\"1\"} 2\n\
        ringline_x_bucket{le=\"+Inf\",core=\"0\"} 7\nweird{a=\"q\\\"uote\",b=\"c\"} 1.5e3\n# EOF\n";

    #[test]
    fn parses_samples_labels_and_special_values() {
        let samples = parse(TEXT).expect("valid");
        assert_eq!(samples.len(), 10);
        assert_eq!(samples[0].name, "ringline_logins_total");
        assert_eq!(samples[0].labels, vec![("core".to_owned(), "0".to_owned())]);
        assert_eq!(samples[3].labels, vec![]);
        assert_eq!(samples[9].label("a"), Some("q\"uote"));
        assert_eq!(samples[9].value, 1500.0);
        assert!(matches!(parse("ringline_x{core=\"0\" 1"), Err(TopError::Parse { line: 1, .. })));
        assert!(matches!(parse("ringline_x nope"), Err(TopError::Parse { .. })));
    }

    #[test]
    fn renders_a_row_per_core_with_rates_between_scrapes() {
        let at = Instant::now();
        let previous = Scrape { samples: parse(TEXT).expect("valid"), at };
        let mut samples = previous.samples.clone();
        samples[0].value = 30.0;
        let current = Scrape { samples, at: at + Duration::from_secs(2) };
        let table = render(Some(&previous), &current);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].split_whitespace().eq([
            "CORE",
            "CONNS",
            "SESSIONS",
            "LOGINS/S",
            "MSG_IN/S",
            "MSG_OUT/S",
            "OFFLINE_MSGS",
            "OFFLINE_BYTES",
            "OUTBOUND_B",
            "MESH_DEPTH",
            "ALERTS"
        ]));
        let core0: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!((core0[0], core0[1], core0[3], core0[9], core0[10]), ("0", "3", "10.0", "7", "-"));
        let core1: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!((core1[0], core1[3], core1[10]), ("1", "0.0", "offline_messages"));
        let first = render(None, &current);
        assert_eq!(first.lines().nth(1).and_then(|line| line.split_whitespace().nth(3)), Some("-"));
    }
}
