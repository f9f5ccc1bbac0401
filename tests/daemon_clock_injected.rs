//! The daemon through wall-clock steps of days, forward and back, with an injected clock
//! (the machine's clock is not touched): a decision made under a wrong clock never
//! outlives its correction, and a valid certificate is never left unrenewed.
//!
//! The daemon runs in this process against the simulator; its decisions read a clock
//! shifted by `Clock::step`, which also wakes it as the kernel's clock-change notice
//! does. TLS and the simulator go by the real clock, as the connector would.

#[path = "support/in_process.rs"]
mod in_process;

use std::time::{Duration, Instant, SystemTime};

use in_process::{InProcessDaemon, enroll, renewals, sleep_until, wait_for};
use kyma_certd::clock::Clock;
use kyma_connector_sim::{SimConfig, Simulator};

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
    let config = tmp.path().join("config.toml");
    let settings = "renew_at = \"50%\"\njitter = \"0%\"\nretry_min = \"1s\"\nretry_max = \"2s\"\n";
    let text = in_process::METRICS_TOML.to_owned()
        + &in_process::certificate_toml(&sim, tmp.path(), "orders", settings);
    std::fs::write(&config, text).unwrap();
    enroll(&sim, &config, "orders").await;
    let enrolled = SystemTime::now();

    // The daemon starts with its clock three days behind: by that clock the certificate
    // renews in three days.
    let clock = Clock::shifted();
    clock.step(-3 * DAY);
    let daemon = InProcessDaemon::start(&config, clock.clone()).await;
    let next = wait_for(
        "valid, with a renewal time",
        Duration::from_secs(10),
        || async {
            if daemon.state("orders").await.as_deref() != Some("valid") {
                return None;
            }
            daemon.next_renewal("orders").await
        },
    )
    .await;
    assert!(
        next > clock.now() + Duration::from_secs(2 * DAY as u64),
        "by a clock three days behind, the renewal is days away"
    );

    // Real time passes the renewal time; by its clock, nothing is due.
    sleep_until(enrolled + VALIDITY / 2 + Duration::from_secs(1)).await;
    assert_eq!(renewals(&sim), 0, "renewed by a clock that said not yet");

    // Corrected: the renewal happens at once, not three days later.
    let corrected = Instant::now();
    clock.step(3 * DAY);
    wait_for(
        "the renewal after the correction",
        Duration::from_secs(8),
        || async { (renewals(&sim) == 1).then_some(()) },
    )
    .await;
    let renewed = SystemTime::now();
    assert!(corrected.elapsed() < Duration::from_secs(8));

    // Ten days ahead, the new certificate is expired by the daemon's clock: it says so
    // and attempts nothing.
    clock.step(10 * DAY);
    wait_for("expired by the clock", Duration::from_secs(5), || async {
        (daemon.state("orders").await.as_deref() == Some("expired")).then_some(())
    })
    .await;

    // Back to the right time: valid again, and renewed at its renewal time.
    clock.step(-10 * DAY);
    wait_for("valid again", Duration::from_secs(5), || async {
        (daemon.state("orders").await.as_deref() == Some("valid")).then_some(())
    })
    .await;
    assert_eq!(
        renewals(&sim),
        1,
        "nothing was attempted while expired by the clock"
    );
    let second_due = renewed + VALIDITY / 2;
    let limit = second_due
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        + Duration::from_secs(8);
    wait_for("the next renewal at its time", limit, || async {
        (renewals(&sim) == 2).then_some(())
    })
    .await;

    daemon.stop().await;
    sim.shutdown().await;
}
