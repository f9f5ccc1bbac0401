//! The HTTP/1 endpoint on `[metrics] listen`: `GET /metrics`, `/healthz` and `/readyz`,
//! nothing else, with bounded requests, header timeouts and a connection limit that
//! stalled clients cannot exhaust. Does not compute metrics or states; it reads them from
//! [`Metrics`] and pings the event loop.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::format::Format;
use super::metrics::Metrics;
use encoder::{Encoder, refresh_after_changes};

/// The read buffer of one connection, and so the largest request head (hyper's minimum).
pub const MAX_BUF_SIZE: usize = 8192;

/// How long in-flight connections may finish after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// After a failed `accept` (out of file descriptors, say), wait this long before the next.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// A scrape is answered from the cached text when that misses at most this much recent
/// history; an older text is re-encoded by the scrape itself.
pub const MAX_STALENESS: Duration = Duration::from_secs(1);

/// After an event, the server re-encodes the scraped formats this much later: a burst of
/// events costs one encoding, and scrapes find a recent text instead of encoding
/// thousands of series themselves.
const REFRESH_DELAY: Duration = Duration::from_millis(250);

/// Bounds that keep slow or hostile clients from holding the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections open at once. A newcomer beyond it closes the oldest connection that
    /// is between requests (see [`Slots`]); it waits in the kernel's accept queue only
    /// while every open connection is in the middle of answering.
    pub max_connections: usize,
    /// A request head must arrive within this time (also bounds idle keep-alive).
    pub header_read_timeout: Duration,
    /// A connection is closed after this long, whatever it is doing.
    pub connection_lifetime: Duration,
    /// How long `/healthz` waits for the event loop's answer.
    pub health_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 64,
            header_read_timeout: Duration::from_secs(5),
            connection_lifetime: Duration::from_secs(30),
            health_timeout: Duration::from_secs(2),
        }
    }
}

/// One liveness ping: the event loop answers by sending `()` (or just dropping it is a
/// failure). Carried by [`HealthRequests`].
pub type HealthPing = oneshot::Sender<()>;

/// The event loop's half of the liveness channel: answer every ping it yields, e.g.
/// `Some(ping) = health.recv() => { let _ = ping.send(()); }`. Nothing arrives unless
/// `/healthz` is requested, so an idle daemon stays idle.
pub type HealthRequests = mpsc::Receiver<HealthPing>;

/// The server's half of the liveness channel.
#[derive(Debug, Clone)]
pub struct HealthProbe {
    tx: mpsc::Sender<HealthPing>,
}

/// A connected pair: give the probe to [`HttpState`], the receiver to the event loop.
pub fn health_channel() -> (HealthProbe, HealthRequests) {
    let (tx, rx) = mpsc::channel(16);
    (HealthProbe { tx }, rx)
}

impl HealthProbe {
    /// Whether the event loop answered a ping within `timeout`.
    pub async fn check(&self, timeout: Duration) -> bool {
        let (reply, answer) = oneshot::channel();
        let ping = async { self.tx.send(reply).await.is_ok() && answer.await.is_ok() };
        tokio::time::timeout(timeout, ping).await.unwrap_or(false)
    }
}

/// What the handlers read.
#[derive(Debug, Clone)]
pub struct HttpState {
    pub metrics: Arc<Metrics>,
    pub health: HealthProbe,
    pub limits: HttpLimits,
}

/// Errors of this layer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {addr}")]
    Bind { addr: SocketAddr, source: io::Error },
}

/// Binds the listening socket (done before the daemon reports ready, so a taken port is a
/// startup error rather than a silent gap).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, HttpError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })
}

/// Serves `listener` until `shutdown` completes, then lets open connections finish for a
/// few seconds and returns. Failed accepts and broken connections are logged, never fatal.
pub async fn serve(listener: TcpListener, state: HttpState, shutdown: impl Future<Output = ()>) {
    let encoder = Encoder::new(Arc::clone(&state.metrics));
    let refresher = tokio::spawn(
        refresh_after_changes(Arc::clone(&encoder))
            .instrument(tracing::debug_span!("metrics_refresh")),
    );
    let slots = Slots::new(state.limits.max_connections);
    let stop = CancellationToken::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "cannot accept a metrics connection");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                    }
                }
            },
        };
        // Accepted first, admitted second: a newcomer is what makes an idle connection
        // give up its slot, so it must be in hand before there is room for it.
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.admit() => slot,
        };
        while connections.try_join_next().is_some() {}
        let handler = Handler {
            state: state.clone(),
            encoder: Arc::clone(&encoder),
        };
        let stop = stop.clone();
        let span = tracing::debug_span!("metrics_connection", %peer);
        connections.spawn(
            async move {
                serve_connection(stream, peer, handler, stop, &slot.occupant).await;
                drop(slot);
            }
            .instrument(span),
        );
    }
    stop.cancel();
    refresher.abort();
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        tracing::debug!("metrics connections still open at shutdown were closed");
    }
}

/// The open connections, oldest first, and whether each is answering a request.
///
/// A connection limit alone lets a hundred clients that connect and never finish their
/// request head hold every slot until the header timeout, and `/healthz` then times out
/// in the accept queue: the service manager or the kubelet would restart a healthy
/// daemon. So a full table makes room: a newcomer closes the oldest connection that is
/// between requests (still waiting for a head, or an idle keep-alive). Such a client has
/// nothing in flight and at worst reconnects, while a client that sends its head at once
/// (every real scraper and probe) is served at once, however many others stall. Only a
/// connection in the middle of answering keeps its slot, and answers are bounded (the
/// health timeout), so a newcomer waits no longer than that.
struct Slots {
    max: usize,
    table: Mutex<SlotTable>,
    /// Woken when a slot is freed.
    freed: Notify,
}

#[derive(Default)]
struct SlotTable {
    next_id: u64,
    /// By age: ids only grow.
    open: BTreeMap<u64, Arc<Occupant>>,
}

/// What the accept loop knows about one open connection.
#[derive(Default)]
struct Occupant {
    /// A request is being answered.
    busy: AtomicBool,
    /// Cancelled to close the connection for a newcomer.
    evict: CancellationToken,
}

/// One open connection's place in [`Slots`], freed on drop.
struct Slot {
    id: u64,
    occupant: Arc<Occupant>,
    slots: Arc<Slots>,
}

impl Slots {
    fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            table: Mutex::new(SlotTable::default()),
            freed: Notify::new(),
        })
    }

    /// A slot for a new connection, once one is free or made free.
    async fn admit(self: &Arc<Self>) -> Slot {
        loop {
            if let Some(slot) = self.try_admit() {
                return slot;
            }
            // `notify_one` keeps a wakeup for a waiter that is not waiting yet, so a slot
            // freed between the try and this await is not missed.
            self.freed.notified().await;
        }
    }

    /// Takes a free slot, or asks the oldest connection between requests to leave.
    fn try_admit(self: &Arc<Self>) -> Option<Slot> {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if table.open.len() < self.max {
            let id = table.next_id;
            table.next_id += 1;
            let occupant = Arc::new(Occupant::default());
            table.open.insert(id, Arc::clone(&occupant));
            return Some(Slot {
                id,
                occupant,
                slots: Arc::clone(self),
            });
        }
        // One leaving at a time: each newcomer costs at most one other connection.
        let leaving = table.open.values().any(|o| o.evict.is_cancelled());
        if !leaving
            && let Some(idle) = table
                .open
                .values()
                .find(|o| !o.busy.load(Ordering::Acquire))
        {
            idle.evict.cancel();
        }
        None
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = self
            .slots
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        table.open.remove(&self.id);
        drop(table);
        self.slots.freed.notify_one();
    }
}

/// Marks a connection busy while one request is answered.
struct Answering(Arc<Occupant>);

impl Answering {
    fn start(occupant: &Arc<Occupant>) -> Self {
        occupant.busy.store(true, Ordering::Release);
        Self(Arc::clone(occupant))
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
    }
}

/// What one connection answers with.
#[derive(Clone)]
struct Handler {
    state: HttpState,
    encoder: Arc<Encoder>,
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    handler: Handler,
    stop: CancellationToken,
    occupant: &Arc<Occupant>,
) {
    let lifetime = handler.state.limits.connection_lifetime;
    let header_read_timeout = handler.state.limits.header_read_timeout;
    let answering = Arc::clone(occupant);
    let service = service_fn(move |request| {
        let handler = handler.clone();
        let busy = Answering::start(&answering);
        async move {
            let response = respond(&handler, &request).await;
            drop(busy);
            Ok::<_, Infallible>(response)
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(MAX_BUF_SIZE)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(%peer, %err, "metrics connection ended with an error");
            }
        }
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, connection).await;
        }
        () = tokio::time::sleep(lifetime) => {
            tracing::debug!(%peer, "metrics connection closed after its lifetime");
        }
        () = occupant.evict.cancelled() => {
            tracing::debug!(%peer, "idle metrics connection closed to make room for a new one");
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Metrics,
    Health,
    Ready,
}

async fn respond(handler: &Handler, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let state = &handler.state;
    let route = match request.uri().path() {
        "/metrics" => Route::Metrics,
        "/healthz" => Route::Health,
        "/readyz" => Route::Ready,
        _ => return text(StatusCode::NOT_FOUND, "not found\n"),
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match route {
        Route::Metrics => {
            let accept = request
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok());
            let format = negotiate(accept);
            let body = handler.encoder.text(format).await;
            with_type(StatusCode::OK, format.content_type(), body)
        }
        Route::Health => {
            if state.health.check(state.limits.health_timeout).await {
                text(StatusCode::OK, "ok\n")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "event loop not responding\n",
                )
            }
        }
        Route::Ready => {
            let (ready, body) = readiness(&state.metrics);
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            with_type(status, "application/json", body)
        }
    }
}

/// Ready when at least one certificate is known and every known one is usable (valid,
/// renewing or backing off); the JSON body lists each state either way.
pub fn readiness(metrics: &Metrics) -> (bool, String) {
    let states = metrics.states();
    let ready = !states.is_empty() && states.iter().all(|(_, state)| state.is_usable());
    let certificates: BTreeMap<String, &str> = states
        .into_iter()
        .map(|(name, state)| (name, state.as_str()))
        .collect();
    let body = serde_json::json!({ "ready": ready, "certificates": certificates });
    (ready, format!("{body}\n"))
}

/// OpenMetrics for clients that prefer it (Prometheus asks for it first); the classic
/// text format for everyone else (curl, promtool, older scrapers).
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Classic;
    };
    let mut open_metrics = 0.0f64;
    let mut classic = 0.0f64;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let quality = parts
            .filter_map(|p| p.trim().split_once('='))
            .find(|(key, _)| key.trim().eq_ignore_ascii_case("q"))
            .map_or(Some(1.0), |(_, q)| q.trim().parse::<f64>().ok())
            .filter(|q| q.is_finite())
            .unwrap_or(0.0);
        match media.as_str() {
            "application/openmetrics-text" => open_metrics = open_metrics.max(quality),
            "text/plain" | "text/*" | "*/*" => classic = classic.max(quality),
            _ => {}
        }
    }
    if open_metrics > 0.0 && open_metrics >= classic {
        Format::OpenMetrics
    } else {
        Format::Classic
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    with_type(status, "text/plain; charset=utf-8", body)
}

fn with_type(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

mod encoder;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod refresh_tests;
