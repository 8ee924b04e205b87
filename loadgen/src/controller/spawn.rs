//! Starting what the plan asks for and stopping it again: the engine processes (`--spawn-engine`), the local
//! agent processes (re-executing this binary as `agent --listen 127.0.0.1:0 --once` with a fresh random token
//! in its environment, and reading `listening ADDR` from its stdout) or the remote agents' addresses, the control connections, and each agent's plan
//! handed over. Owns the children it starts ([`Started`]): they are stopped at the end of the run, and on
//! error or Ctrl-C when dropped. It does not watch the run (`progress.rs`) or judge it (`verdict.rs`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use anyhow::Context;

use loadgen::cli::{AgentsArg, RunArgs};
use loadgen::report::Report;

use loadgen::handshake::{AGENT_TOKEN_ENV, random_token};

use super::agents::{self, AgentLink, GreetingRules, Incoming};
use super::plan::{self, AgentPlans, Roster, RunSize, RunTimes};
use crate::engine_process::{EngineFleet, locate_engine_bin};
use crate::machine::HostMemory;

/// How long a local agent may take to print its address.
const AGENT_START_TIMEOUT: Duration = Duration::from_secs(20);

/// Local agent processes; killed when dropped (they exit on their own after a run).
#[derive(Default)]
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

/// A run under way: what was started for it, the agents' links and messages, and its times.
pub(super) struct Started {
    /// Held for its `Drop`, which waits for (or kills) the agents. Declared first: on an error it is dropped
    /// before the engines.
    local_agents: LocalAgents,
    engines: Option<EngineFleet>,
    pub(super) links: Vec<AgentLink>,
    pub(super) incoming: Receiver<Incoming>,
    pub(super) times: RunTimes,
    pub(super) connections: u64,
    /// The host's memory before any agent started, for the per-connection figures.
    pub(super) host_baseline: HostMemory,
}

impl Started {
    /// The server's resident memory: the spawned engines', or the `--server-pid` processes'.
    pub(super) fn server_rss_bytes(&self, server_pids: &[u32]) -> Option<u64> {
        server_rss_bytes(self.engines.as_ref(), server_pids)
    }

    /// Stops the engines (their CPU time read first) and then the local agents.
    pub(super) fn stop(mut self, report: &mut Report) {
        if let Some(mut fleet) = self.engines.take() {
            report.server_cpu_seconds = fleet.cpu_seconds();
            let killed = fleet.stop();
            if killed > 0 {
                report.notes.push(format!("{killed} engine process(es) needed SIGKILL after the grace period"));
            }
        }
        drop(self.local_agents);
    }
}

fn server_rss_bytes(engines: Option<&EngineFleet>, server_pids: &[u32]) -> Option<u64> {
    match engines {
        Some(fleet) => fleet.rss_bytes(),
        None if !server_pids.is_empty() => server_pids.iter().map(|&pid| crate::machine::rss_bytes(pid)).sum(),
        None => None,
    }
}

/// Starts the engines (with `--spawn-engine`) and the agents, takes the baselines, and hands every agent its
/// plan; returns once the agents have their plans and their messages are being read.
pub(super) fn start(args: &RunArgs, mut size: RunSize, report: &mut Report) -> anyhow::Result<Started> {
    let connections = size.connections;
    let engines = if args.spawn_engine { Some(start_engines(args, &size)?) } else { None };
    let (targets, keys_file) = match &engines {
        Some(fleet) => (fleet.targets(), Some(fleet.keys_file.clone())),
        None => (args.target.clone(), args.users.clone()),
    };
    let dev_cert = engines.as_ref().and_then(|fleet| fleet.tls_cert.as_deref());
    let tls = plan::tls_plan(args, size.ca_pem.take(), dev_cert)?;
    report.server_rss_baseline_bytes = server_rss_bytes(engines.as_ref(), &args.server_pid);
    let host_baseline = crate::machine::host_memory();
    report.host_slab_bytes_baseline = host_baseline.slab_bytes;
    let (users, xmpp_realm) = plan::plan_users(args, keys_file, connections)?;

    let mut local_agents = LocalAgents::default();
    let local_token = random_token();
    let (agent_addresses, token, agent_cidrs) = match &args.agents {
        AgentsArg::Remote(list) => (
            list.iter().map(|agent| agent.address).collect(),
            args.agent_token.as_deref(),
            list.iter().map(|agent| agent.source_cidr.clone()).collect(),
        ),
        AgentsArg::Auto => {
            let mut addresses = Vec::new();
            for _ in 0..size.processes() {
                let (child, address) = spawn_local_agent(&local_token)?;
                local_agents.children.push(child);
                addresses.push(address);
            }
            (addresses, Some(local_token.as_str()), Vec::new())
        }
    };
    let rules = GreetingRules { token, clock_offset_max_ms: args.agent_clock_offset_max_ms };
    let (mut links, greetings) = agents::connect(&agent_addresses, &rules)?;
    report.agents = links.len() as u64;
    if matches!(args.agents, AgentsArg::Remote(_)) {
        // Remote clocks shift the measured latencies by their offset: say by how much.
        for (address, greeting) in agent_addresses.iter().zip(&greetings) {
            let note = format!(
                "agent {address}: clock offset {:+.3} ms (round trip {:.3} ms)",
                greeting.clock.offset_us() as f64 / 1e3,
                greeting.clock.rtt_us() as f64 / 1e3
            );
            println!("{note}");
            report.notes.push(note);
        }
    }
    let capacity: u64 = greetings.iter().map(|greeting| greeting.ready.connections_max).sum();
    anyhow::ensure!(capacity >= connections, "the agents hold {capacity} connections, fewer than {connections}");

    let run_id = rand::random::<u64>() | 1;
    let agent_count = links.len();
    let times = RunTimes::from_now(args, &size.profile, agent_count);
    let target_count = targets.len();
    let roster = Roster { users, xmpp_realm, targets, tls };
    let mut plans = AgentPlans::new(args, &size.profile, run_id, roster, agent_count, times);
    for (index, (link, greeting)) in links.iter_mut().zip(&greetings).enumerate() {
        let mut plan = plans.plan_for(index, greeting.ready.connections_max);
        for (workload, users) in loadgen::workload_mix::workload_ranges(&plan.workload_mix, plan.users.len()) {
            *report.workload_users.entry(workload.name().to_owned()).or_default() += users.len() as u64;
        }
        // An agent's own `--agents ADDR=CIDR` range replaces --source-cidr for it.
        if let Some(Some(cidrs)) = agent_cidrs.get(index) {
            plan.source_cidrs.clone_from(cidrs);
        }
        agents::send_plan(link, index, plan)?;
    }
    anyhow::ensure!(plans.placed_everyone(), "could not place every user on an agent");
    // The agents have their users now; at millions of users the list is hundreds of MB this process need
    // not hold through the run.
    drop(plans);
    // Engines and agents are running (they keep the default score): if the kernel must kill, it picks one of
    // them, which the report counts, rather than this process, which holds the report.
    prefer_others_for_the_oom_killer();
    let incoming = agents::listen(greetings);
    println!(
        "run {run_id:016x}: {connections} connections over {} agent(s) to {} target(s), scenario {:?}, ramp {:.1} s, hold {:.1} s",
        agent_count,
        target_count,
        args.scenario(),
        times.ramp_us as f64 / 1e6,
        (times.hold_end_at_us - times.hold_start_at_us) as f64 / 1e6
    );
    Ok(Started { local_agents, engines, links, incoming, times, connections, host_baseline })
}

/// `--spawn-engine`: enough engine processes for the connections, users provisioned.
fn start_engines(args: &RunArgs, size: &RunSize) -> anyhow::Result<EngineFleet> {
    let bin = locate_engine_bin(args.engine_bin.as_deref())?;
    let processes = size.processes() as usize;
    let connections = size.connections;
    println!("starting {processes} engine process(es) from {} for {connections} connections", bin.display());
    EngineFleet::start(
        &bin,
        args.data_dir.as_deref(),
        processes,
        connections,
        args.engine_cores,
        &args.engine_args,
        args.tls,
    )
}

/// Starts `ringline-loadgen agent --listen 127.0.0.1:0 --once` with `token` in its environment (not on its
/// command line, which `ps` shows); how many core threads it runs comes with the plan.
fn spawn_local_agent(token: &str) -> anyhow::Result<(Child, SocketAddr)> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let mut command = Command::new(exe);
    command.args(["agent", "--listen", "127.0.0.1:0", "--once"]).env(AGENT_TOKEN_ENV, token);
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

/// Lowers this process's out-of-memory score (best effort: it needs CAP_SYS_RESOURCE to go below 0, and
/// without it the score stays as it was).
fn prefer_others_for_the_oom_killer() {
    let _ = std::fs::write("/proc/self/oom_score_adj", "-900");
}
