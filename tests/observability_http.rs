//! The daemon's HTTP endpoint from the outside: `/readyz` and `/healthz` answers, nothing
//! but the three paths, garbage and slow clients that cannot take it down, an oversized
//! request refused, and the scrape latency with a thousand certificates configured.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::http::{Response, exchange, http_get};
use support::running::Daemon;
use support::scrape::Scrape;
use support::world::{CertSpec, Settings, World};

const SHORT: Duration = Duration::from_secs(20);
const LONG: Duration = Duration::from_secs(3600);

/// A daemon with one certificate that was never enrolled.
fn lone_daemon() -> (World, Daemon) {
    let world = World::with(Settings::quiet(), LONG);
    world.write_config(&[world.kyma_rest("orders")]);
    let daemon = world.daemon().serving();
    daemon.wait_state("orders", "missing", SHORT);
    (world, daemon)
}

fn request(addr: SocketAddr, method: &str, path: &str) -> Response {
    let raw = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    exchange(addr, raw.as_bytes(), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

#[test]
fn readyz_is_200_only_when_every_certificate_is_valid_and_lists_the_states() {
    let world = World::with(Settings::quiet(), Duration::from_secs(3600));
    world.write_config(&[world.compass("orders"), world.kyma_rest("billing")]);
    world.enroll("orders");
    let daemon = world.daemon().serving();
    daemon.wait_scrape(SHORT, "orders valid, billing missing", |s| {
        s.state("orders").as_deref() == Some("valid")
            && s.state("billing").as_deref() == Some("missing")
    });
    let ready = daemon.response("/readyz");
    assert_eq!(ready.status, 503);
    assert_eq!(ready.header("content-type"), Some("application/json"));
    assert_eq!(
        ready.json(),
        serde_json::json!({"ready": false, "certificates": {"orders": "valid", "billing": "missing"}})
    );

    world.enroll("billing");
    daemon.wait_state("billing", "valid", SHORT);
    let ready = daemon.response("/readyz");
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(
        ready.json(),
        serde_json::json!({"ready": true, "certificates": {"orders": "valid", "billing": "valid"}})
    );

    let health = daemon.response("/healthz");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
}

#[test]
fn only_the_three_paths_are_served_and_only_to_get_and_head() {
    let (_world, daemon) = lone_daemon();
    let addr = daemon.metrics_addr();
    for path in ["/metrics", "/healthz", "/readyz"] {
        let expected = if path == "/readyz" { 503 } else { 200 };
        assert_eq!(request(addr, "GET", path).status, expected, "GET {path}");
        let head = request(addr, "HEAD", path);
        assert_eq!(head.status, expected, "HEAD {path}");
        assert_eq!(head.body, "", "HEAD {path} has no body");
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let response = request(addr, method, path);
            assert_eq!(response.status, 405, "{method} {path}");
            assert_eq!(
                response.header("allow"),
                Some("GET, HEAD"),
                "{method} {path}"
            );
        }
    }
    for path in [
        "/",
        "/metrics/",
        "/metricsx",
        "/metrics.json",
        "/debug/pprof/",
        "/favicon.ico",
        "/%2e%2e/metrics",
        "//metrics",
    ] {
        assert_eq!(request(addr, "GET", path).status, 404, "GET {path}");
        assert_eq!(request(addr, "POST", path).status, 404, "POST {path}");
    }
}

/// Sends `bytes`, half-closes, and reads whatever comes back until the server closes.
/// Returns the bytes read, or `None` when the server did not close within `limit`.
fn throw(addr: SocketAddr, bytes: &[u8], limit: Duration) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(limit)).expect("timeout");
    // The server may close before reading everything: a failed write is an answer too.
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => Some(answer),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(answer),
        Err(_) => None,
    }
}

fn assert_serving(addr: SocketAddr, within: Duration) {
    let started = Instant::now();
    let scrape = http_get(addr, "/metrics", &[]);
    assert_eq!(scrape.status, 200);
    assert!(
        scrape.body.contains("kyma_certd_build_info"),
        "{}",
        scrape.body
    );
    assert_eq!(http_get(addr, "/healthz", &[]).status, 200);
    assert!(
        started.elapsed() < within,
        "serving took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_burst_of_garbage_requests_leaves_the_endpoint_serving() {
    let (_world, daemon) = lone_daemon();
    let addr = daemon.metrics_addr();
    let long_line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(20_000));
    // Each with whether its head is malformed (a 4xx or a closed connection) or only its
    // body is (the handler never reads a body: any well-formed answer will do).
    let garbage: Vec<(Vec<u8>, bool)> = vec![
        (
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03".to_vec(),
            true,
        ), // TLS ClientHello
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), true),
        (b"GET /metrics HTTP/9.9\r\n\r\n".to_vec(), true),
        (b"\0\0\0\0\0\0\0\0\r\n\r\n".to_vec(), true),
        (
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(),
            true,
        ),
        (
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".to_vec(),
            true,
        ),
        (b"\xff\xfe\xfd GET \xc3\x28 HTTP/1.1\r\n\r\n".to_vec(), true),
        (b"GET\r\n\r\n".to_vec(), true),
        (long_line.into_bytes(), true),
        (
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
            true,
        ),
        (
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
                .to_vec(),
            false,
        ),
        (b"\r\n\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n".to_vec(), false),
    ];
    let started = Instant::now();
    std::thread::scope(|scope| {
        for worker in 0..8 {
            let garbage = &garbage;
            scope.spawn(move || {
                for round in 0..25 {
                    let (bytes, bad_head) = &garbage[(worker + round) % garbage.len()];
                    let answer = throw(addr, bytes, Duration::from_secs(10))
                        .unwrap_or_else(|| panic!("the server held on to garbage {bytes:?}"));
                    let text = String::from_utf8_lossy(&answer);
                    let expected = if *bad_head { "HTTP/1.1 4" } else { "HTTP/1.1 " };
                    assert!(
                        text.is_empty() || text.starts_with(expected),
                        "garbage {bytes:?} got {text}"
                    );
                }
            });
        }
    });
    eprintln!("200 garbage requests answered in {:?}", started.elapsed());
    assert_serving(addr, Duration::from_secs(2));
    let logs = daemon.log_text();
    assert!(
        !logs.contains("kyma_certd::report::http"),
        "bad clients do not fill the log at info:\n{logs}"
    );
}

/// Opens `n` connections that send the start of a request head and then nothing.
fn slow_clients(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).expect("connect");
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: slow\r\nX-Slow: ")
                .expect("partial head");
            stream
        })
        .collect()
}

/// Waits until the server closes `stream` (EOF, a reset or a 408), failing after `limit`.
fn wait_closed(mut stream: TcpStream, limit: Duration) {
    stream.set_read_timeout(Some(limit)).expect("timeout");
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => {
            let text = String::from_utf8_lossy(&answer);
            assert!(
                text.is_empty() || text.starts_with("HTTP/1.1 408"),
                "{text}"
            );
        }
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("a slow client was not cut off within {limit:?}: {e}"),
    }
}

#[test]
fn slow_clients_with_partial_headers_neither_block_scrapes_nor_stay_forever() {
    let (_world, daemon) = lone_daemon();
    let addr = daemon.metrics_addr();

    // Fewer than the connection limit: scrapes go on as if they were not there.
    let started = Instant::now();
    let slow = slow_clients(addr, 20);
    for _ in 0..20 {
        assert_serving(addr, Duration::from_secs(1));
    }
    // The header timeout (5 s) cuts them off.
    for stream in slow {
        wait_closed(stream, Duration::from_secs(10));
    }
    let cut_off = started.elapsed();
    assert!(
        cut_off < Duration::from_secs(9),
        "cut off after {cut_off:?}"
    );

    // More than the limit (64): a scrape takes the slot of the oldest stalled client.
    let started = Instant::now();
    let slow = slow_clients(addr, 80);
    std::thread::sleep(Duration::from_millis(200));
    assert_serving(addr, Duration::from_secs(12));
    eprintln!(
        "with 80 stalled clients a scrape was served after {:?}",
        started.elapsed()
    );
    for stream in slow {
        wait_closed(stream, Duration::from_secs(15));
    }
    assert_serving(addr, Duration::from_secs(1));
}

#[test]
fn an_oversized_request_is_refused_and_the_endpoint_keeps_serving() {
    let (_world, daemon) = lone_daemon();
    let addr = daemon.metrics_addr();
    let huge_header = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(16 * 1024)
    );
    let answer = throw(addr, huge_header.as_bytes(), Duration::from_secs(10))
        .expect("the server answers or closes");
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 431"),
        "a 16 KiB head is refused: {text}"
    );

    let many_headers: String = (0..2000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let raw = format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n");
    let answer =
        throw(addr, raw.as_bytes(), Duration::from_secs(10)).expect("the server answers or closes");
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 431"),
        "2000 headers are refused: {text}"
    );

    // A large body is never read: the answer comes before the body is sent.
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .write_all(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n")
        .expect("head");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).expect("an answer");
    assert_eq!(&first, b"HTTP/1.1 405");
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(stream);

    assert_serving(addr, Duration::from_secs(2));
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[test]
fn scrape_latency_with_a_thousand_certificates() {
    const CERTS: usize = 1000;
    const SCRAPES: usize = 500;
    let world = World::with(Settings::quiet(), LONG);
    let certs: Vec<CertSpec> = (0..CERTS)
        .map(|i| world.kyma_rest(&format!("cert-{i:04}")))
        .collect();
    world.write_config(&certs);
    for cert in &certs {
        std::fs::create_dir_all(&cert.dir).expect("an empty directory");
    }
    let daemon = world.daemon().serving();
    let missing = [("state", "missing")];
    let scrape = daemon.wait_scrape(Duration::from_secs(60), "1000 missing certificates", |s| {
        s.matching("kyma_certd_certificate_state", &missing)
            .iter()
            .filter(|s| s.value == 1.0)
            .count()
            == CERTS
    });
    let classic_bytes = scrape.text.len();

    let open_metrics = [(
        "Accept",
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
    )];
    let mut report = Vec::new();
    for (label, headers) in [("classic", &[][..]), ("openmetrics", &open_metrics[..])] {
        let mut times = Vec::with_capacity(SCRAPES);
        let mut size = 0;
        for _ in 0..SCRAPES {
            let started = Instant::now();
            let response = http_get(daemon.metrics_addr(), "/metrics", headers);
            times.push(started.elapsed());
            assert_eq!(response.status, 200);
            size = response.body.len();
        }
        times.sort();
        let line = format!(
            "{label}: {CERTS} certificates, {size} bytes, {SCRAPES} scrapes (new connection each): \
             p50 {:?}, p99 {:?}, max {:?}",
            percentile(&times, 0.50),
            percentile(&times, 0.99),
            times[times.len() - 1]
        );
        println!("{line}");
        report.push((percentile(&times, 0.99), line));
    }
    // Right after an event the text is encoded afresh: each SIGHUP (an unchanged
    // configuration, so only the reload counter moves) invalidates the cached text, and the
    // first scrape that shows the new count paid for the encoding.
    let mut cold = Vec::new();
    for reloads in 1..=20 {
        daemon.signal(rustix::process::Signal::HUP);
        let expected = f64::from(reloads);
        loop {
            let started = Instant::now();
            let response = http_get(daemon.metrics_addr(), "/metrics", &[]);
            let took = started.elapsed();
            let counted = Scrape::parse(&response.body)
                .value("kyma_certd_config_reloads_total", &[("result", "success")]);
            if counted == expected {
                cold.push(took);
                break;
            }
            assert!(counted < expected, "{counted} reloads");
        }
    }
    cold.sort();
    let line = format!(
        "classic right after an event: {} scrapes: p50 {:?}, max {:?}",
        cold.len(),
        percentile(&cold, 0.50),
        cold[cold.len() - 1]
    );
    println!("{line}");
    assert!(percentile(&cold, 0.50) < Duration::from_secs(1), "{line}");
    assert!(
        classic_bytes > 500_000,
        "{classic_bytes} bytes for 1000 certificates"
    );
    // The release target is well under 10 ms; this bound only catches gross regressions in
    // a debug build on a shared machine.
    for (p99, line) in report {
        assert!(p99 < Duration::from_millis(250), "{line}");
    }
}
