//! The server keeps the scraped encodings recent in the background, so a scrape during a
//! burst of events finds a recent text instead of encoding it.

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

#[tokio::test]
async fn after_an_event_the_scraped_text_is_refreshed_without_another_scrape() {
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = Metrics::new("1");
    let (probe, _health) = health_channel();
    let state = HttpState {
        metrics: Arc::clone(&metrics),
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
            .contains("kyma_certd_config_reloads_total{result=\"success\"} 1\n")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cached text was not refreshed within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let _ = stop.send(());
    server.await.unwrap();
}
