//! The daemon in the test's own process, on a world's configuration: for tests that
//! inject its clock (`kyma_certd::clock::Clock::shifted`) or read its decisions beside a
//! one-shot command's. Everything else (the simulator, enrolling, the commands) is the
//! world's, as for any other suite.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use kyma_certd::clock::Clock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A daemon running in this process, deciding by its clock.
pub struct InProcessDaemon {
    pub metrics: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcessDaemon {
    /// Starts `kyma_certd::daemon::run_until` on the configuration at `config` (it must
    /// have a metrics listener) and waits until its metrics endpoint is bound.
    pub async fn start(config: &Path, clock: Clock) -> InProcessDaemon {
        let config = kyma_certd::config::load(config).expect("the configuration loads");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (listening, address) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(kyma_certd::daemon::run_until(
            config,
            async {
                let _ = stopped.await;
            },
            move |addr| {
                let _ = listening.send(addr);
            },
            clock,
        ));
        InProcessDaemon {
            metrics: address.await.expect("the metrics endpoint is bound"),
            stop,
            task,
        }
    }

    pub async fn scrape(&self) -> String {
        let mut stream = tokio::net::TcpStream::connect(self.metrics).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).await.unwrap();
        text
    }

    /// The state of certificate `name`: the one whose series is 1.
    pub async fn state(&self, name: &str) -> Option<String> {
        let text = self.scrape().await;
        let prefix = format!("kyma_certd_certificate_state{{name=\"{name}\",state=\"");
        text.lines()
            .filter(|l| l.ends_with(" 1"))
            .find_map(|l| Some(l.strip_prefix(&prefix)?.split('"').next()?.to_owned()))
    }

    pub async fn next_renewal(&self, name: &str) -> Option<SystemTime> {
        let text = self.scrape().await;
        let prefix =
            format!("kyma_certd_certificate_next_renewal_timestamp_seconds{{name=\"{name}\"}} ");
        let seconds: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))?
            .parse()
            .ok()?;
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(seconds))
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("the daemon task")
            .expect("the daemon stops cleanly");
    }
}

/// Polls `check` every 100 ms until it gives a value; fails after `limit`.
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not within {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
