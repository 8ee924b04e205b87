//! The agent process: listens for a controller, takes a run plan, runs one pinned thread per core
//! (`core.rs`, an epoll loop) over its share of the users, and reports progress every second and a verdict at the end over the
//! control protocol (`loadgen::control`). Owns the core threads and the aggregation of their reports; the
//! main thread never touches a client socket. A broken control connection stops the run.

mod accounting;
mod core;

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::time::{Duration, Instant};

use anyhow::Context;
use wire::parse_keys_line;

use loadgen::cli::AgentArgs;
use loadgen::client::any_driver::DriverUser;
use loadgen::client::tls::{HandshakeStats, TlsClient};
use loadgen::control::{
    AgentCounters, AgentFinal, AgentMessage, AgentProgress, AgentReady, ControllerMessage, ProtocolName, RunPlan,
    TlsHandshakeLatency, read_message, write_message,
};
use loadgen::latency::LatencyHistogram;
use loadgen::ledger::LedgerSummary;
use loadgen::limits::{CONNECTIONS_PER_CORE_MAX, CORE_REPORT_QUEUE_CAPACITY, FD_HEADROOM};
use loadgen::report::CORE_UNFINISHED;
use loadgen::source_addr::SourceAddresses;

use self::core::{CorePlan, CoreReport, run_core};
use crate::machine::{connections_max, now_us};

/// How long past the plan's drain deadline the main thread waits for the cores' final reports.
const FINAL_GRACE: Duration = Duration::from_secs(15);

fn cores_available() -> usize {
    std::thread::available_parallelism().map_or(1, |count| count.get())
}

/// `ringline-loadgen agent`: serves controllers one after the other (or one, with `--once`).
pub fn serve(args: &AgentArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen).with_context(|| format!("listening on {}", args.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening {address}").context("writing the bound address")?;
    stdout.flush().context("flushing stdout")?;
    loop {
        let (stream, peer) = listener.accept().context("accepting a controller")?;
        let result = serve_controller(stream);
        if let Err(error) = &result {
            eprintln!("ringline-loadgen agent: controller {peer}: {error:#}");
        }
        if args.once {
            return result;
        }
    }
}

fn serve_controller(stream: TcpStream) -> anyhow::Result<()> {
    stream.set_nodelay(true).context("control socket")?;
    let mut reader = BufReader::new(stream.try_clone().context("control socket")?);
    let mut writer = stream;
    let connections_max = connections_max();
    let ready = AgentReady { cores: cores_available(), connections_max, pid: std::process::id() };
    write_message(&mut writer, &AgentMessage::Ready(ready))?;
    let plan = match read_message::<ControllerMessage>(&mut reader)? {
        Some(ControllerMessage::Start(plan)) => *plan,
        Some(ControllerMessage::Stop) | None => return Ok(()),
    };
    match prepare(&plan, connections_max) {
        Ok((users, tls)) => run_plan(plan, users, tls, reader, writer),
        Err(error) => {
            write_message(&mut writer, &AgentMessage::Failed { error: format!("{error:#}") })?;
            Err(error)
        }
    }
}

/// The plan's users as drivers know them, and the TLS client every core shares (with TLS).
fn prepare(plan: &RunPlan, connections_max: u64) -> anyhow::Result<(Vec<DriverUser>, Option<Arc<TlsClient>>)> {
    anyhow::ensure!(
        plan.users.len() as u64 <= connections_max,
        "{} users is over this agent's {connections_max} sockets (RLIMIT_NOFILE less {FD_HEADROOM})",
        plan.users.len()
    );
    anyhow::ensure!(!plan.targets.is_empty(), "the plan names no target");
    let tls = match &plan.tls {
        None => None,
        Some(tls) => {
            anyhow::ensure!(plan.protocol == ProtocolName::Native, "TLS is for the native protocol only");
            let client = TlsClient::new(tls.roots_pem.as_bytes(), tls.server_name.as_deref()).context("tls")?;
            Some(Arc::new(if tls.resumption { client } else { client.without_resumption() }))
        }
    };
    let users: anyhow::Result<Vec<DriverUser>> = match plan.protocol {
        ProtocolName::Native => plan
            .users
            .iter()
            .map(|entry| {
                let line = format!("{} {}", entry.user, entry.key_hex);
                match parse_keys_line(&line) {
                    Ok(Some(user)) => Ok(DriverUser::Native(user)),
                    Ok(None) => anyhow::bail!("empty user entry"),
                    Err(error) => Err(anyhow::anyhow!("user {}: {error}", entry.user)),
                }
            })
            .collect(),
        ProtocolName::Xmpp => {
            let realm = plan.xmpp_realm.as_deref().context("an XMPP plan names no realm (prefix, domain)")?;
            let realm = Arc::new(realm.clone());
            plan.users
                .iter()
                .map(|entry| {
                    let password =
                        entry.password.as_deref().with_context(|| format!("user {} has no password", entry.user))?;
                    Ok(DriverUser::Xmpp { user: entry.user, password: password.into(), realm: realm.clone() })
                })
                .collect()
        }
    };
    Ok((users?, tls))
}

fn run_plan(
    plan: RunPlan,
    users: Vec<DriverUser>,
    tls: Option<Arc<TlsClient>>,
    mut reader: BufReader<TcpStream>,
    mut writer: TcpStream,
) -> anyhow::Result<()> {
    let sources = SourceAddresses::parse(&plan.source_cidrs).context("--source-cidr")?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("loadgen-control".into())
            .spawn(move || {
                // Stop on a stop message, on EOF and on a broken connection alike.
                while let Ok(Some(ControllerMessage::Start(_))) = read_message::<ControllerMessage>(&mut reader) {}
                stop.store(true, Ordering::Relaxed);
            })
            .context("spawning the control reader")?;
    }
    let cpus = cores_available();
    let cores = plan.cores.unwrap_or(cpus).clamp(1, users.len().max(1));
    let per_core = users.len().div_ceil(cores).max(1);
    anyhow::ensure!(per_core <= CONNECTIONS_PER_CORE_MAX, "{per_core} users per core is over the limit");
    let plan = Arc::new(RunPlan { users: Vec::new(), ..plan });
    let (report_sender, reports) = sync_channel(CORE_REPORT_QUEUE_CAPACITY);
    let total_users = users.len().max(1) as f64;
    let mut threads = Vec::new();
    let source_base = u64::from(std::process::id()) * 7919;
    for (core_index, chunk) in users.chunks(per_core).enumerate() {
        let share = chunk.len() as f64 / total_users;
        let core_plan = CorePlan {
            core_index,
            cpu: (plan.first_cpu + core_index) % cpus,
            users: chunk.to_vec(),
            plan: plan.clone(),
            sources: sources.clone(),
            source_offset: source_base + (core_index * per_core) as u64,
            ramp_per_s: (plan.ramp_per_s * share).max(1e-3),
            rate_per_s: plan.rate_per_s * share,
            tls: tls.clone(),
        };
        let stop = stop.clone();
        let report_sender = report_sender.clone();
        let handle = std::thread::Builder::new()
            .name(format!("loadgen-core-{core_index}"))
            .spawn(move || {
                if let Err(error) = run_core(core_plan, &stop, &report_sender) {
                    eprintln!("ringline-loadgen agent: core {core_index} could not start: {error}");
                }
            })
            .with_context(|| format!("starting the thread of core {core_index}"))?;
        threads.push(handle);
    }
    drop(report_sender);
    let core_count = threads.len();
    let mut latest: Vec<AgentCounters> = vec![AgentCounters::default(); core_count];
    let mut interval_ack = LatencyHistogram::new();
    let mut interval_delivery = LatencyHistogram::new();
    let mut finals = Vec::new();
    let mut next_progress = Instant::now() + Duration::from_secs(1);
    let deadline_us = plan.drain_deadline_us + FINAL_GRACE.as_micros() as u64;
    while finals.len() < core_count && now_us() < deadline_us {
        match reports.recv_timeout(Duration::from_millis(100)) {
            Ok(CoreReport::Progress(progress)) => {
                latest[progress.core_index] = progress.counters;
                interval_ack.merge(&progress.interval_ack)?;
                interval_delivery.merge(&progress.interval_delivery)?;
            }
            Ok(CoreReport::Final(core_final)) => finals.push(core_final),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if Instant::now() >= next_progress {
            next_progress += Duration::from_secs(1);
            let progress = AgentProgress {
                at_us: now_us(),
                counters: sum_counters(&latest),
                interval_latency_ack: interval_ack.to_base64()?,
                interval_latency_delivery: interval_delivery.to_base64()?,
            };
            interval_ack.reset();
            interval_delivery.reset();
            if write_message(&mut writer, &AgentMessage::Progress(progress)).is_err() {
                stop.store(true, Ordering::Relaxed);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let unfinished = core_count - finals.len();
    if unfinished > 0 {
        // Report what is known rather than nothing: the finished cores' verdicts and the others' last progress.
        // Their threads are left to stop on the flag.
        eprintln!(
            "ringline-loadgen agent: {unfinished} of {core_count} cores never finished; reporting their last progress"
        );
    }
    let mut agent_final = AgentFinal {
        counters: AgentCounters::default(),
        connections_peak: 0,
        ledger: LedgerSummary::default(),
        latency_ack: String::new(),
        latency_delivery: String::new(),
        latency_offline_delivery: String::new(),
        errors: Default::default(),
        ramp_done_at_us: Some(0),
        storm_recovery_us: None,
        storm_dropped: 0,
        offline_drain_us: None,
        rss_peak_bytes: 0,
        cpu_ms: 0,
        tls_handshake_latency: None,
    };
    let mut handshakes: Option<HandshakeStats> = None;
    let (mut ack, mut delivery, mut offline) =
        (LatencyHistogram::new(), LatencyHistogram::new(), LatencyHistogram::new());
    let mut counters = Vec::new();
    let finished: Vec<usize> = finals.iter().map(|core_final| core_final.core_index).collect();
    for (core_index, last) in latest.iter().enumerate() {
        if !finished.contains(&core_index) {
            counters.push(last.clone());
            agent_final.connections_peak += last.connections_up;
            agent_final.ramp_done_at_us = None;
            *agent_final.errors.entry(CORE_UNFINISHED.into()).or_default() += 1;
        }
    }
    for core_final in &finals {
        counters.push(core_final.counters.clone());
        agent_final.connections_peak += core_final.connections_peak;
        agent_final.ledger.merge(&core_final.ledger);
        ack.merge(&core_final.latency_ack)?;
        delivery.merge(&core_final.latency_delivery)?;
        offline.merge(&core_final.latency_offline_delivery)?;
        for (kind, count) in &core_final.errors {
            *agent_final.errors.entry(kind.clone()).or_default() += count;
        }
        agent_final.ramp_done_at_us = match (agent_final.ramp_done_at_us, core_final.ramp_done_at_us) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        agent_final.storm_recovery_us = agent_final.storm_recovery_us.max(core_final.storm_recovery_us);
        agent_final.storm_dropped += core_final.storm_dropped;
        agent_final.offline_drain_us = agent_final.offline_drain_us.max(core_final.offline_drain_us);
        if let Some(core_handshakes) = &core_final.tls {
            handshakes.get_or_insert_with(HandshakeStats::new).merge(core_handshakes)?;
        }
    }
    if let Some(handshakes) = &handshakes {
        agent_final.tls_handshake_latency = Some(TlsHandshakeLatency {
            all: handshakes.latency.to_base64()?,
            full: handshakes.latency_full.to_base64()?,
            resumed: handshakes.latency_resumed.to_base64()?,
        });
    }
    agent_final.counters = sum_counters(&counters);
    agent_final.latency_ack = ack.to_base64()?;
    agent_final.latency_delivery = delivery.to_base64()?;
    agent_final.latency_offline_delivery = offline.to_base64()?;
    agent_final.rss_peak_bytes = crate::machine::own_rss_peak_bytes().unwrap_or(0);
    agent_final.cpu_ms = crate::machine::cpu_ms("self").unwrap_or(0);
    write_message(&mut writer, &AgentMessage::Final(Box::new(agent_final)))?;
    // The cores close their connections after their verdict (a million closes take a while on a small box);
    // wait for that only once the verdict is out.
    if unfinished == 0 {
        for handle in threads {
            let _ = handle.join();
        }
    }
    Ok(())
}

fn sum_counters(all: &[AgentCounters]) -> AgentCounters {
    let mut sum = AgentCounters::default();
    for counters in all {
        sum.connections_up += counters.connections_up;
        sum.connections_established += counters.connections_established;
        sum.connect_errors += counters.connect_errors;
        sum.reconnects += counters.reconnects;
        sum.sent += counters.sent;
        sum.acked += counters.acked;
        sum.delivered += counters.delivered;
        sum.tls_handshakes_full += counters.tls_handshakes_full;
        sum.tls_handshakes_resumed += counters.tls_handshakes_resumed;
        sum.tls_handshake_failures += counters.tls_handshake_failures;
    }
    sum
}
