//! `strata`: parse the flags, set up logging, run the command, exit with its status.

use clap::Parser;
use std::process::ExitCode;
use strata_cli::args::Cli;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    ExitCode::from(strata_cli::main(cli))
}

/// Logs go to stderr, and only with `-v` (or `RUST_LOG` together with `-v`).
fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => return,
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
