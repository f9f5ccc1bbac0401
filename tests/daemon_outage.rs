//! `kyma-certd run` while the connector is down: it backs off, keeps the old files, and
//! recovers without a restart; a restart during the outage keeps the backoff and the
//! failure streak. The real binary against the in-process simulator over TLS on
//! 127.0.0.1, with certificates that live 20 seconds.

mod support;

use std::time::{Duration, SystemTime};

use kyma_connector_sim::{Fault, FaultScope};
use support::disk::OnDisk;
use support::pem::unix;
use support::scrape::Scrape;
use support::wait::wait_for;
use support::world::World;

const LIFETIME: Duration = Duration::from_secs(20);

#[test]
fn connector_outage_backs_off_keeps_the_old_files_and_recovers_without_a_restart() {
    let world = World::new(LIFETIME);
    world.write_config(&[world.compass("orders").with("renew_at = \"30%\"")]);
    world.enroll("orders");
    let dir = world.cert_dir("orders");
    let before = OnDisk::read(&dir);
    world
        .sim
        .set_fault(Fault::Unavailable, FaultScope::UntilCleared);
    let mut daemon = world.daemon().ready();
    let pid = daemon.pid();

    // Logged with its reason, on the certificate's line.
    let first = daemon.wait_for_message("renewal failed; retrying in", Duration::from_secs(12));
    assert_eq!(first.level(), "WARN");
    assert_eq!(first.cert(), Some("orders"), "{}", first.text);
    assert_eq!(first.field("reason"), "http");
    assert_eq!(first.field("consecutive_failures"), 1);
    assert!(
        first.field("error").as_str().unwrap().contains("503"),
        "{}",
        first.text
    );

    // Visible in the metrics and in `status`.
    let scrape = daemon.metrics();
    let failures = backoff_streak(&scrape);
    assert!(failures >= 1.0, "{}", scrape.text);
    assert!(
        scrape
            .get(
                "kyma_certd_renewal_failures_total",
                &[("name", "orders"), ("reason", "http")]
            )
            .unwrap()
            >= 1.0
    );
    let retry_at = scrape
        .get(
            "kyma_certd_certificate_next_renewal_timestamp_seconds",
            &[("name", "orders")],
        )
        .unwrap();
    let now = unix(SystemTime::now());
    assert!(
        retry_at > now - 1.0 && retry_at < now + 2.5,
        "retry at {retry_at}, now {now}: retry_min 1s, retry_max 2s"
    );
    let status = &world.status("orders");
    assert_eq!(status["state"], "backoff", "{status}");
    assert!(
        status["consecutive_failures"].as_u64().unwrap() >= 1,
        "{status}"
    );
    assert!(
        status["last_error"].as_str().unwrap().contains("503"),
        "{status}"
    );
    let state_file = std::fs::read_to_string(dir.join("state.json")).unwrap();
    assert!(!state_file.contains("-----BEGIN"), "{state_file}");

    // It keeps trying, spaced by the backoff, and the files stay exactly as they were.
    let retries = wait_for("three failed attempts", Duration::from_secs(10), || {
        let lines = daemon.lines_with("renewal failed; retrying in");
        (lines.len() >= 3).then_some(lines)
    });
    for pair in retries.windows(2) {
        let gap = pair[1]
            .timestamp()
            .duration_since(pair[0].timestamp())
            .unwrap();
        assert!(gap >= Duration::from_millis(900), "retried after {gap:?}");
    }
    assert_eq!(retries[2].field("consecutive_failures"), 3);
    assert_eq!(
        OnDisk::read(&dir),
        before,
        "the old files changed during the outage"
    );
    assert!(world.sim.renewals().is_empty());

    // The connector comes back: the same process renews.
    world.sim.clear_fault();
    let renewed = daemon.wait_for_message("renewed ", Duration::from_secs(5));
    assert_eq!(renewed.cert(), Some("orders"));
    let after = OnDisk::read(&dir);
    assert_ne!(after.cert, before.cert);
    assert!(after.key_matches());
    assert_eq!(after.fingerprint(), world.sim.renewals()[0].fingerprint);
    assert!(daemon.alive());
    assert_eq!(daemon.pid(), pid);
    let scrape = daemon.metrics();
    assert_eq!(
        scrape.state("orders").as_deref(),
        Some("valid"),
        "{}",
        scrape.text
    );
    assert_eq!(
        scrape.get("kyma_certd_consecutive_failures", &[("name", "orders")]),
        Some(0.0)
    );
    let status = &world.status("orders");
    assert_eq!(status["state"], "valid", "{status}");
    assert_eq!(status["consecutive_failures"], 0, "{status}");
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}

#[test]
fn a_restart_during_an_outage_keeps_the_backoff_and_the_failure_streak() {
    let world = World::new(LIFETIME);
    world.write_config(&[world.compass("orders").with("renew_at = \"30%\"")]);
    world.enroll("orders");
    world
        .sim
        .set_fault(Fault::Unavailable, FaultScope::UntilCleared);
    let mut daemon = world.daemon().ready();
    wait_for("two failed attempts", Duration::from_secs(12), || {
        (daemon.lines_with("renewal failed; retrying in").len() >= 2).then_some(())
    });
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
    let streak = world.status("orders")["consecutive_failures"]
        .as_u64()
        .unwrap();
    assert!(streak >= 2, "{streak}");

    // The new process starts where the old one stopped: in backoff, with the same streak.
    let mut daemon = world.daemon().ready();
    let scrape = daemon.metrics();
    let failures = backoff_streak(&scrape);
    assert!(
        failures >= streak as f64,
        "streak {streak}, gauge {failures}"
    );
    let next = daemon.wait_for_message("renewal failed; retrying in", Duration::from_secs(5));
    assert!(
        next.field("consecutive_failures").as_u64().unwrap() > streak,
        "{}",
        next.text
    );
    world.sim.clear_fault();
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}

/// Asserts that `orders` is in backoff; its failure streak, as the gauge says.
fn backoff_streak(scrape: &Scrape) -> f64 {
    assert_eq!(
        scrape.state("orders").as_deref(),
        Some("backoff"),
        "{}",
        scrape.text
    );
    scrape
        .get("kyma_certd_consecutive_failures", &[("name", "orders")])
        .unwrap()
}
