//! The command line: `ringline-loadgen run ...` (the controller) and `ringline-loadgen agent ...`. Owns flag
//! names, defaults and the validation clap can do (bad flags are clap errors, never panics). Flag names are a
//! contract with scripts and CI jobs: add flags, do not rename them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgGroup, Parser, Subcommand};

use crate::control::Scenario;
use crate::handshake::{AGENT_TOKEN_ENV, CLOCK_OFFSET_MAX_MS_DEFAULT};
use crate::scenario_file::ScenarioFile;
use crate::schedule::Arrivals;
use crate::source_addr::SourceAddresses;
use crate::stages::Stages;

/// Capacity tester for ringline: holds many client connections, sends chat traffic and proves nothing was lost.
#[derive(Debug, Parser)]
#[command(name = "ringline-loadgen", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a load test (the controller): spawn or drive agents, aggregate, report.
    Run(Box<RunArgs>),
    /// Serve as an agent for a controller: hold connections on every core and report.
    Agent(AgentArgs),
    /// Print a shell completion script for ringline-loadgen, e.g. `ringline-loadgen completions bash >
    /// /usr/share/bash-completion/completions/ringline-loadgen`.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages, one per subcommand (ringline-loadgen.1, ringline-loadgen-run.1, ...), made from this help.
    Man {
        /// Directory to write the pages into (created if missing); default: print ringline-loadgen.1 to stdout.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

pub use crate::control::ProtocolName;

/// What `run --help` says after the flags: where users come from, per protocol.
const RUN_AFTER_HELP: &str = "\
Scenarios (--scenario):
  idle             ramp up and hold the connections with PING keepalives; no messages
  chat             every online user sends to its contacts at an open-loop total rate
  offline          a share of users is offline while others send to them; they come back halfway through the hold
  reconnect-storm  a share of connections is dropped at once a third of the way through the hold and reconnects
  FILE.toml        a scenario file: workload, rate, stages, message size mix (docs/LOADGEN.md)

Stages (--stages, instead of --connections --ramp --duration), comma-separated, run in order:
  DURATION:CONNECTIONS@RATE/s  connect users at RATE connects/s until CONNECTIONS are up (more than before:
                               connections only grow), then hold them for the rest of the stage
  DURATION:hold                hold the connections, sending at the current rate
  DURATION:rate N              hold them and send N messages/s in total from the stage's start on
  DURATION is a number with ms, s, m or h. The profile opens with a ramp and has at least one hold or rate
  stage; --rate is the message rate from the end of the opening ramp until a `rate` stage changes it.
  Example: --stages \"60s:100000@5000/s,120s:hold,30s:rate 20000\"

Users:
  native  --spawn-engine provisions them; with --target, --users is the keys file of `ringline users provision`.
  xmpp    --users FILE with `JID PASSWORD` lines (`user17@localhost secret`; every JID is {prefix}{digits}@{domain},
          one prefix and domain per file), or --xmpp-password PASS for the accounts
          {--xmpp-user-prefix}{N}@{--xmpp-domain}, N = --xmpp-first-user, +1, ... (one per connection).
          Logins are SASL PLAIN over plaintext TCP (the server must offer PLAIN without requiring STARTTLS);
          acks are XEP-0198 <a h/> (the XEP-0184 receipt on servers without stream management).

TLS (--tls, native protocol only):
  every connection does a TLS handshake (full on a user's first connect, resumed with that user's session
  ticket after a reconnect); the report counts tls_handshakes_full / _resumed / tls_handshake_failures and
  the handshake latency from TCP connect to handshake done. `--scenario reconnect-storm --storm-share F`
  drops a share of the connections at once and shows resumption at work (--tls-no-resumption: without it).

Example (ejabberd on loopback, users user1..user2000 with password `loadtest`):
  ringline-loadgen run --protocol xmpp --target 127.0.0.1:5222 --xmpp-password loadtest \\
      --connections 2000 --scenario chat --rate 1000 --server-pid $(pgrep -u ejabberd beam.smp)";

/// Load a ringline server, or an XMPP server such as ejabberd or prosody with `--protocol xmpp`.
#[derive(Debug, Clone, Parser)]
#[command(after_help = RUN_AFTER_HELP)]
#[command(group(ArgGroup::new("server").required(true).args(["target", "spawn_engine"])))]
#[command(group(ArgGroup::new("user_source").args(["users", "xmpp_password"])))]
pub struct RunArgs {
    /// Server addresses to load, HOST:PORT[,HOST:PORT...]; users are spread over them.
    #[arg(long, value_delimiter = ',', requires = "user_source")]
    pub target: Vec<SocketAddr>,
    /// Start local `ringline serve` processes (enough for --connections under the fd limit) and stop them after.
    #[arg(long)]
    pub spawn_engine: bool,
    /// Concurrent client connections (one user each). Default with --spawn-engine: what this machine ramps to in
    /// about a minute.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), conflicts_with = "stages")]
    pub connections: Option<u64>,
    /// A staged load profile instead of --connections/--ramp/--duration, e.g. `60s:100000@5000/s,120s:hold,30s:rate
    /// 20000` (see "Stages" below).
    #[arg(long, value_parser = parse_stages, conflicts_with_all = ["ramp", "duration"])]
    pub stages: Option<Stages>,
    /// New connections per second, in total.
    #[arg(long, default_value_t = 2000.0, value_parser = positive_f64)]
    pub ramp: f64,
    /// The workload, `idle`, `chat`, `offline` or `reconnect-storm`; or FILE.toml, a scenario file (workload,
    /// rate, stages, message size mix; see docs/LOADGEN.md) whose keys replace these flags' values.
    #[arg(long, default_value = "chat", value_parser = parse_scenario, value_name = "NAME|FILE.toml")]
    pub scenario: ScenarioArg,
    /// Seconds to hold the connections (and send) after the ramp.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub duration: u64,
    /// Messages per second, in total, open loop (ignored by `idle`).
    #[arg(long, default_value_t = 1000.0, value_parser = non_negative_f64)]
    pub rate: f64,
    #[arg(long, value_enum, default_value_t = Arrivals::Poisson)]
    pub arrivals: Arrivals,
    /// Share of users offline during the first half of the hold (`offline` scenario).
    #[arg(long, default_value_t = 0.2, value_parser = fraction)]
    pub offline_share: f64,
    /// Share of connections dropped at once (`reconnect-storm` scenario).
    #[arg(long, default_value_t = 0.5, value_parser = fraction)]
    pub storm_share: f64,
    /// Users file (required with --target unless --xmpp-password): the keys file written by `ringline users
    /// provision` (native), or `JID PASSWORD` lines (xmpp).
    #[arg(long)]
    pub users: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write an SVG plot of connections and latency over time here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Write the HdrHistogram interval log here (µs, a histogram a second: ACK latency untagged, delivery
    /// latency with Tag=delivery), for HdrHistogram's HistogramLogProcessor and HistogramLogAnalyzer.
    #[arg(long)]
    pub hlog: Option<PathBuf>,
    /// Write the whole run's ACK latency percentile distribution here, as HdrHistogram prints it (ms), for
    /// HdrHistogram's plotter.
    #[arg(long)]
    pub hgrm: Option<PathBuf>,
    /// Write the per-second series here as CSV (connections, sends, acks, deliveries, latencies, host).
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write a self-contained HTML report here (summary, ledger, latency over time and by percentile,
    /// connections, host resources).
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// `auto` to spawn local agents as needed, or agent addresses HOST:PORT[=CIDR[+CIDR...]][,...]: an agent
    /// with `=CIDR` binds its client sockets to that source range instead of --source-cidr.
    #[arg(long, default_value = "auto", value_parser = parse_agents)]
    pub agents: AgentsArg,
    /// Source address blocks for client sockets, CIDR[,CIDR...].
    #[arg(long, default_value = "127.0.1.0/24", value_parser = parse_cidrs)]
    pub source_cidr: String,
    /// The `ringline` binary for --spawn-engine (default: next to this executable).
    #[arg(long)]
    pub engine_bin: Option<PathBuf>,
    /// `--cores` for each spawned engine process. Default: every CPU for one engine; with several engines (the
    /// fd limit), CPUs ÷ engines each, at least 1. Several engines take the CPUs round-robin, e.g. with 1 each
    /// engine i runs on CPU i mod CPUs.
    #[arg(long)]
    pub engine_cores: Option<usize>,
    /// Extra argument for each spawned `ringline serve`, repeatable, e.g. `--engine-arg=--durability
    /// --engine-arg=async`.
    #[arg(long = "engine-arg", allow_hyphen_values = true)]
    pub engine_args: Vec<String>,
    /// Data directory for spawned engines (default: a fresh directory under the system temp dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Contacts per user (message recipients), all on the same agent core and target.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub contacts: u64,
    /// Message body bytes (at least the 44-byte loadgen header).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(44..=4096))]
    pub body_bytes: u32,
    /// Executors per agent. Default: every core for one local agent; with several local agents (the fd limit),
    /// CPUs ÷ agents each, at least 1; remote agents use every core of their host.
    #[arg(long)]
    pub agent_cores: Option<usize>,
    /// Seconds between keepalive PINGs on an otherwise idle connection.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub ping_interval: u64,
    /// Seconds to wait after the hold for every message to be delivered and receipted.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub drain_timeout: u64,
    /// Milliseconds a connect (through WELCOME) may take before it counts as a timeout.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub connect_timeout_ms: u64,
    /// The client protocol: ringline's `native` one, or `xmpp` (c2s, for ejabberd, prosody, …; needs --target).
    #[arg(long, value_enum, default_value_t = ProtocolName::Native)]
    pub protocol: ProtocolName,
    /// XMPP: the password of every `{prefix}{N}@{domain}` account (instead of a --users file).
    #[arg(long, conflicts_with = "spawn_engine")]
    pub xmpp_password: Option<String>,
    /// XMPP: the domain of the users' JIDs (with --xmpp-password).
    #[arg(long, default_value = "localhost", value_parser = xmpp_name)]
    pub xmpp_domain: String,
    /// XMPP: the localpart before the user number (with --xmpp-password).
    #[arg(long, default_value = "user", value_parser = xmpp_name)]
    pub xmpp_user_prefix: String,
    /// XMPP: the first user number (with --xmpp-password): users N, N+1, … N+connections-1.
    #[arg(long, default_value_t = 1)]
    pub xmpp_first_user: u64,
    /// PIDs of a server not started by this run (e.g. ejabberd's beam.smp), PID[,PID...]: their RSS is reported
    /// like a spawned engine's (baseline before the ramp, plateau during the hold, per connection).
    #[arg(long, value_delimiter = ',', conflicts_with = "spawn_engine")]
    pub server_pid: Vec<u32>,
    /// Speak TLS (rustls, ALPN `ringline/1`) on every connection of the native protocol. With --spawn-engine
    /// the engines also listen for TLS (--tls-listen) with a fresh `ringline tls dev-cert` that the agents
    /// trust; with --target, --ca is required. Not for --protocol xmpp (its driver speaks plaintext only).
    #[arg(long)]
    pub tls: bool,
    /// With --tls: a PEM file of the certificates to trust (the server's certificate or its issuer). Default
    /// with --spawn-engine: the dev certificate it makes.
    #[arg(long, requires = "tls")]
    pub ca: Option<PathBuf>,
    /// With --tls: the name to verify the server's certificate against and to send as SNI (default: the
    /// target's IP address, verified against the certificate's IP names; no SNI).
    #[arg(long, requires = "tls", value_parser = tls_server_name)]
    pub tls_server_name: Option<String>,
    /// Stop the run, as Ctrl-C would, when this host's free memory and page cache (MemFree + Active(file) +
    /// Inactive(file)) fall under this many MiB, and report the connections up at that moment: the box's
    /// limit, instead of an out-of-memory kill. Default: 1024, or 5% of the host's memory if that is less.
    /// 0: never stop.
    #[arg(long)]
    pub memory_floor_mib: Option<u64>,
    /// With --tls: never resume a session, every handshake is full (to measure what resumption saves, e.g. in
    /// a reconnect storm).
    #[arg(long, requires = "tls")]
    pub tls_no_resumption: bool,
    /// The token the remote agents were started with (`agent --agent-token`); sent in the greeting. Local
    /// agents (`--agents auto`) get a fresh random token each run whatever this says.
    #[arg(long, env = AGENT_TOKEN_ENV, hide_env_values = true, value_parser = agent_token)]
    pub agent_token: Option<String>,
    /// Refuse an agent whose clock is more than this many ms off this host's (estimated at the greeting's
    /// round-trip midpoint): latencies are measured against scheduled times across hosts.
    #[arg(long, default_value_t = CLOCK_OFFSET_MAX_MS_DEFAULT, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub agent_clock_offset_max_ms: u64,
}

/// A DNS name or IP address rustls can verify a certificate against.
fn tls_server_name(text: &str) -> Result<String, String> {
    rustls::pki_types::ServerName::try_from(text)
        .map(|_| text.to_owned())
        .map_err(|_| format!("`{text}` is not a DNS name or IP address"))
}

/// A JID domain or localpart prefix: no characters that JIDs or XML attributes forbid.
fn xmpp_name(text: &str) -> Result<String, String> {
    let forbidden = ['@', '/', '\'', '"', '<', '>', '&', ' ', ':'];
    if text.len() > 256 || text.chars().any(|c| forbidden.contains(&c) || c.is_control()) {
        return Err(format!("`{text}` cannot be part of a JID (no @ / : quotes, <, >, &, spaces; 256 bytes at most)"));
    }
    Ok(text.to_owned())
}

#[derive(Debug, Parser)]
pub struct AgentArgs {
    /// Address for the controller to connect to; port 0 picks one (printed as `listening ADDR`).
    #[arg(long)]
    pub listen: SocketAddr,
    /// Serve one controller, then exit (how local agents are spawned).
    #[arg(long)]
    pub once: bool,
    /// Require this token in every controller's greeting (compared in constant time); without one the agent
    /// listens on loopback only. Prefer the environment variable: a flag shows in `ps`.
    #[arg(long, env = AGENT_TOKEN_ENV, hide_env_values = true, value_parser = agent_token)]
    pub agent_token: Option<String>,
}

/// `--agent-token`: 1 to AGENT_TOKEN_BYTES_MAX bytes.
fn agent_token(text: &str) -> Result<String, String> {
    crate::handshake::check_token_length(text).map(|()| text.to_owned()).map_err(|error| error.to_string())
}

/// `--scenario`: a workload by name, or a scenario file (read and checked when the command line is parsed).
#[derive(Debug, Clone, PartialEq)]
pub enum ScenarioArg {
    Named(Scenario),
    File(Box<ScenarioFile>),
}

fn parse_scenario(text: &str) -> Result<ScenarioArg, String> {
    use clap::ValueEnum;
    if let Ok(scenario) = Scenario::from_str(text, false) {
        return Ok(ScenarioArg::Named(scenario));
    }
    if !text.ends_with(".toml") {
        let names: Vec<String> = Scenario::value_variants()
            .iter()
            .filter_map(|scenario| scenario.to_possible_value())
            .map(|value| value.get_name().to_owned())
            .collect();
        return Err(format!("possible values: {}, or a scenario file FILE.toml", names.join(", ")));
    }
    let contents =
        std::fs::read_to_string(text).map_err(|error| format!("reading the scenario file {text}: {error}"))?;
    ScenarioFile::from_toml(&contents)
        .map(|file| ScenarioArg::File(Box::new(file)))
        .map_err(|error| format!("{text}: {error}"))
}

impl RunArgs {
    /// The workload: the named one, or the scenario file's (`chat` when the file names none). With a workload
    /// mix, the mix's largest (the first of equals): what the report and the plot are labelled with.
    pub fn scenario(&self) -> Scenario {
        match &self.scenario {
            ScenarioArg::Named(scenario) => *scenario,
            ScenarioArg::File(file) => match &file.workload_mix {
                Some(mix) => mix
                    .iter()
                    .fold(None::<crate::workload_mix::WorkloadShare>, |largest, entry| match largest {
                        Some(largest) if largest.share >= entry.share => Some(largest),
                        _ => Some(*entry),
                    })
                    .map_or(Scenario::Chat, |entry| entry.workload),
                None => file.scenario.unwrap_or(Scenario::Chat),
            },
        }
    }

    /// The scenario file's workload mix, if it has one (empty: every user runs `scenario()`).
    pub fn workload_mix(&self) -> Vec<crate::workload_mix::WorkloadShare> {
        match &self.scenario {
            ScenarioArg::File(file) => file.workload_mix.clone().unwrap_or_default(),
            ScenarioArg::Named(_) => Vec::new(),
        }
    }

    /// Whether any user of the run sends messages (not all of them are idle).
    pub fn sends_messages(&self) -> bool {
        let mix = self.workload_mix();
        if mix.is_empty() {
            crate::workload_mix::sends(self.scenario())
        } else {
            mix.iter().any(|entry| crate::workload_mix::sends(entry.workload))
        }
    }

    /// The scenario file's message size mix, if it has one.
    pub fn body_bytes_mix(&self) -> Vec<crate::scenario_file::BodySize> {
        match &self.scenario {
            ScenarioArg::File(file) => file.body_bytes_mix.clone().unwrap_or_default(),
            ScenarioArg::Named(_) => Vec::new(),
        }
    }

    /// These arguments with a scenario file's keys in place of the flags' values (the same arguments without
    /// one). The stages of a file replace `--connections`, `--ramp` and `--duration`.
    pub fn with_scenario_file(&self) -> RunArgs {
        let mut args = self.clone();
        let ScenarioArg::File(file) = &self.scenario else { return args };
        let file = file.as_ref();
        args.rate = file.rate.unwrap_or(args.rate);
        args.arrivals = file.arrivals.unwrap_or(args.arrivals);
        args.contacts = file.contacts.unwrap_or(args.contacts);
        args.offline_share = file.offline_share.unwrap_or(args.offline_share);
        args.storm_share = file.storm_share.unwrap_or(args.storm_share);
        args.body_bytes = file.body_bytes.unwrap_or(args.body_bytes);
        if let Some(stages) = &file.stages {
            args.stages = Some(stages.clone());
            args.connections = None;
        }
        args
    }
}

/// `--agents`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentsArg {
    Auto,
    Remote(Vec<RemoteAgent>),
}

/// One `--agents` entry: where the agent listens, and its own source range (`=CIDR[+CIDR...]`, kept as
/// `CIDR[,CIDR...]` like --source-cidr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteAgent {
    pub address: SocketAddr,
    pub source_cidr: Option<String>,
}

fn parse_agents(text: &str) -> Result<AgentsArg, String> {
    if text == "auto" {
        return Ok(AgentsArg::Auto);
    }
    let syntax = || format!("expected `auto` or HOST:PORT[=CIDR[+CIDR...]][,HOST:PORT...], got `{text}`");
    let mut agents = Vec::new();
    for part in text.split(',').map(str::trim) {
        let (address, source_cidr) = match part.split_once('=') {
            Some((address, cidrs)) => {
                let cidrs = cidrs.replace('+', ",");
                let cidrs = parse_cidrs(&cidrs).map_err(|error| format!("agent {address}: {error}"))?;
                (address, Some(cidrs))
            }
            None => (part, None),
        };
        let address = address.trim().parse().map_err(|_| syntax())?;
        agents.push(RemoteAgent { address, source_cidr });
    }
    if agents.is_empty() {
        return Err(syntax());
    }
    Ok(AgentsArg::Remote(agents))
}

fn parse_stages(text: &str) -> Result<Stages, String> {
    text.parse().map_err(|error: crate::stages::StageError| error.to_string())
}

fn parse_cidrs(text: &str) -> Result<String, String> {
    SourceAddresses::parse(text).map(|_| text.to_owned()).map_err(|error| error.to_string())
}

fn fraction(text: &str) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|_| format!("`{text}` is not a number"))?;
    if (0.0..=1.0).contains(&value) { Ok(value) } else { Err(format!("{value} is not a fraction between 0 and 1")) }
}

fn positive_f64(text: &str) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|_| format!("`{text}` is not a number"))?;
    if value > 0.0 && value.is_finite() { Ok(value) } else { Err(format!("{value} must be above 0")) }
}

fn non_negative_f64(text: &str) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|_| format!("`{text}` is not a number"))?;
    if value >= 0.0 && value.is_finite() { Ok(value) } else { Err(format!("{value} must be 0 or more")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(args: &[&str]) -> String {
        let mut argv = vec!["ringline-loadgen"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect_err("must be refused").to_string()
    }

    #[test]
    fn good_command_lines_parse() {
        let cli = Cli::try_parse_from([
            "ringline-loadgen",
            "run",
            "--target",
            "127.0.0.1:7000,127.0.0.1:7001",
            "--users",
            "keys.txt",
            "--connections",
            "300",
            "--scenario",
            "reconnect-storm",
            "--offline-share",
            "0.3",
        ])
        .expect("valid");
        let Command::Run(run) = cli.command else { panic!("run") };
        assert_eq!(run.target.len(), 2);
        assert_eq!(run.scenario(), Scenario::ReconnectStorm);
        assert_eq!(run.agents, AgentsArg::Auto);
        let cli = Cli::try_parse_from(["ringline-loadgen", "run", "--spawn-engine", "--agents", "10.0.0.1:9000"])
            .expect("valid");
        let Command::Run(run) = cli.command else { panic!("run") };
        assert!(matches!(&run.agents, AgentsArg::Remote(list) if list.len() == 1 && list[0].source_cidr.is_none()));
        let cli = Cli::try_parse_from([
            "ringline-loadgen",
            "run",
            "--spawn-engine",
            "--agents",
            "10.0.0.1:9000=10.1.0.0/24+10.1.1.0/24,10.0.0.2:9000,10.0.0.3:9000=10.3.0.16/28",
        ])
        .expect("valid");
        let Command::Run(run) = cli.command else { panic!("run") };
        let AgentsArg::Remote(list) = run.agents else { panic!("remote agents") };
        let cidrs: Vec<Option<&str>> = list.iter().map(|agent| agent.source_cidr.as_deref()).collect();
        assert_eq!(cidrs, [Some("10.1.0.0/24,10.1.1.0/24"), None, Some("10.3.0.16/28")]);
        assert_eq!(list[2].address, "10.0.0.3:9000".parse().expect("literal"));
        let cli = Cli::try_parse_from([
            "ringline-loadgen",
            "run",
            "--protocol",
            "xmpp",
            "--target",
            "127.0.0.1:5222",
            "--xmpp-password",
            "secret",
            "--server-pid",
            "10,11",
        ])
        .expect("valid");
        let Command::Run(run) = cli.command else { panic!("run") };
        assert_eq!(run.protocol, ProtocolName::Xmpp);
        assert_eq!(run.xmpp_password.as_deref(), Some("secret"));
        assert_eq!(run.xmpp_domain, "localhost");
        assert_eq!(run.server_pid, vec![10, 11]);
        assert!(!run.tls);
        let cli = Cli::try_parse_from([
            "ringline-loadgen",
            "run",
            "--spawn-engine",
            "--tls",
            "--ca",
            "roots.pem",
            "--tls-server-name",
            "chat.example",
        ])
        .expect("valid");
        let Command::Run(run) = cli.command else { panic!("run") };
        assert!(run.tls);
        assert_eq!(run.ca.as_deref(), Some(std::path::Path::new("roots.pem")));
        assert_eq!(run.tls_server_name.as_deref(), Some("chat.example"));
        let cli = Cli::try_parse_from([
            "ringline-loadgen",
            "run",
            "--spawn-engine",
            "--stages",
            "60s:100000@5000/s,120s:hold,30s:rate 20000",
            "--rate",
            "500",
        ])
        .expect("valid");
        let Command::Run(run) = cli.command else { panic!("run") };
        assert_eq!(run.stages.expect("stages").connections_max(), 100_000);
    }

    #[test]
    fn bad_flags_get_clear_errors() {
        assert!(error_of(&["run", "--connections", "10"]).contains("--target"));
        assert!(error_of(&["run", "--target", "127.0.0.1:1"]).contains("--users"));
        assert!(
            error_of(&["run", "--target", "127.0.0.1:1", "--spawn-engine", "--users", "k"]).contains("cannot be used")
        );
        assert!(error_of(&["run", "--spawn-engine", "--offline-share", "1.5"]).contains("between 0 and 1"));
        assert!(error_of(&["run", "--spawn-engine", "--connections", "0"]).contains("--connections"));
        assert!(error_of(&["run", "--spawn-engine", "--scenario", "party"]).contains("possible values"));
        assert!(error_of(&["run", "--spawn-engine", "--ramp", "0"]).contains("above 0"));
        assert!(error_of(&["run", "--spawn-engine", "--source-cidr", "127.0.1.0/99"]).contains("prefix length"));
        assert!(error_of(&["run", "--spawn-engine", "--agents", "somewhere"]).contains("HOST:PORT"));
        assert!(error_of(&["run", "--spawn-engine", "--agents", "10.0.0.1:9=10.1.0.0/99"]).contains("prefix length"));
        assert!(error_of(&["run", "--spawn-engine", "--agents", "10.0.0.1:9=nope"]).contains("agent 10.0.0.1:9"));
        assert!(error_of(&["run", "--spawn-engine", "--agents", "10.0.0.1:9,"]).contains("HOST:PORT"));
        assert!(error_of(&["run", "--target", "nonsense", "--users", "k"]).contains("invalid"));
        assert!(error_of(&["agent"]).contains("--listen"));
        assert!(error_of(&["run", "--spawn-engine", "--protocol", "irc"]).contains("possible values"));
        assert!(error_of(&["run", "--spawn-engine", "--xmpp-password", "pw"]).contains("cannot be used"));
        assert!(
            error_of(&["run", "--target", "127.0.0.1:5222", "--xmpp-domain", "a@b", "--xmpp-password", "p"])
                .contains("cannot be part of a JID")
        );
        assert!(
            error_of(&["run", "--target", "127.0.0.1:5222", "--users", "f", "--xmpp-password", "p"])
                .contains("cannot be used")
        );
        assert!(error_of(&["run", "--spawn-engine", "--ca", "roots.pem"]).contains("--tls"));
        assert!(error_of(&["run", "--spawn-engine", "--tls", "--tls-server-name", "a b"]).contains("DNS name"));
        assert!(error_of(&["run", "--spawn-engine", "--stages", "10s:10@5/s,60:hold"]).contains("stage 2 `60:hold`"));
        assert!(
            error_of(&["run", "--spawn-engine", "--stages", "10s:10@5/s,1s:hold", "--connections", "5"])
                .contains("cannot be used")
        );
        assert!(
            error_of(&["run", "--spawn-engine", "--stages", "10s:10@5/s,1s:hold", "--duration", "5"])
                .contains("cannot be used")
        );
    }
}
