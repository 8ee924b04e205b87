//! The controller (`ringline-loadgen run`): decides how many agents and engines the run needs, spawns local agents
//! (re-executing this binary as `agent --listen 127.0.0.1:0 --once` and reading `listening ADDR` from its stdout)
//! or connects to remote ones, hands each its users and schedule, prints a progress line every second, merges
//! the agents' verdicts (counts summed, histograms merged bucket by bucket) into the report, and stops
//! everything it started, also on Ctrl-C and on error. It never opens a client connection itself.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use wire::{UserKey, parse_keys_line};

use loadgen::cli::{AgentsArg, ProtocolName, RunArgs};
use loadgen::client::tls::{HandshakeStats, TlsClient};
use loadgen::client::xmpp::{XmppRealm, XmppUser, read_users};
use loadgen::control::{
    AgentCounters, AgentFinal, AgentMessage, AgentReady, ControllerMessage, PlanUser, RunPlan, Scenario, TlsPlan,
    read_message, write_message,
};
use loadgen::latency::LatencyHistogram;
use loadgen::ledger::LedgerSummary;
use loadgen::limits::TLS_ROOTS_PEM_BYTES_MAX;
use loadgen::memory_floor::{MemoryFloor, default_floor_mib};
use loadgen::report::{Report, TimelinePoint};

use crate::agent::{connections_max, now_us};
use crate::engine_process::{EngineFleet, locate_engine_bin};

/// Seconds from sending the plans to the planned start, so every agent has its executors up.
const START_DELAY_US: u64 = 1_000_000;
const START_DELAY_PER_AGENT_US: u64 = 200_000;
/// Default ramp length for `--spawn-engine` without `--connections`.
const DEFAULT_RAMP_SECONDS: f64 = 60.0;
/// Memory assumed per connection pair (client and server sockets, engine and agent state) when defaulting.
const DEFAULT_BYTES_PER_CONNECTION: u64 = 64 * 1024;
/// How long after the plan's drain deadline the controller waits for final reports.
const FINAL_WAIT: Duration = Duration::from_secs(30);
/// How long a local agent may take to print its address.
const AGENT_START_TIMEOUT: Duration = Duration::from_secs(20);

/// Local agent processes; killed when dropped (they exit on their own after a run).
struct LocalAgents {
    children: Vec<Child>,
}

impl Drop for LocalAgents {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        for child in &mut self.children {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// Starts `ringline-loadgen agent --listen 127.0.0.1:0 --once`; its executors per core come with the plan.
fn spawn_local_agent() -> anyhow::Result<(Child, SocketAddr)> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let mut command = Command::new(exe);
    command.args(["agent", "--listen", "127.0.0.1:0", "--once"]);
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()).process_group(0);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = command.spawn().context("spawning a local agent")?;
    let stdout = child.stdout.take().context("agent stdout")?;
    let (sender, receiver) = channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = sender.send(line);
    });
    let line = receiver.recv_timeout(AGENT_START_TIMEOUT).context("the local agent did not print its address")?;
    let address = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|text| text.parse().ok())
        .with_context(|| format!("the local agent printed `{}`, not `listening ADDR`", line.trim()))?;
    Ok((child, address))
}

fn load_users(path: &Path, wanted: u64) -> anyhow::Result<Vec<UserKey>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening the keys file {}", path.display()))?;
    let mut users = Vec::new();
    for (number, line) in BufReader::new(file).lines().enumerate() {
        if users.len() as u64 >= wanted {
            break;
        }
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        match parse_keys_line(&line) {
            Ok(Some(user)) => users.push(user),
            Ok(None) => {}
            Err(error) => bail!("{}:{}: {error}", path.display(), number + 1),
        }
    }
    anyhow::ensure!(
        users.len() as u64 >= wanted,
        "{} holds {} users, fewer than the {wanted} connections asked for",
        path.display(),
        users.len()
    );
    Ok(users)
}

fn load_xmpp_users(path: &Path, wanted: u64) -> anyhow::Result<(XmppRealm, Vec<XmppUser>)> {
    let file = std::fs::File::open(path).with_context(|| format!("opening the XMPP users file {}", path.display()))?;
    let (realm, users) = read_users(BufReader::new(file), wanted).with_context(|| format!("{}", path.display()))?;
    anyhow::ensure!(
        users.len() as u64 >= wanted,
        "{} holds {} users, fewer than the {wanted} connections asked for",
        path.display(),
        users.len()
    );
    Ok((realm, users))
}

fn key_hex(key: &[u8; 32]) -> String {
    key.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// What the controller knows of one agent during the run.
struct AgentLink {
    writer: TcpStream,
    latest: AgentCounters,
    /// When the latest progress report arrived, to rate acks over the agent's own report interval.
    latest_at_us: u64,
    /// Acks per second between this agent's last two progress reports.
    acked_per_s: f64,
    alive: bool,
    final_report: Option<Box<AgentFinal>>,
}

enum Incoming {
    Message(usize, AgentMessage),
    Gone(usize, String),
}

/// `ringline-loadgen run`. Returns the process exit code: non-zero when anything was lost, duplicated or reordered.
pub fn run(args: &RunArgs, command_line: Vec<String>) -> anyhow::Result<ExitCode> {
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, interrupted.clone()).context("installing the Ctrl-C handler")?;
    }
    let mut report = Report {
        command_line,
        machine: crate::machine::machine_info(),
        scenario: Some(args.scenario),
        hold_seconds: args.duration as f64,
        ..Default::default()
    };
    match args.protocol {
        ProtocolName::Xmpp => anyhow::ensure!(
            !args.spawn_engine,
            "--spawn-engine starts ringline, which speaks the native protocol: load an XMPP server with --target"
        ),
        ProtocolName::Native => anyhow::ensure!(
            args.xmpp_password.is_none(),
            "--xmpp-password is for --protocol xmpp; native users come from --users or --spawn-engine"
        ),
    }
    anyhow::ensure!(
        !(args.tls && args.protocol == ProtocolName::Xmpp),
        "--tls is for the native protocol: the XMPP driver speaks plaintext only"
    );
    anyhow::ensure!(
        !args.tls || args.spawn_engine || args.ca.is_some(),
        "--tls with --target needs --ca FILE: the PEM certificates to trust (the server's certificate or its \
         issuer); the load generator does not read the system's roots"
    );
    let ca_pem = match &args.ca {
        Some(path) => {
            let pem = read_roots(path)?;
            // Refuse a bad file before any engine or agent starts.
            TlsClient::new(pem.as_bytes(), args.tls_server_name.as_deref())
                .with_context(|| format!("--ca {}", path.display()))?;
            Some(pem)
        }
        None => None,
    };
    report.tls = args.tls;
    let per_process = connections_max();
    anyhow::ensure!(per_process > 0, "RLIMIT_NOFILE leaves no room for client sockets");
    let connections = match (args.connections, args.spawn_engine) {
        (Some(count), _) => count,
        (None, true) => {
            let by_ramp = (args.ramp * DEFAULT_RAMP_SECONDS) as u64;
            let by_memory = crate::machine::memory_available_bytes() / DEFAULT_BYTES_PER_CONNECTION;
            let count = by_ramp.min(by_memory).max(1);
            let note = format!(
                "no --connections given: defaulting to {count}, what this machine ramps to in about a minute at \
                 --ramp {} (memory allows {by_memory})",
                args.ramp
            );
            println!("{note}");
            report.notes.push(note);
            count
        }
        (None, false) => bail!("--connections is required with --target"),
    };
    report.connections_target = connections;
    if let Some(note) = crate::machine::autogroup_note() {
        println!("note: {note}");
        report.notes.push(note);
    }

    let mut engines = None;
    let (targets, keys_file) = if args.spawn_engine {
        let bin = locate_engine_bin(args.engine_bin.as_deref())?;
        let processes = connections.div_ceil(per_process) as usize;
        println!("starting {processes} engine process(es) from {} for {connections} connections", bin.display());
        let fleet = EngineFleet::start(
            &bin,
            args.data_dir.as_deref(),
            processes,
            connections,
            args.engine_cores,
            &args.engine_args,
            args.tls,
        )?;
        let targets = fleet.targets();
        let keys = fleet.keys_file.clone();
        engines = Some(fleet);
        (targets, Some(keys))
    } else {
        (args.target.clone(), args.users.clone())
    };
    let tls_plan = if args.tls {
        let roots_pem = match (ca_pem, engines.as_ref().and_then(|fleet| fleet.tls_cert.as_deref())) {
            (Some(pem), _) => pem,
            (None, Some(dev_cert)) => read_roots(dev_cert)?,
            (None, None) => bail!("--tls needs --ca FILE"),
        };
        let client =
            TlsClient::new(roots_pem.as_bytes(), args.tls_server_name.as_deref()).with_context(|| match &args.ca {
                Some(path) => format!("--ca {}", path.display()),
                None => "the spawned engines' dev certificate".to_owned(),
            })?;
        println!(
            "tls: trusting {} certificate(s), server name {}",
            client.roots(),
            args.tls_server_name.as_deref().unwrap_or("the target's IP address")
        );
        Some(TlsPlan { roots_pem, server_name: args.tls_server_name.clone(), resumption: !args.tls_no_resumption })
    } else {
        None
    };
    let server_rss = |engines: &Option<EngineFleet>| match engines {
        Some(fleet) => fleet.rss_bytes(),
        None if !args.server_pid.is_empty() => {
            args.server_pid.iter().map(|&pid| crate::machine::rss_bytes(pid)).sum::<Option<u64>>()
        }
        None => None,
    };
    report.server_rss_baseline_bytes = server_rss(&engines);
    let host_baseline = crate::machine::host_memory();
    report.host_slab_bytes_baseline = host_baseline.slab_bytes;
    let mut host_plateau: Option<(u64, crate::machine::HostMemory)> = None;
    let mut cpu_at_hold_start: Option<Vec<(u64, u64)>> = None;
    let mut cpu_at_hold_end: Option<Vec<(u64, u64)>> = None;
    let (plan_users, xmpp_realm) = match (args.protocol, keys_file) {
        (ProtocolName::Native, Some(path)) => {
            let users = load_users(&path, connections)?;
            let plan_users =
                users.iter().map(|user| PlanUser { user: user.user, key_hex: key_hex(&user.key), password: None });
            (plan_users.collect::<Vec<_>>(), None)
        }
        (ProtocolName::Xmpp, Some(path)) => {
            let (realm, users) = load_xmpp_users(&path, connections)?;
            let plan_users = users.into_iter().map(|user| PlanUser {
                user: user.id,
                key_hex: String::new(),
                password: Some(user.password),
            });
            (plan_users.collect(), Some(realm))
        }
        (ProtocolName::Xmpp, None) => {
            let password = args.xmpp_password.clone().context("--users FILE or --xmpp-password is required")?;
            let last = args
                .xmpp_first_user
                .checked_add(connections)
                .context("--xmpp-first-user plus --connections is over 2^64")?;
            let plan_users = (args.xmpp_first_user..last).map(|user| PlanUser {
                user,
                key_hex: String::new(),
                password: Some(password.clone()),
            });
            let realm = XmppRealm { user_prefix: args.xmpp_user_prefix.clone(), domain: args.xmpp_domain.clone() };
            (plan_users.collect(), Some(realm))
        }
        (ProtocolName::Native, None) => bail!("--users FILE is required with --target"),
    };

    // Agents.
    let mut local_agents = LocalAgents { children: Vec::new() };
    let agent_addresses = match &args.agents {
        AgentsArg::Remote(list) => list.clone(),
        AgentsArg::Auto => {
            let count = connections.div_ceil(per_process) as usize;
            let mut addresses = Vec::new();
            for _ in 0..count {
                let (child, address) = spawn_local_agent()?;
                local_agents.children.push(child);
                addresses.push(address);
            }
            addresses
        }
    };
    let mut links = Vec::new();
    let mut readers = Vec::new();
    for address in &agent_addresses {
        let stream = TcpStream::connect(address).with_context(|| format!("connecting to agent {address}"))?;
        stream.set_nodelay(true).context("agent socket")?;
        let mut reader = BufReader::new(stream.try_clone().context("agent socket")?);
        let ready = match read_message::<AgentMessage>(&mut reader)? {
            Some(AgentMessage::Ready(ready)) => ready,
            other => bail!("agent {address} did not greet with ready: {other:?}"),
        };
        readers.push((reader, ready));
        links.push(AgentLink {
            writer: stream,
            latest: AgentCounters::default(),
            latest_at_us: 0,
            acked_per_s: 0.0,
            alive: true,
            final_report: None,
        });
    }
    report.agents = links.len() as u64;
    let capacity: u64 = readers.iter().map(|(_, ready): &(_, AgentReady)| ready.connections_max).sum();
    anyhow::ensure!(capacity >= connections, "the agents hold {capacity} connections, fewer than {connections}");

    // Plans: users split evenly (within each agent's capacity), ramp and rate split by share.
    let run_id = rand::random::<u64>() | 1;
    // Room to hand every agent its plan before any of them starts connecting: once they ramp, they and the
    // engines take every core, and the last plans would go out late.
    let start_at_us = now_us() + START_DELAY_US + START_DELAY_PER_AGENT_US * links.len() as u64;
    let ramp_us = (connections as f64 / args.ramp * 1e6) as u64;
    let hold_start_at_us = start_at_us + ramp_us;
    let hold_end_at_us = hold_start_at_us + args.duration * 1_000_000;
    let drain_deadline_us = hold_end_at_us + args.drain_timeout * 1_000_000;
    let rate = if args.scenario == Scenario::Idle { 0.0 } else { args.rate };
    let users = plan_users;
    let mut next_user = 0usize;
    let agent_count = links.len();
    // Local agents share this host's CPUs: several of them get CPUs ÷ agents cores each (as spawned engines
    // do), so that their threads do not outnumber the CPUs. Remote agents keep every core of their own host.
    let agent_cores = match (&args.agents, args.agent_cores) {
        (_, Some(cores)) => Some(cores),
        (AgentsArg::Auto, None) => {
            tuning::cpus::cores_each(None, agent_count, crate::engine_process::allowed_cpus().len().max(1))
        }
        (AgentsArg::Remote(_), None) => None,
    };
    for (index, (link, (_, ready))) in links.iter_mut().zip(&readers).enumerate() {
        let remaining_agents = agent_count - index;
        let share = (users.len() - next_user).div_ceil(remaining_agents).min(ready.connections_max as usize);
        let slice = &users[next_user..next_user + share];
        next_user += share;
        let fraction = slice.len() as f64 / users.len().max(1) as f64;
        let plan = RunPlan {
            run_id,
            scenario: args.scenario,
            users: slice.to_vec(),
            targets: targets.clone(),
            source_cidrs: args.source_cidr.clone(),
            ramp_per_s: args.ramp * fraction,
            rate_per_s: rate * fraction,
            arrivals: args.arrivals,
            offline_share: args.offline_share,
            storm_share: args.storm_share,
            contacts_per_user: args.contacts as usize,
            body_bytes: args.body_bytes,
            ping_interval_s: args.ping_interval,
            connect_timeout_ms: args.connect_timeout_ms,
            start_at_us,
            hold_start_at_us,
            hold_end_at_us,
            drain_deadline_us,
            cores: agent_cores,
            first_cpu: index * agent_cores.unwrap_or(1),
            protocol: args.protocol,
            xmpp_realm: xmpp_realm.clone().map(Box::new),
            tls: tls_plan.clone().map(Box::new),
        };
        write_message(&mut link.writer, &ControllerMessage::Start(Box::new(plan)))
            .with_context(|| format!("sending the plan to agent {index}"))?;
    }
    anyhow::ensure!(next_user == users.len(), "could not place every user on an agent");
    // The agents have their users now; at millions of users the list is hundreds of MB this process need
    // not hold through the run.
    drop(users);
    // Engines and agents are running (they keep the default score): if the kernel must kill, it picks one of
    // them, which the report counts, rather than this process, which holds the report.
    prefer_others_for_the_oom_killer();
    let (sender, incoming) = channel();
    for (index, (mut reader, _)) in readers.into_iter().enumerate() {
        let sender = sender.clone();
        std::thread::spawn(move || {
            loop {
                match read_message::<AgentMessage>(&mut reader) {
                    Ok(Some(message)) => {
                        let last = matches!(message, AgentMessage::Final(_) | AgentMessage::Failed { .. });
                        if sender.send(Incoming::Message(index, message)).is_err() || last {
                            return;
                        }
                    }
                    Ok(None) => {
                        let _ = sender.send(Incoming::Gone(index, "closed the control connection".into()));
                        return;
                    }
                    Err(error) => {
                        let _ = sender.send(Incoming::Gone(index, error.to_string()));
                        return;
                    }
                }
            }
        });
    }
    drop(sender);
    println!(
        "run {run_id:016x}: {connections} connections over {} agent(s) to {} target(s), scenario {:?}, ramp {:.1} s, hold {} s",
        agent_count,
        targets.len(),
        args.scenario,
        ramp_us as f64 / 1e6,
        args.duration
    );

    // Progress.
    let mut interval_delivery = LatencyHistogram::new();
    let mut interval_ack = LatencyHistogram::new();
    let mut next_line_us = start_at_us + 1_000_000;
    let mut stop_sent = false;
    let mut rss_plateau: Option<(u64, u64)> = None;
    let hard_deadline_us = drain_deadline_us + FINAL_WAIT.as_micros() as u64;
    let mut agent_failures = Vec::new();
    // The most connections the progress lines saw up at once: a lower bound of the peak that holds even when
    // an agent's final report is lost.
    let mut peak_seen = 0u64;
    let mut memory_floor =
        MemoryFloor::new(args.memory_floor_mib.unwrap_or_else(|| default_floor_mib(report.machine.memory_bytes)));
    loop {
        let finished = links.iter().all(|link| link.final_report.is_some() || !link.alive);
        if finished || now_us() > hard_deadline_us {
            break;
        }
        if interrupted.load(Ordering::Relaxed) && !stop_sent {
            stop_sent = true;
            report.stopped_early = Some("interrupted (Ctrl-C): agents drained briefly and reported".into());
            println!("stopping: waiting for the agents' final reports");
            stop_agents(&mut links);
        }
        match incoming.recv_timeout(Duration::from_millis(100)) {
            Ok(Incoming::Message(index, AgentMessage::Progress(progress))) => {
                let link = &mut links[index];
                let now = now_us();
                if link.latest_at_us != 0 && now > link.latest_at_us {
                    let acked = progress.counters.acked.saturating_sub(link.latest.acked);
                    link.acked_per_s = acked as f64 * 1e6 / (now - link.latest_at_us) as f64;
                }
                link.latest = progress.counters;
                link.latest_at_us = now;
                if let Ok(histogram) = LatencyHistogram::from_base64(&progress.interval_latency_delivery) {
                    let _ = interval_delivery.merge(&histogram);
                }
                if let Ok(histogram) = LatencyHistogram::from_base64(&progress.interval_latency_ack) {
                    let _ = interval_ack.merge(&histogram);
                }
            }
            Ok(Incoming::Message(index, AgentMessage::Final(agent_final))) => {
                links[index].final_report = Some(agent_final)
            }
            Ok(Incoming::Message(index, AgentMessage::Failed { error })) => {
                links[index].alive = false;
                agent_failures.push(format!("agent {index} failed: {error}"));
            }
            Ok(Incoming::Message(_, AgentMessage::Ready(_))) => {}
            Ok(Incoming::Gone(index, why)) => {
                if links[index].final_report.is_none() {
                    agent_failures.push(format!("agent {index} {why}"));
                }
                links[index].alive = false;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let now = now_us();
        if now >= next_line_us {
            next_line_us += 1_000_000;
            let up: u64 = links.iter().map(|link| link.latest.connections_up).sum();
            peak_seen = peak_seen.max(up);
            // One reading a line serves the memory floor and, during the hold, the plateau figures.
            let memory = crate::machine::host_memory();
            if let Some(why) = memory_floor.observe(memory.headroom_bytes, up)
                && !stop_sent
            {
                stop_sent = true;
                println!("stopping: {why}");
                report.stopped_early = Some(why);
                stop_agents(&mut links);
            }
            let errors: u64 = links.iter().map(|link| link.latest.connect_errors).sum();
            // Each agent's own rate over its last report interval: the line and the reports are not in phase.
            let msgs_per_s =
                links.iter().filter(|link| link.alive).map(|link| link.acked_per_s).sum::<f64>().round() as u64;
            let alive = links.iter().filter(|link| link.alive).count();
            let delivery = interval_delivery.summary();
            let t_s = now.saturating_sub(start_at_us) as f64 / 1e6;
            let tls = if args.tls {
                let sum = |count: fn(&AgentCounters) -> u64| links.iter().map(|link| count(&link.latest)).sum::<u64>();
                format!(
                    " tls full {} resumed {} failed {}",
                    sum(|counters| counters.tls_handshakes_full),
                    sum(|counters| counters.tls_handshakes_resumed),
                    sum(|counters| counters.tls_handshake_failures)
                )
            } else {
                String::new()
            };
            println!(
                "[{t_s:6.1}s] conns {up}/{connections} connect_err {errors} msgs/s {msgs_per_s} p99 ack {:.2}ms deliver {:.2}ms agents {alive}/{agent_count}{tls}",
                interval_ack.summary().p99 as f64 / 1e3,
                delivery.p99 as f64 / 1e3
            );
            report.timeline.push(TimelinePoint {
                t_s,
                connections_up: up,
                msgs_per_s: msgs_per_s as f64,
                latency_delivery_p50_us: delivery.p50,
                latency_delivery_p99_us: delivery.p99,
                latency_delivery_p999_us: delivery.p999,
            });
            interval_delivery.reset();
            interval_ack.reset();
            if now >= hold_start_at_us
                && now <= hold_end_at_us
                && rss_plateau.is_none_or(|(connections_then, _)| up >= connections_then)
                && let Some(rss) = server_rss(&engines)
            {
                rss_plateau = Some((up, rss));
            }
            if now >= hold_start_at_us
                && now <= hold_end_at_us
                && host_plateau.is_none_or(|(connections_then, _)| up >= connections_then)
            {
                host_plateau = Some((up, memory));
            }
            // CPU busy over the hold: the first and the last progress line inside it.
            if now >= hold_start_at_us && now <= hold_end_at_us {
                let times = crate::machine::cpu_times();
                if cpu_at_hold_start.is_none() {
                    cpu_at_hold_start = Some(times);
                } else {
                    cpu_at_hold_end = Some(times);
                }
            }
        }
    }

    // Verdict.
    let mut ledger = LedgerSummary::default();
    let mut latency_ack = LatencyHistogram::new();
    let mut latency_delivery = LatencyHistogram::new();
    let mut latency_offline = LatencyHistogram::new();
    let mut handshakes = HandshakeStats::new();
    let mut ramp_done_at_us = Some(0u64);
    for (index, link) in links.iter().enumerate() {
        let Some(agent_final) = &link.final_report else {
            report.agents_lost += 1;
            ramp_done_at_us = None;
            if !agent_failures.iter().any(|failure| failure.starts_with(&format!("agent {index} "))) {
                agent_failures.push(format!("agent {index} sent no final report"));
            }
            continue;
        };
        ledger.merge(&agent_final.ledger);
        latency_ack.merge(&LatencyHistogram::from_base64(&agent_final.latency_ack)?)?;
        latency_delivery.merge(&LatencyHistogram::from_base64(&agent_final.latency_delivery)?)?;
        latency_offline.merge(&LatencyHistogram::from_base64(&agent_final.latency_offline_delivery)?)?;
        handshakes.full += agent_final.counters.tls_handshakes_full;
        handshakes.resumed += agent_final.counters.tls_handshakes_resumed;
        handshakes.failures += agent_final.counters.tls_handshake_failures;
        if let Some(tls) = &agent_final.tls_handshake_latency {
            handshakes.latency.merge(&LatencyHistogram::from_base64(&tls.all)?)?;
            handshakes.latency_full.merge(&LatencyHistogram::from_base64(&tls.full)?)?;
            handshakes.latency_resumed.merge(&LatencyHistogram::from_base64(&tls.resumed)?)?;
        }
        report.connections_established += agent_final.counters.connections_established;
        report.connections_peak += agent_final.connections_peak;
        report.connect_errors += agent_final.counters.connect_errors;
        for (kind, count) in &agent_final.errors {
            *report.errors.entry(kind.clone()).or_default() += count;
        }
        ramp_done_at_us = match (ramp_done_at_us, agent_final.ramp_done_at_us) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        report.storm_dropped += agent_final.storm_dropped;
        report.loadgen_rss_peak_bytes += agent_final.rss_peak_bytes;
        report.loadgen_cpu_seconds += agent_final.cpu_ms as f64 / 1e3;
        report.storm_recovery_seconds = max_seconds(report.storm_recovery_seconds, agent_final.storm_recovery_us);
        report.offline_drain_seconds = max_seconds(report.offline_drain_seconds, agent_final.offline_drain_us);
    }
    report.connections_peak = report.connections_peak.max(peak_seen);
    report.host_memory_headroom_min_bytes = memory_floor.lowest_bytes();
    report.notes.extend(agent_failures);
    report.ramp_seconds = ramp_done_at_us.map(|at| at.saturating_sub(start_at_us) as f64 / 1e6);
    report.messages_sent = ledger.counts.sent;
    report.messages_acked = ledger.counts.acked;
    report.messages_delivered = ledger.counts.delivered;
    report.messages_rejected = ledger.counts.rejected;
    report.receipts = ledger.counts.receipts;
    report.lost = ledger.lost;
    report.duplicated = ledger.counts.duplicated;
    report.reordered = ledger.counts.reordered;
    report.redelivered = ledger.counts.redelivered;
    report.unresolved = ledger.unresolved;
    report.receipts_missing = ledger.receipts_missing;
    report.problems = ledger.problems.clone();
    report.ledger = ledger.counts.clone();
    report.latency_ack_us = latency_ack.summary();
    report.latency_delivery_us = latency_delivery.summary();
    report.latency_offline_delivery_us = latency_offline.summary();
    report.tls_handshakes_full = handshakes.full;
    report.tls_handshakes_resumed = handshakes.resumed;
    report.tls_handshake_failures = handshakes.failures;
    report.tls_handshake_latency = handshakes.latency.summary();
    report.tls_handshake_latency_full = handshakes.latency_full.summary();
    report.tls_handshake_latency_resumed = handshakes.latency_resumed.summary();
    if let Some(note) = report.tls_failure_note() {
        report.notes.push(note);
    }
    // Over the hold that actually happened (a Ctrl-C shortens it).
    let hold_elapsed_us = now_us().min(hold_end_at_us).saturating_sub(hold_start_at_us).max(1);
    report.hold_seconds = hold_elapsed_us as f64 / 1e6;
    report.throughput_msgs_per_s = report.messages_delivered as f64 / report.hold_seconds;
    if let Some((connections, memory)) = host_plateau
        && connections > 0
    {
        report.host_slab_bytes = memory.slab_bytes;
        report.host_tcp_buffer_bytes = memory.tcp_buffer_bytes;
        report.host_slab_per_connection_bytes =
            Some(memory.slab_bytes.saturating_sub(host_baseline.slab_bytes) as f64 / connections as f64);
        report.host_used_per_connection_bytes =
            Some(memory.used_bytes.saturating_sub(host_baseline.used_bytes) as f64 / connections as f64);
    }
    if let (Some(start), Some(end)) = (&cpu_at_hold_start, &cpu_at_hold_end) {
        report.cpu_busy_per_core = crate::machine::cpu_busy_between(start, end);
    }
    if let Some((plateau_connections, rss)) = rss_plateau {
        report.server_rss_bytes = Some(rss);
        if let Some(baseline) = report.server_rss_baseline_bytes
            && plateau_connections > 0
        {
            report.server_rss_per_connection_bytes =
                Some(rss.saturating_sub(baseline) as f64 / plateau_connections as f64);
        }
    }
    report.run_seconds = now_us().saturating_sub(start_at_us) as f64 / 1e6;
    if let Some(mut fleet) = engines.take() {
        report.server_cpu_seconds = fleet.cpu_seconds();
        let killed = fleet.stop();
        if killed > 0 {
            report.notes.push(format!("{killed} engine process(es) needed SIGKILL after the grace period"));
        }
    }
    drop(local_agents);

    if let Some(path) = &args.report {
        let json = serde_json::to_vec_pretty(&report).context("serialising the report")?;
        std::fs::write(path, json).with_context(|| format!("writing the report to {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        crate::plot::write_plot(path, &report.timeline, &format!("{:?}", args.scenario))?;
    }
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(report.render_summary().as_bytes());
    let _ = stdout.flush();
    Ok(if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Lowers this process's out-of-memory score (best effort: it needs CAP_SYS_RESOURCE to go below 0, and
/// without it the score stays as it was).
fn prefer_others_for_the_oom_killer() {
    let _ = std::fs::write("/proc/self/oom_score_adj", "-900");
}

/// Asks every agent to drain briefly and send its final report. An agent that cannot be told is already gone,
/// and the verdict counts it as lost.
fn stop_agents(links: &mut [AgentLink]) {
    for link in links {
        let _ = write_message(&mut link.writer, &ControllerMessage::Stop);
    }
}

/// The PEM text of a trusted certificates file, bounded.
fn read_roots(path: &Path) -> anyhow::Result<String> {
    let file =
        std::fs::File::open(path).with_context(|| format!("opening the certificates file {}", path.display()))?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(file, TLS_ROOTS_PEM_BYTES_MAX as u64 + 1), &mut text)
        .with_context(|| format!("reading the certificates file {} (PEM text)", path.display()))?;
    anyhow::ensure!(
        text.len() <= TLS_ROOTS_PEM_BYTES_MAX,
        "the certificates file {} is over {TLS_ROOTS_PEM_BYTES_MAX} bytes",
        path.display()
    );
    Ok(text)
}

fn max_seconds(seconds: Option<f64>, us: Option<u64>) -> Option<f64> {
    match (seconds, us.map(|us| us as f64 / 1e6)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}
