//! Tests of the HTTP endpoint over real sockets on 127.0.0.1.

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use super::*;
use crate::report::CertState;

const CLIENT_LIMIT: Duration = Duration::from_secs(10);

struct Server {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Option<HealthRequests>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(limits: HttpLimits) -> Self {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Metrics::new("9.9.9");
        let (probe, health) = health_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let state = HttpState {
            metrics: Arc::clone(&metrics),
            health: probe,
            limits,
        };
        let task = tokio::spawn(serve(listener, state, async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            metrics,
            health: Some(health),
            stop: Some(stop),
            task,
        }
    }

    /// Answers liveness pings like a healthy event loop.
    fn answer_pings(&mut self) {
        let mut health = self.health.take().expect("pings are answered once");
        tokio::spawn(async move {
            while let Some(ping) = health.recv().await {
                let _ = ping.send(());
            }
        });
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// Sends raw bytes, reads until the server closes, and splits the HTTP reply.
async fn exchange(addr: SocketAddr, request: &[u8]) -> Reply {
    let raw = tokio::time::timeout(CLIENT_LIMIT, async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw).await;
        raw
    })
    .await
    .expect("the server answers and closes");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    exchange(addr, request.as_bytes()).await
}

fn fast_limits() -> HttpLimits {
    HttpLimits {
        max_connections: 8,
        header_read_timeout: Duration::from_millis(300),
        connection_lifetime: Duration::from_secs(5),
        health_timeout: Duration::from_millis(300),
    }
}

#[tokio::test]
async fn metrics_are_classic_text_by_default_and_openmetrics_when_asked() {
    let server = Server::start(fast_limits()).await;
    server.metrics.set_state("orders", CertState::Valid);

    let classic = get(server.addr, "/metrics").await;
    assert_eq!(classic.status, 200);
    assert_eq!(
        classic.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(
        classic
            .body
            .contains("kyma_certd_build_info{version=\"9.9.9\"} 1\n")
    );
    assert!(
        classic
            .body
            .contains("# TYPE kyma_certd_renewals_total counter\n")
    );
    assert!(!classic.body.contains("# EOF"));

    let request = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
                   Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n\r\n";
    let open = exchange(server.addr, request.as_bytes()).await;
    assert_eq!(open.status, 200);
    assert_eq!(
        open.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(open.body.ends_with("# EOF\n"));
}

#[tokio::test]
async fn head_of_metrics_has_the_headers_but_no_body() {
    let server = Server::start(fast_limits()).await;
    let reply = exchange(
        server.addr,
        b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(reply.body, "");
}

#[tokio::test]
async fn healthz_is_ok_while_the_event_loop_answers() {
    let mut server = Server::start(fast_limits()).await;
    server.answer_pings();
    let reply = get(server.addr, "/healthz").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok\n"));
}

#[tokio::test]
async fn healthz_fails_when_the_event_loop_is_wedged() {
    let server = Server::start(fast_limits()).await;
    // The receiver is alive but nobody answers: a wedged loop.
    let started = Instant::now();
    let reply = get(server.addr, "/healthz").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.body, "event loop not responding\n");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(server.health.is_some());
}

#[tokio::test]
async fn healthz_fails_when_the_event_loop_is_gone() {
    let mut server = Server::start(fast_limits()).await;
    drop(server.health.take());
    let reply = get(server.addr, "/healthz").await;
    assert_eq!(reply.status, 503);
}

#[tokio::test]
async fn readyz_is_ok_only_when_every_certificate_is_usable() {
    let server = Server::start(fast_limits()).await;

    let empty = get(server.addr, "/readyz").await;
    assert_eq!(empty.status, 503);
    assert_eq!(empty.body, "{\"certificates\":{},\"ready\":false}\n");

    server.metrics.set_state("orders", CertState::Valid);
    server.metrics.set_state("billing", CertState::Backoff);
    let ready = get(server.addr, "/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&ready.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"ready": true, "certificates": {"orders": "valid", "billing": "backoff"}})
    );

    server.metrics.set_state("orders", CertState::Expired);
    let not_ready = get(server.addr, "/readyz").await;
    assert_eq!(not_ready.status, 503);
    let body: serde_json::Value = serde_json::from_str(&not_ready.body).unwrap();
    assert_eq!(body["ready"], false);
    assert_eq!(body["certificates"]["orders"], "expired");
}

#[tokio::test]
async fn other_paths_are_not_found_and_other_methods_not_allowed() {
    let server = Server::start(fast_limits()).await;
    for path in ["/", "/metrics/", "/debug/pprof", "/readyz/x"] {
        assert_eq!(get(server.addr, path).await.status, 404, "{path}");
    }
    let post = exchange(
        server.addr,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    let delete = exchange(
        server.addr,
        b"DELETE /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(delete.status, 405);
}

#[tokio::test]
async fn an_oversized_request_head_is_refused_and_the_server_keeps_serving() {
    let server = Server::start(fast_limits()).await;
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(2 * MAX_BUF_SIZE)
    );
    let reply = exchange(server.addr, request.as_bytes()).await;
    assert_eq!(reply.status, 431);
    assert_eq!(get(server.addr, "/metrics").await.status, 200);
}

#[tokio::test]
async fn a_client_that_stalls_inside_its_request_head_is_cut_off() {
    let limits = fast_limits();
    let server = Server::start(limits).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(CLIENT_LIMIT, stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection stayed open");
    let waited = started.elapsed();
    assert!(
        waited < limits.header_read_timeout + Duration::from_secs(2),
        "cut off after {waited:?}"
    );
}

/// Opens a connection that sends the start of a request head and then nothing.
async fn stalled_client(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\n")
        .await
        .unwrap();
    stream
}

/// Whether the server closes `stream` within `limit` (EOF or a reset).
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut rest = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut rest)).await {
        Ok(_) => true,
        Err(_still_open) => false,
    }
}

#[tokio::test]
async fn a_newcomer_beyond_the_limit_closes_the_oldest_stalled_connection() {
    // The header timeout is long: only making room can let the newcomer in quickly.
    let limits = HttpLimits {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(8),
        ..fast_limits()
    };
    let mut server = Server::start(limits).await;
    server.answer_pings();
    let mut oldest = stalled_client(server.addr).await;
    let mut younger = stalled_client(server.addr).await;

    let started = Instant::now();
    let reply = get(server.addr, "/healthz").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "served after {:?}",
        started.elapsed()
    );
    assert!(
        closed_within(&mut oldest, Duration::from_secs(1)).await,
        "the oldest stalled connection was kept"
    );
    // One newcomer costs one connection: the younger one stays until its own timeout.
    assert!(
        !closed_within(&mut younger, Duration::from_millis(300)).await,
        "a second stalled connection was closed too"
    );
    assert_eq!(get(server.addr, "/readyz").await.status, 503);
}

#[tokio::test]
async fn a_connection_in_the_middle_of_an_answer_keeps_its_slot() {
    let limits = HttpLimits {
        max_connections: 1,
        health_timeout: Duration::from_secs(5),
        ..fast_limits()
    };
    let mut server = Server::start(limits).await;
    let mut pings = server.health.take().expect("the event loop's half");
    let mut answering = TcpStream::connect(server.addr).await.unwrap();
    answering
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // The ping proves the request is being answered: the connection is busy.
    let ping = tokio::time::timeout(CLIENT_LIMIT, pings.recv())
        .await
        .expect("the health check pings the event loop")
        .expect("a ping");

    let addr = server.addr;
    let newcomer = tokio::spawn(async move { get(addr, "/metrics").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !newcomer.is_finished(),
        "the newcomer was served while the only slot was answering"
    );
    ping.send(()).unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(CLIENT_LIMIT, answering.read_to_end(&mut reply))
        .await
        .expect("the busy connection is answered")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let served = tokio::time::timeout(CLIENT_LIMIT, newcomer)
        .await
        .expect("the newcomer is served once the slot frees")
        .unwrap();
    assert_eq!(served.status, 200);
}

#[tokio::test]
async fn a_burst_of_garbage_leaves_the_server_serving() {
    let server = Server::start(fast_limits()).await;
    let garbage: [&[u8]; 6] = [
        b"\x00\x01\x02\xff\xfe\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /metrics HTTP/9.9\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ];
    let mut clients = JoinSet::new();
    for round in 0..10 {
        for bytes in garbage {
            let addr = server.addr;
            clients.spawn(async move {
                if let Ok(mut stream) = TcpStream::connect(addr).await {
                    let _ = stream.write_all(bytes).await;
                    if round % 2 == 0 {
                        let mut sink = Vec::new();
                        let _ = stream.read_to_end(&mut sink).await;
                    }
                }
            });
        }
    }
    tokio::time::timeout(CLIENT_LIMIT, async {
        while clients.join_next().await.is_some() {}
    })
    .await
    .expect("every garbage client is dealt with");
    assert_eq!(get(server.addr, "/metrics").await.status, 200);
}

#[tokio::test]
async fn serve_returns_after_shutdown_and_stops_accepting() {
    let mut server = Server::start(fast_limits()).await;
    let _ = server.stop.take().unwrap().send(());
    let task = std::mem::replace(&mut server.task, tokio::spawn(async {}));
    tokio::time::timeout(CLIENT_LIMIT, task)
        .await
        .expect("serve returns")
        .unwrap();
    assert!(TcpStream::connect(server.addr).await.is_err());
}

#[test]
fn negotiation_prefers_openmetrics_only_when_the_client_does() {
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(negotiate(Some(prometheus)), Format::OpenMetrics);
    assert_eq!(negotiate(None), Format::Classic);
    assert_eq!(negotiate(Some("*/*")), Format::Classic);
    assert_eq!(negotiate(Some("text/plain;version=0.0.4")), Format::Classic);
    assert_eq!(
        negotiate(Some("text/plain;q=1, application/openmetrics-text;q=0.5")),
        Format::Classic
    );
    assert_eq!(
        negotiate(Some(
            "Application/OpenMetrics-Text; Q=0.9, text/plain;q=0.5"
        )),
        Format::OpenMetrics
    );
    assert_eq!(
        negotiate(Some("application/openmetrics-text;q=0")),
        Format::Classic
    );
    assert_eq!(
        negotiate(Some("application/openmetrics-text;q=x")),
        Format::Classic
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let limits = fast_limits();
    let server = Server::start(limits).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 503");
    let started = Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(CLIENT_LIMIT, stream.read_to_end(&mut rest))
        .await
        .expect("the idle connection is closed")
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited < limits.header_read_timeout + Duration::from_secs(2),
        "closed after {waited:?}"
    );
}
