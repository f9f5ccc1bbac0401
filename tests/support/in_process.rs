//! The daemon and the simulator in the test's own process: for tests that inject the
//! daemon's clock or read its decisions next to a one-shot command's. The commands run
//! as the real binary.
#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use kyma_certd::clock::Clock;
use kyma_connector_sim::Simulator;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The certificate settings every certificate of these tests shares, then `extra`.
pub fn certificate_toml(sim: &Simulator, dir: &Path, name: &str, extra: &str) -> String {
    format!(
        "\n[[certificate]]\nname = {name:?}\nprotocol = \"compass\"\ndir = {:?}\n\
         connector_url = {:?}\nserver_ca_file = {:?}\nkey_algorithm = \"ecdsa-p256\"\n\
         timeout = \"5s\"\n{extra}",
        dir.join(name).display().to_string(),
        sim.compass_token_url().as_str(),
        sim.server_ca_path().display().to_string(),
    )
}

/// `[metrics]` on an ephemeral loopback port.
pub const METRICS_TOML: &str = "[metrics]\nlisten = \"127.0.0.1:0\"\n";

/// Runs the real binary with `--config config` and `args`.
pub async fn kyma_certd(config: &Path, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kyma-certd"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .await
        .expect("the binary runs")
}

/// `kyma-certd enroll --name name` with a fresh one-time token, as an operator does.
pub async fn enroll(sim: &Simulator, config: &Path, name: &str) {
    let token_file = config.with_file_name(format!("token-{name}"));
    std::fs::write(&token_file, sim.mint_compass_token()).unwrap();
    let token_file = token_file.to_str().unwrap().to_owned();
    let output = kyma_certd(
        config,
        &["enroll", "--name", name, "--token-file", &token_file],
    )
    .await;
    assert!(
        output.status.success(),
        "enroll {name} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A daemon running in this process on `config`, deciding by `clock`.
pub struct InProcessDaemon {
    pub metrics: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcessDaemon {
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

    /// The state of certificate `name` whose series is 1.
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

/// Certificates the simulator issued on renewal (over mTLS).
pub fn renewals(sim: &Simulator) -> usize {
    sim.issued_certificates()
        .iter()
        .filter(|c| c.renewal)
        .count()
}

/// The fingerprint of the certificate in `dir`, if one is there.
pub fn fingerprint_in(dir: &Path) -> Option<String> {
    let pem = std::fs::read_to_string(dir.join("cert.pem")).ok()?;
    kyma_certd::pki::x509::CertInfo::from_pem(&pem)
        .ok()
        .map(|info| info.fingerprint_sha256)
}

pub fn cert_dir(root: &Path, name: &str) -> PathBuf {
    root.join(name)
}

pub async fn sleep_until(at: SystemTime) {
    if let Ok(wait) = at.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait).await;
    }
}

/// Polls `check` every 100 ms until it gives a value; fails after `limit`.
pub async fn wait_for<T, F: Future<Output = Option<T>>>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
