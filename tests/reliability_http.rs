//! The metrics port through the real binary: it serves its three paths and nothing else,
//! and outlives garbage and slow clients.

mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::http::try_http_get;
use support::results;
use support::wait::wait_for;
use support::world::{Proto, Settings, World};

/// Sends `request` on a fresh connection and returns the status code (0 when the
/// server answered nothing before closing).
fn raw(addr: SocketAddr, request: &[u8]) -> u16 {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return 0;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.write_all(request);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn metrics_port_serves_only_its_three_paths_and_outlives_garbage_and_slow_clients() {
    let world = World::with(Settings::stress(), Duration::from_secs(3600));
    let cert = world.cert("orders", Proto::Compass);
    world.write_config(std::slice::from_ref(&cert));
    world.enroll(&cert.name);
    let mut daemon = world.daemon().label("daemon").serving();
    daemon.wait_ready();
    let addr = daemon.metrics_addr();
    let fds_before = open_fds(daemon.pid());
    let (_, hwm_before) = daemon.memory_kib();

    // Only GET and HEAD of the three paths succeed.
    let get =
        |target: &str| format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    for ok in ["/metrics", "/healthz", "/readyz", "/metrics?x=1"] {
        assert_eq!(raw(addr, get(ok).as_bytes()), 200, "{ok}");
    }
    let mut refused = 0;
    for target in [
        "/",
        "/metrics/",
        "/metricsx",
        "/Metrics",
        "//metrics",
        "/metrics/../healthz",
        "/../../etc/passwd",
        "/debug/pprof",
        "/favicon.ico",
        "/healthz/",
        "*",
        "/%6detrics",
    ] {
        let status = raw(addr, get(target).as_bytes());
        assert!(
            matches!(status, 400 | 404),
            "GET {target} answered {status}"
        );
        refused += 1;
    }
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"] {
        let request = format!(
            "{method} /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let status = raw(addr, request.as_bytes());
        assert_eq!(status, 405, "{method} /metrics answered {status}");
        refused += 1;
    }

    // A burst of garbage: none of it is answered with 200, and the port stays up.
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut garbage_sent = 0;
    let long_header = format!(
        "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let shapes: Vec<Vec<u8>> = vec![
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(), // a TLS ClientHello
        b"GET /metrics\r\n\r\n".to_vec(),                         // HTTP/0.9
        b"GET /metrics HTTP/9.9\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
            .to_vec(),
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".to_vec(),
        b"\r\n\r\n\r\n\r\n".to_vec(),
        long_header.into_bytes(),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
    ];
    let mut handles = Vec::new();
    for i in 0..300 {
        let payload = if i % 3 == 0 {
            (0..512)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng as u8
                })
                .collect()
        } else {
            shapes[i % shapes.len()].clone()
        };
        garbage_sent += 1;
        handles.push(std::thread::spawn(move || (raw(addr, &payload), payload)));
    }
    for handle in handles {
        let (status, payload) = handle.join().unwrap();
        assert_ne!(
            status,
            200,
            "garbage was answered with 200: {:?}",
            String::from_utf8_lossy(&payload[..payload.len().min(120)])
        );
    }
    assert_eq!(raw(addr, get("/healthz").as_bytes()), 200);

    // Slow clients: more than the connection limit, trickling a request byte by byte.
    let stop = Arc::new(AtomicBool::new(false));
    let mut slow = Vec::new();
    for _ in 0..100 {
        let stop = Arc::clone(&stop);
        slow.push(std::thread::spawn(move || {
            let Ok(mut stream) = TcpStream::connect(addr) else {
                return Duration::ZERO;
            };
            let started = Instant::now();
            for byte in b"GET /metrics HTTP/1.1\r\nHost: slow\r\nX-Slow: "
                .iter()
                .cycle()
            {
                if stop.load(Ordering::SeqCst) || stream.write_all(&[*byte]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            started.elapsed()
        }));
    }
    std::thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    let answer = try_http_get(addr, "/healthz", &[], Duration::from_secs(20));
    let waited = asked.elapsed();
    assert_eq!(
        answer.map(|a| a.status).ok(),
        Some(200),
        "no answer while slow clients held the port"
    );
    assert!(
        waited < Duration::from_secs(12),
        "a scrape waited {waited:?} behind slow clients"
    );
    // The server cuts slow clients off; they do not hold connections forever.
    wait_for(
        "the slow clients to be cut off",
        Duration::from_secs(30),
        || slow.iter().all(|h| h.is_finished()).then_some(()),
    );
    stop.store(true, Ordering::SeqCst);
    let held: Vec<Duration> = slow.into_iter().map(|h| h.join().unwrap()).collect();
    let longest = held.iter().max().copied().unwrap_or_default();

    assert!(daemon.alive());
    assert_eq!(daemon.try_get("/metrics").map(|r| r.0), Some(200));
    let fds_after = wait_for(
        "descriptors to be released",
        Duration::from_secs(15),
        || {
            let n = open_fds(daemon.pid());
            (n <= fds_before + 2).then_some(n)
        },
    );
    let (_, hwm_after) = daemon.memory_kib();
    assert!(
        hwm_after <= hwm_before + 16 * 1024,
        "peak memory grew from {hwm_before} to {hwm_after} KiB"
    );
    results::record(
        "7c-metrics-port",
        "the metrics port under wrong paths and methods, 300 garbage requests (random bytes, TLS, HTTP/0.9 and 2.0 prefaces, bad and doubled Content-Length, a 64 KiB header) and 100 slow clients trickling a request (more than its 64-connection limit)",
        "only GET/HEAD of /metrics, /healthz, /readyz answer 200; others 400/404/405; garbage never 200; a scrape during the slow clients is answered within 12 s; slow clients are cut off; descriptors return to their count before; the daemon keeps running",
        &[
            ("refused requests", refused.to_string()),
            ("garbage requests", garbage_sent.to_string()),
            (
                "scrape during slow clients",
                format!("{:.1} s", waited.as_secs_f64()),
            ),
            (
                "longest a slow client was kept",
                format!("{:.1} s", longest.as_secs_f64()),
            ),
            ("descriptors", format!("{fds_before} -> {fds_after}")),
            ("VmHWM", format!("{hwm_before} -> {hwm_after} KiB")),
        ],
    );
}
