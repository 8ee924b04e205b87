//! The monitoring files in `deploy/` against the engine: the Grafana dashboard (`deploy/grafana/ringline.json`)
//! and the Prometheus rules (`deploy/prometheus/alerts.yml`) query only metrics the engine exports; the
//! rules' thresholds and hysteresis are the engine's; `promtool` checks the rules and runs their tests
//! (`alerts_test.yml`); a real Prometheus scrapes a running engine and loads the rules.
//!
//! `promtool` and `prometheus` come from Debian's `prometheus` package. Without them a test prints
//! `skipped: install prometheus ...` and returns, unless `CI` is set: then it fails with the install command.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringline_core::metrics::{
    AlertThresholds, BuildInfo, CoreSnapshot, ProcessResources, ProcessSnapshot, QueueKind, encode_text,
};
use support::{TestServer, http_get};

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(path)
}

/// Every sample name the engine exports, from `encode_text` with two cores and the process's resources.
fn exported_names() -> BTreeSet<String> {
    let snapshots: Vec<CoreSnapshot> = (0..2)
        .map(|core| CoreSnapshot {
            core,
            cores: 2,
            outbox_messages: vec![0; 2],
            channel_messages: vec![0; 2],
            alerts: QueueKind::ALL.iter().map(|&queue| (queue, false)).collect(),
            ..CoreSnapshot::default()
        })
        .collect();
    let process = ProcessSnapshot {
        build: BuildInfo { version: "0.1.0", commit: "unknown" },
        resources: Some(ProcessResources::default()),
        ..ProcessSnapshot::default()
    };
    let text = encode_text(&snapshots, &process, &engine_thresholds());
    engine::top::parse(&text).expect("the engine's own text parses").into_iter().map(|sample| sample.name).collect()
}

/// The thresholds `ringline serve` runs with when no `--alert-*` is given.
fn engine_thresholds() -> AlertThresholds {
    let args = engine::config::ServeArgs { listen: Some("127.0.0.1:1".parse().expect("addr")), ..Default::default() };
    engine::config::ServeConfig::resolve(&args).expect("the defaults are valid").alerts
}

/// PromQL functions and keywords the files may use; any other name is a metric.
const PROMQL_WORDS: &[&str] = &[
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "label_values",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
];

/// The metric names a PromQL expression (or a Grafana `label_values(...)` query) reads. Label matchers
/// (`{...}`), ranges (`[...]`), strings and the label lists of `by`/`on`/`without`/`ignoring` are skipped.
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut index = 0;
    let mut skip_group = false;
    while index < chars.len() {
        let c = chars[index];
        let closing = match c {
            '{' => Some('}'),
            '[' => Some(']'),
            '"' => Some('"'),
            '(' if skip_group => Some(')'),
            _ => None,
        };
        if let Some(closing) = closing {
            skip_group = false;
            index += chars[index + 1..].iter().position(|&next| next == closing).map_or(chars.len(), |at| at + 2);
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == '$' {
            let start = index;
            while index < chars.len() && (chars[index].is_ascii_alphanumeric() || "_:$".contains(chars[index])) {
                index += 1;
            }
            let word: String = chars[start..index].iter().collect();
            if ["by", "without", "on", "ignoring", "group_left", "group_right"].contains(&word.as_str()) {
                skip_group = true;
            } else if word.starts_with('$') {
                // A Grafana variable.
            } else if word == "label_values" {
                // label_values(METRIC, LABEL): the metric only.
                let rest: String = chars[index..].iter().collect();
                let metric = rest.trim_start_matches(['(', ' ']).split([',', ')', '{']).next().unwrap_or_default();
                names.push(metric.trim().to_owned());
                index += rest.find(')').map_or(rest.len(), |at| at + 1);
            } else if !PROMQL_WORDS.contains(&word.as_str()) {
                names.push(word);
            }
            continue;
        }
        index += 1;
    }
    names
}

/// Every PromQL query of the dashboard: panel targets and variable queries.
fn dashboard_queries(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr" | "definition", serde_json::Value::String(query)) => out.push(query.clone()),
                    _ => dashboard_queries(value, out),
                }
            }
        }
        serde_json::Value::Array(values) => values.iter().for_each(|value| dashboard_queries(value, out)),
        _ => {}
    }
}

/// The alerting rules of alerts.yml: (alert name, its expr, its `queue` label if any).
fn alert_rules() -> Vec<(String, String, Option<String>)> {
    let text = std::fs::read_to_string(deploy("prometheus/alerts.yml")).expect("alerts.yml");
    let mut rules: Vec<(String, String, Option<String>)> = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("- alert: ") {
            rules.push((name.trim().to_owned(), String::new(), None));
        } else if let Some(expr) = trimmed.strip_prefix("expr: ") {
            let rule = rules.last_mut().expect("an expr inside a rule");
            if expr.trim() == "|" {
                let indent = line.len() - trimmed.len();
                while let Some(next) = lines.next_if(|next| next.len() - next.trim_start().len() > indent) {
                    rule.1.push_str(next.trim());
                    rule.1.push('\n');
                }
            } else {
                rule.1 = expr.to_owned();
            }
        } else if let Some(queue) = trimmed.strip_prefix("queue: ") {
            rules.last_mut().expect("a label inside a rule").2 = Some(queue.trim().to_owned());
        }
    }
    rules
}

/// Names a file's queries read that the engine does not export (`up`, Prometheus's own, is allowed).
fn unknown_names(queries: &[String], exported: &BTreeSet<String>) -> Vec<String> {
    queries
        .iter()
        .flat_map(|query| metric_names(query))
        .filter(|name| name != "up" && name != "ALERTS" && !exported.contains(name))
        .collect()
}

#[test]
fn the_name_scanner_finds_metrics_and_skips_functions_labels_and_variables() {
    assert_eq!(
        metric_names(
            "histogram_quantile(0.99, sum by (le, core) (rate(ringline_x_bucket{instance=~\"$instance\"}[$__rate_interval])))"
        ),
        ["ringline_x_bucket"]
    );
    assert_eq!(
        metric_names("a >= 3 or (b >= 2 and on (instance, core) ALERTS{alertname=\"A\"})"),
        ["a", "b", "ALERTS"]
    );
    assert_eq!(metric_names("label_values(ringline_cores, instance)"), ["ringline_cores"]);
    assert_eq!(metric_names("process_open_fds / process_max_fds"), ["process_open_fds", "process_max_fds"]);
}

#[test]
fn the_dashboard_parses_and_queries_only_metrics_the_engine_exports() {
    let text = std::fs::read_to_string(deploy("grafana/ringline.json")).expect("the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert!(dashboard["panels"].as_array().is_some_and(|panels| !panels.is_empty()), "panels");
    let mut queries = Vec::new();
    dashboard_queries(&dashboard, &mut queries);
    let exported = exported_names();
    let unknown = unknown_names(&queries, &exported);
    assert!(unknown.is_empty(), "the dashboard queries metrics the engine does not export: {unknown:?}");
    let used: BTreeSet<String> = queries.iter().flat_map(|query| metric_names(query)).collect();
    // What the dashboard is for (issue 25): queues per core, msgs/s, ACK latency, connections, alerts,
    // fd headroom, build.
    for name in [
        "ringline_offline_queue_messages",
        "ringline_mesh_channel_messages",
        "ringline_messages_in_total",
        "ringline_send_stored_latency_seconds_bucket",
        "ringline_connections",
        "ringline_alert",
        "process_open_fds",
        "process_max_fds",
        "ringline_build_info",
    ] {
        assert!(used.contains(name), "the dashboard shows no {name}");
    }
    assert!(
        queries.iter().any(|query| query.contains("histogram_quantile") && query.contains("ringline_send_stored")),
        "ACK latency as histogram quantiles"
    );
}

#[test]
fn the_alert_rules_use_exported_metrics_and_the_engines_thresholds_with_its_hysteresis() {
    let rules = alert_rules();
    let exprs: Vec<String> = rules.iter().map(|(_, expr, _)| expr.clone()).collect();
    let unknown = unknown_names(&exprs, &exported_names());
    assert!(unknown.is_empty(), "the rules query metrics the engine does not export: {unknown:?}");
    let thresholds = engine_thresholds();
    for queue in QueueKind::ALL {
        let (name, expr, _) = rules
            .iter()
            .find(|(_, _, label)| label.as_deref() == Some(queue.name()))
            .unwrap_or_else(|| panic!("no rule for queue {queue} in alerts.yml"));
        // The numbers each `>=` compares with: the threshold (raise) and where the engine clears.
        let bounds: BTreeSet<u64> = expr
            .split(">=")
            .skip(1)
            .filter_map(|rest| rest.split_whitespace().next().and_then(|number| number.parse().ok()))
            .collect();
        let expected = BTreeSet::from([thresholds.get(queue), thresholds.clear_below(queue)]);
        assert_eq!(bounds, expected, "{name}: raise at the engine's threshold, clear below ¾ of it\n{expr}");
        assert!(expr.contains(&format!("ALERTS{{alertname=\"{name}\"")), "{name} keeps firing on its own state");
    }
}

/// Whether `tool` (from Debian package `package`) can run; without it under CI, a failure naming the
/// install command; by hand, a skip line.
fn have_tool(tool: &str, package: &str) -> bool {
    match Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(_) => true,
        Err(error) if std::env::var_os("CI").is_some() => {
            panic!("{tool} is missing ({error}); install it: apt-get install -y {package}")
        }
        Err(_) => {
            eprintln!("skipped: install {package} for {tool} (apt-get install -y {package})");
            false
        }
    }
}

fn promtool(args: &[&str]) {
    let output = Command::new("promtool").args(args).current_dir(deploy("prometheus")).output().expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool {}:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_checks_the_rules_and_runs_their_tests() {
    if !have_tool("promtool", "prometheus") {
        return;
    }
    promtool(&["check", "rules", "alerts.yml"]);
    promtool(&["test", "rules", "alerts_test.yml"]);
    promtool(&["check", "config", "prometheus.example.yml"]);
}

/// A Prometheus server we started; killed and its directory removed when dropped.
struct PrometheusServer {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl PrometheusServer {
    /// Starts Prometheus scraping `target` every second as job `ringline`, with alerts.yml loaded.
    fn start(target: SocketAddr) -> Self {
        let dir = std::env::temp_dir().join(format!("ringline-prometheus-server-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let rules = deploy("prometheus/alerts.yml").canonicalize().expect("alerts.yml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  \
             - job_name: ringline\n    static_configs:\n      - targets: [\"{target}\"]\n",
            rules.display()
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("config");
        // A free port: taken from the kernel, released just before Prometheus binds it.
        let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        Self { child, dir, addr }
    }

    /// Polls the HTTP API at `path` until `done` accepts its JSON; panics (with Prometheus's log) after a
    /// generous bound or if Prometheus exits.
    fn wait_for(&mut self, path: &str, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", self.log());
            }
            if std::net::TcpStream::connect(self.addr).is_ok() {
                let (status, body) = http_get(self.addr, path);
                if let Ok(answer) = serde_json::from_str::<serde_json::Value>(&body)
                    && status == 200
                    && done(&answer)
                {
                    return answer;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(90), "gave up waiting for {what}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_real_prometheus_scrapes_a_running_engine_and_loads_the_rules() {
    if !have_tool("prometheus", "prometheus") {
        return;
    }
    let server = TestServer::start("prometheus", 2, 20, &["--metrics", "127.0.0.1:0"]);
    let metrics = server.metrics.expect("metrics address");
    let mut prometheus = PrometheusServer::start(metrics);
    prometheus.wait_for("/api/v1/targets", "the engine's target to be up", |answer| {
        answer["data"]["activeTargets"]
            .as_array()
            .is_some_and(|targets| targets.iter().any(|target| target["health"] == "up"))
    });
    let cores = prometheus.wait_for("/api/v1/query?query=ringline_cores", "ringline_cores", |answer| {
        answer["data"]["result"].as_array().is_some_and(|result| !result.is_empty())
    });
    assert_eq!(cores["data"]["result"][0]["value"][1], "2", "{cores}");
    let build = prometheus.wait_for("/api/v1/query?query=ringline_build_info", "ringline_build_info", |answer| {
        answer["data"]["result"].as_array().is_some_and(|result| !result.is_empty())
    });
    assert_eq!(build["data"]["result"][0]["metric"]["version"], env!("CARGO_PKG_VERSION"), "{build}");
    prometheus.wait_for("/api/v1/query?query=process_open_fds", "process_open_fds", |answer| {
        answer["data"]["result"].as_array().is_some_and(|result| !result.is_empty())
    });
    let rules = prometheus.wait_for("/api/v1/rules", "the rules", |answer| {
        answer["data"]["groups"].as_array().is_some_and(|groups| !groups.is_empty())
    });
    let loaded = rules["data"]["groups"][0]["rules"].as_array().map_or(0, Vec::len);
    assert_eq!(loaded, alert_rules().len(), "every rule of alerts.yml loaded: {rules}");
}
