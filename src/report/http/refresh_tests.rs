//! The server keeps the scraped encodings recent in the background, so a scrape during a
//! burst of events finds a recent text instead of encoding it.

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

const RELOADED_ONCE: &str = "kyma_certd_config_reloads_total{result=\"success\"} 1\n";

#[tokio::test]
async fn after_an_event_the_scraped_text_is_refreshed_without_another_scrape() {
    let metrics = Metrics::new("1");
    let server = scrape_event_and_wait_for_refresh(&metrics).await;
    server.stop().await;
}

#[tokio::test]
async fn a_large_registry_is_refreshed_on_its_own_thread() {
    let metrics = Metrics::new("1");
    let now = std::time::SystemTime::now();
    for i in 0..200 {
        metrics.cert_loaded(&format!("cert-{i}"), now, now + Duration::from_secs(3600));
    }
    let server = scrape_event_and_wait_for_refresh(&metrics).await;
    assert!(metrics.encodes_slowly());
    assert!(
        thread_names().iter().any(|name| name == "metrics-encoder"),
        "threads: {:?}",
        thread_names()
    );
    server.stop().await;
}

struct RunningServer {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .collect()
}

/// Serves `metrics`, scrapes once (so the classic format is cached), records a config
/// reload and waits until the cached text shows it without another scrape.
async fn scrape_event_and_wait_for_refresh(metrics: &Arc<Metrics>) -> RunningServer {
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (probe, _health) = health_channel();
    let state = HttpState {
        metrics: Arc::clone(metrics),
        health: probe,
        limits: HttpLimits::default(),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state, async {
        let _ = stopped.await;
    }));

    // One scrape: the classic format is now cached.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();
    assert!(reply.starts_with(b"HTTP/1.1 200"));

    metrics.config_reload(true);

    // The cache (read with an hour of staleness allowed, so never re-encoded here) turns
    // current on its own.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let cached = metrics.encode_recent(Format::Classic, Duration::from_secs(3600));
        if std::str::from_utf8(&cached)
            .unwrap()
            .contains(RELOADED_ONCE)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cached text was not refreshed within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    RunningServer { stop, task: server }
}
