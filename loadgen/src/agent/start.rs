//! Starting an agent's cores: the plan's users cut into one run per core, each core given its CPU, its share of
//! the ramp and the rate and its place in the source addresses, and started on its own named thread that runs
//! `core.rs` until the run is over. It reads none of the cores' reports (`relay.rs` does).

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use anyhow::Context;

use loadgen::client::any_driver::DriverUser;
use loadgen::client::tls::TlsClient;
use loadgen::control::RunPlan;
use loadgen::limits::{CONNECTIONS_PER_CORE_MAX, CORE_REPORT_QUEUE_CAPACITY};
use loadgen::load_profile::scale_rates;
use loadgen::source_addr::SourceAddresses;
use loadgen::workload_mix::{sender_ranges, workload_ranges_within};

use super::core::{CorePlan, CoreReport, run_core};

/// An agent's running cores.
pub(super) struct Cores {
    /// The plan they run, without its users (each core holds its own).
    pub(super) plan: Arc<RunPlan>,
    /// One per core, in core order.
    pub(super) threads: Vec<JoinHandle<()>>,
    /// Every core's reports, bounded by `CORE_REPORT_QUEUE_CAPACITY`.
    pub(super) reports: Receiver<CoreReport>,
}

/// The CPUs this process may use.
pub(super) fn cores_available() -> usize {
    std::thread::available_parallelism().map_or(1, |count| count.get())
}

/// Starts one thread per core (`plan.cores`, else one per CPU; never more than users) over the users.
pub(super) fn start_cores(
    plan: RunPlan,
    users: Vec<DriverUser>,
    sources: SourceAddresses,
    tls: Option<Arc<TlsClient>>,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<Cores> {
    let cpus = cores_available();
    let cores = plan.cores.unwrap_or(cpus).clamp(1, users.len().max(1));
    let per_core = users.len().div_ceil(cores).max(1);
    anyhow::ensure!(per_core <= CONNECTIONS_PER_CORE_MAX, "{per_core} users per core is over the limit");
    let plan = Arc::new(RunPlan { users: Vec::new(), ..plan });
    let (report_sender, reports) = sync_channel(CORE_REPORT_QUEUE_CAPACITY);
    // Each core sends its sending users' share of the agent's rate (all its users' share without a mix).
    // (Without a mix, idle runs have no rate to share.)
    let sending_users = |within: Range<usize>| -> usize {
        if plan.workload_mix.is_empty() {
            return within.len();
        }
        let ranges = workload_ranges_within(&plan.workload_mix, plan.scenario, users.len(), within);
        sender_ranges(&ranges).iter().map(ExactSizeIterator::len).sum()
    };
    let total_senders = sending_users(0..users.len()).max(1) as f64;
    let mut threads = Vec::new();
    let source_base = u64::from(std::process::id()) * 7919;
    for (core_index, chunk) in users.chunks(per_core).enumerate() {
        let first_user = core_index * per_core;
        let share = sending_users(first_user..first_user + chunk.len()) as f64 / total_senders;
        let core_plan = CorePlan {
            core_index,
            cpu: (plan.first_cpu + core_index) % cpus,
            users: chunk.to_vec(),
            plan: plan.clone(),
            sources: sources.clone(),
            source_offset: source_base + (core_index * per_core) as u64,
            rates: scale_rates(&plan.rates, share),
            tls: tls.clone(),
            plan_user_offset: first_user,
            plan_users: users.len(),
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
    Ok(Cores { plan, threads, reports })
}
