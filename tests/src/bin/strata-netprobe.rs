//! `strata-netprobe`: what the network tests and `cargo xtask bench ebpf` run inside containers
//! (or, with `--cgroup`, in a cgroup of their choosing): binds, a TCP sender and sink, and a bind()
//! latency loop. Each prints one line per result, so a test can read them from a task's stdout.
//!
//! ```text
//! strata-netprobe [--cgroup DIR] binds ADDR PORT...          "bind ADDR PORT ok ACTUAL" | "bind ADDR PORT err ERRNO"
//! strata-netprobe [--cgroup DIR] send HOST:PORT BYTES        "sent BYTES SECS"
//! strata-netprobe [--cgroup DIR] sink ADDR PORT [CONNS]      "received BYTES SECS" per connection
//! strata-netprobe [--cgroup DIR] bind-latency ADDR PORT N    "bind_ns MEAN_NS"
//! strata-netprobe [--cgroup DIR] every SECS -- SUBCOMMAND…   repeats a subcommand forever
//! ```

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--cgroup") {
        if args.len() < 2 {
            return usage("--cgroup needs a directory");
        }
        let dir = args[1].clone();
        // Moves this process into the cgroup (cgroup2: writing 0 means "me").
        if let Err(err) = std::fs::write(format!("{dir}/cgroup.procs"), "0") {
            eprintln!("strata-netprobe: failed to enter cgroup {dir}: {err}");
            return ExitCode::FAILURE;
        }
        args.drain(..2);
    }
    run(&args)
}

fn usage(message: &str) -> ExitCode {
    eprintln!(
        "strata-netprobe: {message}\nusage: strata-netprobe [--cgroup DIR] binds ADDR PORT... | \
         send HOST:PORT BYTES | sink ADDR PORT [CONNS] | bind-latency ADDR PORT N | \
         every SECS -- SUBCOMMAND..."
    );
    ExitCode::from(2)
}

fn run(args: &[String]) -> ExitCode {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["binds", addr, ports @ ..] if !ports.is_empty() => binds(addr, ports),
        ["send", target, bytes] => match (target.parse(), bytes.parse()) {
            (Ok(target), Ok(bytes)) => send(target, bytes),
            _ => usage("send HOST:PORT BYTES"),
        },
        ["sink", addr, port, rest @ ..] => {
            let conns = rest.first().map_or(Ok(1), |c| c.parse::<u32>());
            match (addr.parse::<IpAddr>(), port.parse::<u16>(), conns) {
                (Ok(addr), Ok(port), Ok(conns)) => sink(SocketAddr::new(addr, port), conns),
                _ => usage("sink ADDR PORT [CONNS]"),
            }
        }
        ["bind-latency", addr, port, n] => {
            match (
                addr.parse::<IpAddr>(),
                port.parse::<u16>(),
                n.parse::<u32>(),
            ) {
                (Ok(addr), Ok(port), Ok(n)) if n > 0 => {
                    bind_latency(SocketAddr::new(addr, port), n)
                }
                _ => usage("bind-latency ADDR PORT N"),
            }
        }
        ["every", secs, "--", rest @ ..] if !rest.is_empty() => match secs.parse::<f64>() {
            Ok(secs) if secs > 0.0 => {
                let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
                loop {
                    let _ = run(&rest);
                    std::thread::sleep(Duration::from_secs_f64(secs));
                }
            }
            _ => usage("every SECS -- SUBCOMMAND..."),
        },
        _ => usage("unknown or incomplete subcommand"),
    }
}

fn errno_name(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(libc::EPERM) => "EPERM".into(),
        Some(libc::EACCES) => "EACCES".into(),
        Some(libc::EADDRINUSE) => "EADDRINUSE".into(),
        Some(libc::EADDRNOTAVAIL) => "EADDRNOTAVAIL".into(),
        Some(code) => format!("errno{code}"),
        None => err.to_string().replace(' ', "_"),
    }
}

/// Tries a TCP bind to each port (released right after), printing the outcome of each.
fn binds(addr: &str, ports: &[&str]) -> ExitCode {
    let ip: IpAddr = match addr.parse() {
        Ok(ip) => ip,
        Err(_) => return usage("binds ADDR PORT..."),
    };
    for port in ports {
        let Ok(port) = port.parse::<u16>() else {
            return usage("binds ADDR PORT...");
        };
        match TcpListener::bind(SocketAddr::new(ip, port)) {
            Ok(listener) => {
                let actual = listener.local_addr().map(|a| a.port()).unwrap_or(0);
                println!("bind {addr} {port} ok {actual}");
            }
            Err(err) => println!("bind {addr} {port} err {}", errno_name(&err)),
        }
    }
    let _ = std::io::stdout().flush();
    ExitCode::SUCCESS
}

fn send(target: SocketAddr, bytes: u64) -> ExitCode {
    let start = Instant::now();
    let mut stream = match TcpStream::connect(target) {
        Ok(s) => s,
        Err(err) => {
            println!("send {target} err {}", errno_name(&err));
            return ExitCode::FAILURE;
        }
    };
    let chunk = vec![0x5au8; 256 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        if let Err(err) = stream.write_all(&chunk[..n]) {
            println!("send {target} err {}", errno_name(&err));
            return ExitCode::FAILURE;
        }
        left -= n as u64;
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
    // Wait for the peer to close, so every byte was received before we report.
    let _ = stream.read(&mut [0u8; 1]);
    println!("sent {bytes} {:.6}", start.elapsed().as_secs_f64());
    let _ = std::io::stdout().flush();
    ExitCode::SUCCESS
}

fn sink(addr: SocketAddr, conns: u32) -> ExitCode {
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(err) => {
            println!("sink {addr} err {}", errno_name(&err));
            let _ = std::io::stdout().flush();
            return ExitCode::FAILURE;
        }
    };
    println!(
        "listening {}",
        listener.local_addr().map(|a| a.port()).unwrap_or(0)
    );
    let _ = std::io::stdout().flush();
    let mut buf = vec![0u8; 256 * 1024];
    for _ in 0..conns {
        let Ok((mut stream, _)) = listener.accept() else {
            return ExitCode::FAILURE;
        };
        let start = Instant::now();
        let mut total = 0u64;
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n as u64,
                Err(_) => break,
            }
        }
        drop(stream);
        println!("received {total} {:.6}", start.elapsed().as_secs_f64());
        let _ = std::io::stdout().flush();
    }
    ExitCode::SUCCESS
}

/// Times `n` bind() calls of fresh sockets to `addr` (socket creation and close not timed).
fn bind_latency(addr: SocketAddr, n: u32) -> ExitCode {
    use socket2::{Domain, Socket, Type};
    let target = socket2::SockAddr::from(addr);
    let mut total = Duration::ZERO;
    for _ in 0..n {
        let socket = match Socket::new(Domain::for_address(addr), Type::STREAM, None) {
            Ok(s) => s,
            Err(err) => {
                println!("socket err {}", errno_name(&err));
                return ExitCode::FAILURE;
            }
        };
        let _ = socket.set_reuse_address(true);
        let start = Instant::now();
        let result = socket.bind(&target);
        total += start.elapsed();
        if let Err(err) = result {
            println!("bind err {}", errno_name(&err));
            return ExitCode::FAILURE;
        }
    }
    println!("bind_ns {:.1}", total.as_nanos() as f64 / f64::from(n));
    let _ = std::io::stdout().flush();
    ExitCode::SUCCESS
}
