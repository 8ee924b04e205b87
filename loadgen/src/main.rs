//! The `ringline-loadgen` binary: `run` is the controller (`controller.rs`), `agent` serves a controller
//! (`agent/`), `completions` and `man` print what clap_complete and clap_mangen make of the flags. Parses the command line with clap (bad flags are clap errors with exit code 2), and turns every
//! failure into one line on stderr and a non-zero exit code; a run that lost, duplicated or reordered anything
//! exits 1 after its report.

mod agent;
mod controller;
mod engine_process;
mod machine;
mod plot;

use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use loadgen::cli::{Cli, Command};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let command_line: Vec<String> = std::env::args().collect();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run(args) => controller::run(args, command_line),
        Command::Agent(args) => agent::serve(args).map(|()| ExitCode::SUCCESS),
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "ringline-loadgen", &mut std::io::stdout().lock());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out_dir } => write_man_pages(out_dir.as_deref()).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ringline-loadgen: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// `ringline-loadgen man`: ringline-loadgen.1 to stdout, or one page per subcommand into `out_dir`.
fn write_man_pages(out_dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    match out_dir {
        None => clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout().lock()).context("writing stdout"),
        Some(out_dir) => {
            std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
            clap_mangen::generate_to(Cli::command(), out_dir)
                .with_context(|| format!("writing man pages into {}", out_dir.display()))?;
            println!("wrote the man pages into {}", out_dir.display());
            Ok(())
        }
    }
}
