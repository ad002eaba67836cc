use clap::Parser;
use strata_agent::{AgentConfig, AgentDaemon};

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRATA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn main() -> std::process::ExitCode {
    // The per-container supervisor: single-threaded, before any runtime exists.
    if std::env::args().nth(1).as_deref() == Some("supervise") {
        std::process::exit(strata_agent::supervisor::main_from_args());
    }
    // Operator clean-up of the pinned BPF programs and maps (package removal, decommissioning).
    if std::env::args().nth(1).as_deref() == Some("cleanup-bpf") {
        let args = strata_agent::config::CleanupBpf::parse_from(std::env::args().skip(1));
        init_tracing();
        return match strata_ebpf::remove_pins(&args.bpf_pin_dir) {
            Ok(removed) => {
                for path in removed {
                    println!("removed {}", path.display());
                }
                std::process::ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("strata-agent cleanup-bpf: error: {err}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let config = AgentConfig::parse();
    init_tracing();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("strata-agent: error: failed to start the runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let agent = AgentDaemon::bind(config).await?;
        agent.run(shutdown_signal()).await
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("strata-agent: error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
