//! Hostile clients: oversized and slow HTTP request bodies and oversized Cap'n Proto frames are
//! cut off with an answer naming the limit, while the daemons go on serving everyone else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use strata_tests::framework::TestFramework;
use strata_tests::{http_request, Cluster};

const T: Duration = Duration::from_secs(30);

/// The daemons' limits.
const MAX_BODY: usize = strata_security::limits::MAX_BODY_BYTES;
const BODY_TIMEOUT: Duration = strata_security::limits::BODY_TIMEOUT;

/// Reads what the server sends until it closes or `within` passes; the status code of the
/// response at its start (0 when there is none) and the whole text.
fn read_answer(s: &mut TcpStream, within: Duration) -> (u16, String) {
    s.set_read_timeout(Some(within)).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

/// `GET /health` answers within a second.
fn served_promptly(addr: &str) {
    let started = Instant::now();
    let (code, _) = http_request(addr, "GET", "/health").unwrap();
    assert_eq!(code, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "GET /health on {addr} took {:?}",
        started.elapsed()
    );
}

fn post_head(addr: &str, path: &str, length: Option<usize>) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    let length = match length {
        Some(n) => format!("Content-Length: {n}\r\n"),
        None => "Transfer-Encoding: chunked\r\n".to_string(),
    };
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{length}\r\n"
    )
    .unwrap();
    s
}

#[test]
fn oversized_bodies_get_413_naming_the_limit() {
    let cluster = Cluster::start("cpus:1;mem:128").unwrap();
    let master = cluster.master.addr();
    let agent = cluster.agent(0).addr();
    for (addr, path) in [
        (master.as_str(), "/api/v1/scheduler"),
        (master.as_str(), "/api/v1"),
        (master.as_str(), "/quota"),
        (agent.as_str(), "/api/v1/executor"),
        (agent.as_str(), "/api/v1"),
    ] {
        // Announced too large: refused from the headers alone, nothing read.
        let mut s = post_head(addr, path, Some(MAX_BODY + 1));
        let (code, text) = read_answer(&mut s, Duration::from_secs(5));
        assert_eq!(code, 413, "{addr}{path}: {text}");
        assert!(
            text.contains(&format!("limit of {MAX_BODY} bytes")),
            "{addr}{path}: {text}"
        );

        // Chunked, without a length: refused once the limit is passed.
        let mut s = post_head(addr, path, None);
        let chunk = vec![b' '; 1 << 20];
        let mut sent = 0;
        while sent <= MAX_BODY {
            if write!(s, "{:x}\r\n", chunk.len())
                .and_then(|()| s.write_all(&chunk))
                .and_then(|()| s.write_all(b"\r\n"))
                .is_err()
            {
                break; // the server answered and closed: fine
            }
            sent += chunk.len();
        }
        let (code, text) = read_answer(&mut s, Duration::from_secs(5));
        assert_eq!(code, 413, "{addr}{path} (chunked): {text}");
        served_promptly(addr);
    }
    // A body within the limit still reaches its handler (which refuses it for what it says).
    let (code, body) =
        strata_tests::http_send(&master, "POST", "/api/v1", &serde_json::json!({})).unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(!cluster.logs().contains("panicked"), "{}", cluster.logs());
}

#[test]
fn slow_bodies_are_cut_off_while_others_are_served() {
    let cluster = Cluster::start("cpus:1;mem:128").unwrap();
    let master = cluster.master.addr();
    let agent = cluster.agent(0).addr();
    for addr in [master.as_str(), agent.as_str()] {
        let started = Instant::now();
        // One client announces 100 bytes, sends 10 and stalls; another drips a byte a second.
        let mut stalled = post_head(addr, "/api/v1", Some(100));
        stalled.write_all(b"{\"type\": \"").unwrap();
        let mut dripping = post_head(addr, "/api/v1", Some(1000));
        let drip = {
            let mut s = dripping.try_clone().unwrap();
            std::thread::spawn(move || {
                for _ in 0..40 {
                    if s.write_all(b" ").is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            })
        };
        // Everyone else is served promptly meanwhile.
        while started.elapsed() < BODY_TIMEOUT - Duration::from_secs(2) {
            served_promptly(addr);
            std::thread::sleep(Duration::from_millis(500));
        }
        for (what, s) in [("stalled", &mut stalled), ("dripping", &mut dripping)] {
            let (code, text) = read_answer(s, Duration::from_secs(10));
            let elapsed = started.elapsed();
            assert_eq!(code, 408, "{addr} {what}: {text}");
            assert!(
                text.contains("did not arrive within 10 seconds"),
                "{addr} {what}: {text}"
            );
            assert!(
                elapsed >= BODY_TIMEOUT - Duration::from_secs(1)
                    && elapsed < BODY_TIMEOUT + Duration::from_secs(5),
                "{addr} {what}: cut off after {elapsed:?}"
            );
        }
        drip.join().unwrap();
        served_promptly(addr);
    }
}

/// A client that never finishes its request's headers is cut off by the serving loop's header
/// read timeout (H1's part of the plan, `master/src/net.rs`, `agent/src/lib.rs`).
#[test]
fn slow_headers_are_cut_off_while_others_are_served() {
    let cluster = Cluster::start("cpus:1;mem:128").unwrap();
    for addr in [cluster.master.addr(), cluster.agent(0).addr()] {
        let started = Instant::now();
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
        let keep = {
            let mut s = s.try_clone().unwrap();
            std::thread::spawn(move || {
                for _ in 0..90 {
                    if s.write_all(b"a").is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            })
        };
        served_promptly(&addr);
        let (_, text) = read_answer(&mut s, Duration::from_secs(90));
        assert!(
            started.elapsed() < Duration::from_secs(75),
            "{addr}: a request whose headers never ended held its connection for {:?} ({text})",
            started.elapsed()
        );
        keep.join().unwrap();
        served_promptly(&addr);
    }
}

/// Cap'n Proto frames on the master's port: a header announcing a huge segment, one with too
/// many segments, and a frame past the traversal limit are refused, each closing its own
/// connection; the agent's connection and a framework's are unharmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_capnp_frames_are_refused() {
    let cluster = Cluster::start("cpus:1;mem:128").unwrap();
    let master = cluster.master.addr();
    let frames: [(&str, Vec<u8>); 4] = [
        // One segment of 2^31 words (16 GiB).
        (
            "a 16 GiB segment",
            [0u32.to_le_bytes(), 0x8000_0000u32.to_le_bytes()].concat(),
        ),
        // 400 MiB: under Cap'n Proto's default limit (512 MiB), which the master once used;
        // these 8 bytes made it allocate that much for the connection.
        (
            "a 400 MiB segment",
            [0u32.to_le_bytes(), (400u32 << 17).to_le_bytes()].concat(),
        ),
        // 100 MiB announced, past the 64 MiB limit.
        (
            "a 100 MiB segment",
            [0u32.to_le_bytes(), (100u32 << 17).to_le_bytes()].concat(),
        ),
        // 1000 segments.
        (
            "1000 segments",
            [999u32.to_le_bytes(), 1u32.to_le_bytes()].concat(),
        ),
    ];
    for (what, frame) in &frames {
        let started = Instant::now();
        let mut s = TcpStream::connect(&master).unwrap();
        s.write_all(frame).unwrap();
        // A few MiB more, as if the segment were on its way.
        let _ = s.write_all(&vec![0u8; 1 << 20]);
        let (_, text) = read_answer(&mut s, Duration::from_secs(10));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: the connection stayed open {:?} ({text:?})",
            started.elapsed()
        );
        served_promptly(&master);
    }
    // The agent stayed registered, and a framework gets its offer.
    cluster.wait_agents(1).unwrap();
    let mut fw = TestFramework::subscribe(&master, "after-hostile-frames")
        .await
        .unwrap();
    fw.offer_with("cpus:1", T).await.unwrap();
    let logs = cluster.logs();
    assert!(!logs.contains("panicked"), "{logs}");
}
