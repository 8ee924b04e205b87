//! The `ringline-loadgen` binary: `run` is the controller (`controller.rs`), `agent` serves a controller
//! (`agent/`). Parses the command line with clap (bad flags are clap errors with exit code 2), and turns every
//! failure into one line on stderr and a non-zero exit code; a run that lost, duplicated or reordered anything
//! exits 1 after its report.

mod agent;
mod controller;
mod engine_process;
mod machine;
mod plot;

use std::process::ExitCode;

use clap::Parser;
use loadgen::cli::{Cli, Command};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let command_line: Vec<String> = std::env::args().collect();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run(args) => controller::run(args, command_line),
        Command::Agent(args) => agent::serve(args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ringline-loadgen: {error:#}");
            ExitCode::from(2)
        }
    }
}
