//! The `strata` command. `main.rs` parses the flags and sets up logging; [`main`] runs the chosen
//! command and maps its outcome to an exit status.
//!
//! Every error ends the process with one line `error: …` on stderr and a non-zero status.
//!
//! Codemap: [`args`] flags; [`up`] `up`/`down` over [`daemons`] (pid files, `/proc` checks,
//! spawning and stopping); [`run`] the one-task framework over [`launch`] (pure decisions) and
//! [`output`] (sandbox following); [`inspect`] `tasks`/`agents`/`kill` over [`tables`];
//! [`allocation`] `roles`/`quota`/`weights`/`reserve`/`unreserve`/`drain`/`reactivate`.

pub mod allocation;
pub mod args;
pub mod certs;
pub mod config;
pub mod daemons;
pub mod images;
pub mod inspect;
pub mod launch;
pub mod logs;
pub mod master;
pub mod output;
pub mod pull;
pub mod run;
pub mod signals;
pub mod tables;
pub mod top;
pub mod units;
pub mod up;

use args::{Cli, Command};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Runs the command and returns the process's exit status.
pub fn main(cli: Cli) -> u8 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return 1;
        }
    };
    if let Command::Completions(args) = &cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(args.shell, &mut command, "strata", &mut std::io::stdout());
        return 0;
    }
    if let Command::Certs(args) = &cli.command {
        return match certs::certs(args) {
            Ok(()) => 0,
            Err(err) => {
                eprintln!("error: {err:#}");
                1
            }
        };
    }
    let given = match cli.master {
        Some(master) => master,
        None => match config::default_master() {
            Ok(master) => master,
            Err(err) => {
                eprintln!("error: {err:#}");
                return 2;
            }
        },
    };
    let (given, https) = match given.strip_prefix(args::HTTPS) {
        Some(rest) => (rest.to_string(), true),
        None => (given, false),
    };
    // `up` and `down` run plain daemons on loopback: no TLS to them.
    if !matches!(cli.command, Command::Up(_) | Command::Down(_)) {
        let flags = config::TlsFiles {
            ca: cli.tls_ca,
            cert: cli.tls_cert,
            key: cli.tls_key,
        };
        if let Err(err) = use_tls(https, flags) {
            eprintln!("error: {err:#}");
            return 2;
        }
    }
    match config::credentials(
        cli.principal.clone(),
        cli.secret_file.clone(),
        cli.token.clone(),
    ) {
        Ok(Some(auth)) => {
            strata_client::http::set_auth(auth);
        }
        Ok(None) => {}
        Err(err) => {
            eprintln!("error: {err:#}");
            return 2;
        }
    }
    if let Command::Token(args) = &cli.command {
        return token(cli.principal.as_deref(), args);
    }
    let result = runtime.block_on(async move {
        let master = resolve_master(&given).await?;
        match cli.command {
            Command::Up(args) => up::up(args).await,
            Command::Down(args) => up::down(args).await,
            // Its framework follows the leader through ZooKeeper, as Mesos' drivers do.
            Command::Run(args) => run::run(&given, &master, args).await,
            Command::Tasks(args) => inspect::tasks(&master, args).await,
            Command::Agents(args) => inspect::agents(&master, args).await,
            Command::Frameworks(args) => inspect::frameworks(&master, args).await,
            Command::Logs(args) => logs::logs(&given, &master, args).await,
            Command::Top(args) => top::top(&master, args).await,
            Command::Completions(_) | Command::Certs(_) | Command::Token(_) => Ok(0),
            Command::Kill(args) => inspect::kill(&master, args).await,
            Command::Images(args) => images::images(&master, args).await,
            Command::Roles(args) => allocation::roles(&master, args).await,
            Command::Quota(args) => allocation::quota(&master, args).await,
            Command::Weights(args) => allocation::weights(&master, args).await,
            Command::Reserve(args) => allocation::reserve(&master, args).await,
            Command::Unreserve(args) => allocation::unreserve(&master, args).await,
            Command::Drain(args) => allocation::drain(&master, args).await,
            Command::Reactivate(args) => allocation::reactivate(&master, args).await,
        }
    });
    // Do not wait for background reads (e.g. a sandbox follower) to notice the end.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", format!("{err:#}").replace('\n', " "));
            1
        }
    }
}

/// Turns TLS on for every connection to the cluster when a CA to trust is given (flags and
/// variables over `/etc/strata/cli.toml`); an `https://` master needs one.
fn use_tls(https: bool, flags: config::TlsFiles) -> anyhow::Result<()> {
    let file = config::tls_files()?;
    let ca = flags.ca.or(file.ca);
    let cert = flags.cert.or(file.cert);
    let key = flags.key.or(file.key);
    let Some(ca) = ca else {
        if https {
            anyhow::bail!(
                "an https:// master needs a CA to trust: give --tls-ca (or `tls_ca` in {})",
                config::path().display()
            );
        }
        if cert.is_some() {
            anyhow::bail!("--tls-cert needs --tls-ca (the CA the master's certificate chains to)");
        }
        return Ok(());
    };
    let identity = match (&cert, &key) {
        (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
        (None, None) => None,
        _ => anyhow::bail!("--tls-cert and --tls-key go together: give both or neither"),
    };
    strata_client::tls::use_tls(&ca, identity)?;
    Ok(())
}

/// The leading master's `host:port` for a `zk://` address (looked up once); others as given.
/// The `host:port` of `--master`: itself, or the leader named in ZooKeeper for `zk://…`.
pub(crate) async fn resolve_master(master: &str) -> anyhow::Result<String> {
    let Ok(url) = master.parse::<strata_ha::ZkUrl>() else {
        return Ok(master.to_string());
    };
    match strata_ha::zk::current_leader(&url, std::time::Duration::from_secs(5)).await {
        Ok(Some(leader)) => Ok(leader.endpoint()),
        Ok(None) => anyhow::bail!("no master leads in {url}"),
        Err(err) => anyhow::bail!("cannot find the leading master in {url}: {err}"),
    }
}

/// `host:port`, with an IPv6 address in brackets.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The address to connect to for a listener bound to `ip`: loopback for a wildcard address.
pub fn connect_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

/// `strata token`: prints a bearer token for `--principal`, signed with `--jwt-secret-key`.
fn token(principal: Option<&str>, args: &args::TokenArgs) -> u8 {
    let Some(principal) = principal else {
        eprintln!("error: strata token needs --principal");
        return 2;
    };
    let key = match strata_security::token::TokenKey::load(&args.jwt_secret_key) {
        Ok(key) => key,
        Err(err) => {
            eprintln!("error: {err}");
            return 1;
        }
    };
    let claims = strata_security::token::Claims::principal(principal, args.ttl.as_secs());
    println!("{}", key.mint(&claims));
    0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(host_port("127.0.0.1", 5050), "127.0.0.1:5050");
        assert_eq!(host_port("::1", 5050), "[::1]:5050");
        assert_eq!(
            connect_ip("0.0.0.0".parse().unwrap()).to_string(),
            "127.0.0.1"
        );
        assert_eq!(
            connect_ip(IpAddr::V6(Ipv6Addr::UNSPECIFIED)).to_string(),
            "::1"
        );
        assert_eq!(
            connect_ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))).to_string(),
            "10.0.0.1"
        );
    }
}
