//! The daemon through wall-clock steps of days, forward and back, with an injected clock
//! (the machine's clock is not touched): a decision made under a wrong clock never
//! outlives its correction, and a valid certificate is never left unrenewed.
//!
//! The daemon runs in this process against the simulator; its decisions read a clock
//! shifted by `Clock::step`, which also wakes it as the kernel's clock-change notice
//! does. TLS and the simulator go by the real clock, as the connector would.

use std::time::{Duration, Instant, SystemTime};

use kyma_certd::clock::Clock;
use kyma_connector_sim::{SimConfig, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DAY: i64 = 86_400;
/// Certificates live 24 s and renew half-way, at 12 s.
const VALIDITY: Duration = Duration::from_secs(24);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_steps_of_days_either_way_never_leave_a_valid_certificate_unrenewed() {
    let sim = Simulator::start(SimConfig {
        validity: VALIDITY,
        accept_ecdsa: true,
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    let tmp = tempfile::tempdir().unwrap();
    let config_path = tmp.path().join("config.toml");
    std::fs::write(&config_path, config_text(&sim, tmp.path())).unwrap();
    enroll(&sim, &config_path, tmp.path()).await;
    let enrolled = SystemTime::now();

    // The daemon starts with its clock three days behind: by that clock the certificate
    // renews in three days.
    let clock = Clock::shifted();
    clock.step(-3 * DAY);
    let config = kyma_certd::config::load(&config_path).expect("the configuration loads");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (listening, address) = tokio::sync::oneshot::channel();
    let daemon = tokio::spawn(kyma_certd::daemon::run_until(
        config,
        async {
            let _ = stopped.await;
        },
        move |addr| {
            let _ = listening.send(addr);
        },
        clock.clone(),
    ));
    let metrics = address.await.expect("the metrics endpoint is bound");
    let next = wait_for(Duration::from_secs(10), || async {
        let text = scrape(metrics).await;
        (state(&text) == Some("valid"))
            .then(|| next_renewal(&text))
            .flatten()
    })
    .await;
    assert!(
        next > clock.now() + Duration::from_secs(2 * DAY as u64),
        "by a clock three days behind, the renewal is days away"
    );

    // Real time passes the renewal time; by its clock, nothing is due.
    let due_by_real_clock = enrolled + VALIDITY / 2;
    sleep_until(due_by_real_clock + Duration::from_secs(1)).await;
    assert!(renewals(&sim) == 0, "renewed by a clock that said not yet");

    // Corrected: the renewal happens at once, not three days later.
    let corrected = Instant::now();
    clock.step(3 * DAY);
    wait_for(Duration::from_secs(8), || async {
        (renewals(&sim) == 1).then_some(())
    })
    .await;
    let renewed = SystemTime::now();
    assert!(corrected.elapsed() < Duration::from_secs(8));

    // Ten days ahead, the new certificate is expired by the daemon's clock: it says so
    // and attempts nothing.
    clock.step(10 * DAY);
    wait_for(Duration::from_secs(5), || async {
        (state(&scrape(metrics).await) == Some("expired")).then_some(())
    })
    .await;

    // Back to the right time: valid again, and renewed at its renewal time.
    clock.step(-10 * DAY);
    wait_for(Duration::from_secs(5), || async {
        (state(&scrape(metrics).await) == Some("valid")).then_some(())
    })
    .await;
    assert_eq!(
        renewals(&sim),
        1,
        "nothing was attempted while expired by the clock"
    );
    let second_due = renewed + VALIDITY / 2;
    wait_for(
        second_due
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            + Duration::from_secs(8),
        || async { (renewals(&sim) == 2).then_some(()) },
    )
    .await;

    let _ = stop.send(());
    daemon
        .await
        .expect("the daemon task")
        .expect("the daemon stops cleanly");
    sim.shutdown().await;
}

fn config_text(sim: &Simulator, dir: &std::path::Path) -> String {
    format!(
        "[metrics]\nlisten = \"127.0.0.1:0\"\n\n\
         [[certificate]]\nname = \"orders\"\nprotocol = \"compass\"\ndir = {:?}\n\
         connector_url = {:?}\nserver_ca_file = {:?}\nkey_algorithm = \"ecdsa-p256\"\n\
         renew_at = \"50%\"\njitter = \"0%\"\nretry_min = \"1s\"\nretry_max = \"2s\"\ntimeout = \"5s\"\n",
        dir.join("orders").display().to_string(),
        sim.compass_token_url().as_str(),
        sim.server_ca_path().display().to_string(),
    )
}

/// `kyma-certd enroll` with a fresh one-time token, as an operator does.
async fn enroll(sim: &Simulator, config: &std::path::Path, dir: &std::path::Path) {
    let token_file = dir.join("token");
    std::fs::write(&token_file, sim.mint_compass_token()).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_kyma-certd"))
        .arg("--config")
        .arg(config)
        .args(["enroll", "--name", "orders", "--token-file"])
        .arg(&token_file)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "enroll failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Certificates the simulator issued on renewal (over mTLS).
fn renewals(sim: &Simulator) -> usize {
    sim.issued_certificates()
        .iter()
        .filter(|c| c.renewal)
        .count()
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text
}

/// The state whose series is 1.
fn state(metrics: &str) -> Option<&str> {
    metrics
        .lines()
        .filter(|l| l.starts_with("kyma_certd_certificate_state{") && l.ends_with(" 1"))
        .find_map(|l| l.split("state=\"").nth(1)?.split('"').next())
}

fn next_renewal(metrics: &str) -> Option<SystemTime> {
    let line = metrics
        .lines()
        .find(|l| l.starts_with("kyma_certd_certificate_next_renewal_timestamp_seconds{"))?;
    let seconds: f64 = line.rsplit(' ').next()?.parse().ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(seconds))
}

async fn sleep_until(at: SystemTime) {
    if let Ok(wait) = at.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait).await;
    }
}

async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
