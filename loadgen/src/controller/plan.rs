//! What the run will be, decided from the flags and the files before and while things start: whether the flags
//! fit together, how many connections (and so how many engine and agent processes), which users, whom to
//! trust over TLS, when the ramp, the hold and the drain begin and end, and each agent's share of the users,
//! the ramp and the rate (its `RunPlan`). It starts nothing and talks to no agent: `spawn.rs` does, with what
//! this file decides. Notes it makes for the reader are printed and kept in the report.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use loadgen::cli::{AgentsArg, ProtocolName, RunArgs};
use loadgen::client::tls::TlsClient;
use loadgen::client::xmpp::XmppRealm;
use loadgen::control::{PlanUser, RunPlan, TlsPlan};
use loadgen::load_profile::LoadProfile;
use loadgen::report::Report;

use super::inputs::{key_hex, load_users, load_xmpp_users, read_roots};
use crate::machine::{connections_max, now_us};

/// Seconds from sending the plans to the planned start, so every agent has its core threads up.
const START_DELAY_US: u64 = 1_000_000;
const START_DELAY_PER_AGENT_US: u64 = 200_000;
/// Default ramp length for `--spawn-engine` without `--connections`.
const DEFAULT_RAMP_SECONDS: f64 = 60.0;
/// Memory assumed per connection pair (client and server sockets, engine and agent state) when defaulting.
const DEFAULT_BYTES_PER_CONNECTION: u64 = 64 * 1024;

/// How big the run is, decided before anything starts.
pub(super) struct RunSize {
    /// Client connections in all.
    pub(super) connections: u64,
    /// Client sockets one process (agent or engine) may hold.
    pub(super) per_process: u64,
    /// The `--ca` file's text, read and checked once.
    pub(super) ca_pem: Option<String>,
    /// When connections ramp and messages flow (`--stages`, or the ramp, hold and rate flags).
    pub(super) profile: LoadProfile,
}

impl RunSize {
    /// Processes of one kind (engines, local agents) the connections need.
    pub(super) fn processes(&self) -> u64 {
        self.connections.div_ceil(self.per_process)
    }
}

/// Checks that the flags fit together, reads `--ca`, and decides the number of connections (with
/// `--spawn-engine` and no `--connections`: what the ramp reaches in about a minute, within memory).
pub(super) fn size_run(args: &RunArgs, report: &mut Report) -> anyhow::Result<RunSize> {
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
        // The stages name their connections (clap refuses --connections beside them).
        _ if let Some(stages) = &args.stages => stages.connections_max(),
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
    let profile = match &args.stages {
        Some(stages) => LoadProfile::from_stages(stages, args.rate),
        None => LoadProfile::steady(connections, args.ramp, args.duration * 1_000_000, args.rate),
    };
    Ok(RunSize { connections, per_process, ca_pem, profile })
}

/// With `--tls`: the roots every agent trusts (`--ca`, else the spawned engines' dev certificate), checked
/// here once, and the server name rule.
pub(super) fn tls_plan(
    args: &RunArgs,
    ca_pem: Option<String>,
    dev_cert: Option<&Path>,
) -> anyhow::Result<Option<TlsPlan>> {
    if !args.tls {
        return Ok(None);
    }
    let roots_pem = match (ca_pem, dev_cert) {
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
    Ok(Some(TlsPlan { roots_pem, server_name: args.tls_server_name.clone(), resumption: !args.tls_no_resumption }))
}

/// The run's users as plans carry them, and (XMPP) their realm: from the keys or users file, or numbered from
/// `--xmpp-first-user` with `--xmpp-password`.
pub(super) fn plan_users(
    args: &RunArgs,
    keys_file: Option<PathBuf>,
    connections: u64,
) -> anyhow::Result<(Vec<PlanUser>, Option<XmppRealm>)> {
    Ok(match (args.protocol, keys_file) {
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
    })
}

/// When the run's phases begin and end, in µs since the Unix epoch (the clock every agent on a host shares).
#[derive(Debug, Clone, Copy)]
pub(super) struct RunTimes {
    pub(super) start_at_us: u64,
    pub(super) ramp_us: u64,
    pub(super) hold_start_at_us: u64,
    pub(super) hold_end_at_us: u64,
    pub(super) drain_deadline_us: u64,
}

impl RunTimes {
    /// Times for a run that starts once `agent_count` agents have their plans. Room to hand every agent its
    /// plan before any of them starts connecting: once they ramp, they and the engines take every core, and
    /// the last plans would go out late.
    pub(super) fn from_now(args: &RunArgs, profile: &LoadProfile, agent_count: usize) -> Self {
        let start_at_us = now_us() + START_DELAY_US + START_DELAY_PER_AGENT_US * agent_count as u64;
        let ramp_us = profile.ramp_us();
        let hold_start_at_us = start_at_us + profile.hold_start_us;
        let hold_end_at_us = start_at_us + profile.end_us;
        let drain_deadline_us = hold_end_at_us + args.drain_timeout * 1_000_000;
        Self { start_at_us, ramp_us, hold_start_at_us, hold_end_at_us, drain_deadline_us }
    }
}

/// Who connects, to what, and how: what every agent's plan is cut from, apart from the times.
pub(super) struct Roster {
    /// In plan order; each agent gets a run of them.
    pub(super) users: Vec<PlanUser>,
    /// With XMPP: the JID namespace of every user.
    pub(super) xmpp_realm: Option<XmppRealm>,
    pub(super) targets: Vec<SocketAddr>,
    pub(super) tls: Option<TlsPlan>,
}

/// Hands out the agents' plans one at a time: users split evenly (within each agent's capacity), ramp and rate
/// split by share. One plan at a time, so the users are held once, not once more in every plan.
pub(super) struct AgentPlans<'a> {
    args: &'a RunArgs,
    profile: &'a LoadProfile,
    run_id: u64,
    roster: Roster,
    next_user: usize,
    agent_count: usize,
    times: RunTimes,
    agent_cores: Option<usize>,
}

impl<'a> AgentPlans<'a> {
    pub(super) fn new(
        args: &'a RunArgs,
        profile: &'a LoadProfile,
        run_id: u64,
        roster: Roster,
        agent_count: usize,
        times: RunTimes,
    ) -> Self {
        // Local agents share this host's CPUs: several of them get CPUs ÷ agents cores each (as spawned engines
        // do), so that their threads do not outnumber the CPUs. Remote agents keep every core of their own host.
        let agent_cores = match (&args.agents, args.agent_cores) {
            (_, Some(cores)) => Some(cores),
            (AgentsArg::Auto, None) => {
                tuning::cpus::cores_each(None, agent_count, crate::engine_process::allowed_cpus().len().max(1))
            }
            (AgentsArg::Remote(_), None) => None,
        };
        Self { args, profile, run_id, roster, next_user: 0, agent_count, times, agent_cores }
    }

    /// The plan of agent `index` (plans are asked for in index order), which holds `connections_max` sockets.
    pub(super) fn plan_for(&mut self, index: usize, connections_max: u64) -> RunPlan {
        let args = self.args;
        let remaining_agents = self.agent_count - index;
        let users = &self.roster.users;
        let share = (users.len() - self.next_user).div_ceil(remaining_agents).min(connections_max as usize);
        let slice = &users[self.next_user..self.next_user + share];
        self.next_user += share;
        let fraction = slice.len() as f64 / users.len().max(1) as f64;
        let rate_share = if args.sends_messages() { fraction } else { 0.0 };
        RunPlan {
            run_id: self.run_id,
            scenario: args.scenario(),
            users: slice.to_vec(),
            targets: self.roster.targets.clone(),
            source_cidrs: args.source_cidr.clone(),
            ramps: self.profile.ramps_at(self.times.start_at_us),
            rates: self.profile.rates_at(self.times.start_at_us, rate_share),
            arrivals: args.arrivals,
            offline_share: args.offline_share,
            storm_share: args.storm_share,
            contacts_per_user: args.contacts as usize,
            body_bytes: args.body_bytes,
            body_bytes_mix: args.body_bytes_mix(),
            workload_mix: args.workload_mix(),
            ping_interval_s: args.ping_interval,
            connect_timeout_ms: args.connect_timeout_ms,
            start_at_us: self.times.start_at_us,
            hold_start_at_us: self.times.hold_start_at_us,
            hold_end_at_us: self.times.hold_end_at_us,
            drain_deadline_us: self.times.drain_deadline_us,
            cores: self.agent_cores,
            first_cpu: index * self.agent_cores.unwrap_or(1),
            protocol: args.protocol,
            xmpp_realm: self.roster.xmpp_realm.clone().map(Box::new),
            tls: self.roster.tls.clone().map(Box::new),
        }
    }

    /// Every user went into some plan.
    pub(super) fn placed_everyone(&self) -> bool {
        self.next_user == self.roster.users.len()
    }
}
