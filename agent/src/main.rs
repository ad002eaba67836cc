use std::path::Path;
use strata_agent::config::{CleanupBpf, DEFAULT_CONFIG_FILE};
use strata_agent::{AgentConfig, AgentDaemon, AgentError};
use tracing::{info, warn};

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
    notify(sd_notify::NotifyState::Stopping);
}

/// Tells systemd (`Type=notify`) how the agent is doing; a no-op outside systemd. Supervisors
/// do not inherit `NOTIFY_SOCKET`: the containerizer clears their environment.
fn notify(state: sd_notify::NotifyState) {
    if let Err(err) = sd_notify::notify(false, &[state]) {
        warn!(cause = %err, "cannot notify systemd");
    }
}

fn main() -> std::process::ExitCode {
    // The per-container supervisor: single-threaded, before any runtime exists.
    if std::env::args().nth(1).as_deref() == Some("supervise") {
        std::process::exit(strata_agent::supervisor::main_from_args());
    }
    // Operator clean-up of the pinned BPF programs and maps (package removal, decommissioning),
    // in the pin dir the agent uses: its flags and config file are read as the agent reads them.
    if std::env::args().nth(1).as_deref() == Some("cleanup-bpf") {
        let layered = match CleanupBpf::parse_layered(
            std::env::args_os().skip(1),
            Path::new(DEFAULT_CONFIG_FILE),
        ) {
            Ok(layered) => layered,
            Err(err) => err.exit("strata-agent cleanup-bpf"),
        };
        init_tracing();
        if let Some(file) = &layered.file {
            info!(file = %file.display(), keys = %layered.applied.join(","),
                  overridden = %layered.overridden.join(","), "read the config file");
        }
        return match strata_ebpf::remove_pins(&layered.config.bpf_pin_dir) {
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
    let layered = match strata_flags::parse::<AgentConfig>(Path::new(DEFAULT_CONFIG_FILE)) {
        Ok(layered) => layered,
        Err(err) => err.exit("strata-agent"),
    };
    init_tracing();
    if let Some(file) = &layered.file {
        info!(file = %file.display(), keys = %layered.applied.join(","),
              overridden = %layered.overridden.join(","), "read the config file");
    }
    let config = layered.config;
    // `--recover=cleanup`: kill what the previous run left, remove its checkpoints, exit 0.
    if config.recover == strata_agent::config::Recover::Cleanup {
        return match strata_agent::cleanup::run(&config) {
            Ok(_) => std::process::ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("strata-agent: error: {err}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("strata-agent: error: failed to start the runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let agent = AgentDaemon::bind(config).await?;
        // Isolation is set up and the HTTP port bound; `run` adopts the containers of an
        // earlier run and (re)registers with the master, which may not be up yet.
        notify(sd_notify::NotifyState::Ready);
        agent.run(shutdown_signal()).await
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("strata-agent: error: {err}");
            match err {
                AgentError::Config(_) => std::process::ExitCode::from(strata_flags::USAGE_EXIT),
                _ => std::process::ExitCode::FAILURE,
            }
        }
    }
}
