//! The controller (`ringline-loadgen run`): plans the run, starts its engines and agents, watches it, and
//! judges it. It never opens a client connection itself. [`run`] is those four steps, each in its own file:
//!
//! - `plan.rs` — how many connections, engines and agents; which users; the run's times; each agent's share
//!   (its `RunPlan`). `inputs.rs` — the files it reads for that (keys, XMPP users, certificates).
//! - `spawn.rs` — starts the engines (`--spawn-engine`) and the local agents (or connects to remote ones),
//!   hands each agent its plan, and stops what it started, also on Ctrl-C and on error (`Started`).
//!   `agents.rs` — the control connections: greeting, plan, stop, one reader thread per agent.
//! - `progress.rs` — the progress line every second, the timeline, the hold's plateau figures; stops the
//!   agents early on Ctrl-C or at the memory floor.
//! - `verdict.rs` — merges the agents' verdicts (counts summed, histograms merged bucket by bucket) into the
//!   report, writes it, and gives the exit code. `outputs.rs` — the report files beside the JSON and SVG
//!   (`--hlog` during the run, `--hgrm`, `--csv`, `--html` after it).

mod agents;
mod inputs;
mod outputs;
mod plan;
mod progress;
mod spawn;
mod verdict;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;

use loadgen::cli::RunArgs;
use loadgen::report::Report;

/// `ringline-loadgen run`. Returns the process exit code: non-zero when anything was lost, duplicated or reordered.
pub fn run(args: &RunArgs, command_line: Vec<String>) -> anyhow::Result<ExitCode> {
    let args = &args.with_scenario_file();
    let interrupted = flag_on_interrupt()?;
    let mut report = Report {
        command_line,
        machine: crate::machine::machine_info(),
        scenario: Some(args.scenario()),
        ..Default::default()
    };
    let size = plan::size_run(args, &mut report)?;
    report.hold_seconds = size.profile.end_us.saturating_sub(size.profile.hold_start_us) as f64 / 1e6;
    let mut started = spawn::start(args, size, &mut report)?;
    let mut interval_log = match &args.hlog {
        Some(path) => Some(outputs::IntervalLogFile::create(path, started.times.start_at_us)?),
        None => None,
    };
    let watched = progress::watch(args, &mut started, interval_log.as_mut(), &interrupted, &mut report);
    let histograms = verdict::judge(&started, watched, &mut report)?;
    started.stop(&mut report);
    if let Some(log) = interval_log {
        log.finish()?;
    }
    outputs::write_files(args, &report, &histograms)?;
    verdict::publish(args, &report)
}

/// A flag that Ctrl-C (SIGINT) and SIGTERM raise, so the run can stop the agents and still report.
fn flag_on_interrupt() -> anyhow::Result<Arc<AtomicBool>> {
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, interrupted.clone()).context("installing the Ctrl-C handler")?;
    }
    Ok(interrupted)
}
