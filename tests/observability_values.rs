//! The metrics tell the truth: gauges equal what is on disk and what `status --json`
//! schedules, the state gauge follows each transition a certificate goes through, and
//! every counter moves exactly once per event, with the right failure reason.
//!
//! Reasons of the simulator's faults, as the daemon classifies them:
//! `Unavailable` (HTTP 503) is `http`; `InvalidBase64` is `protocol`; `ForeignKey` is
//! `verify`; `DropHandshake` (the connection is closed before the TLS handshake starts) is
//! `network`, because no TLS message was ever exchanged: `tls` is kept for handshakes that
//! fail on a TLS verdict (an untrusted server, a refused client certificate); a read-only
//! directory is `write`.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use kyma_connector_sim::{Fault, FaultScope};
use support::disk::{chmod, chown_tree, is_root};
use support::pem::{unix, unix_of, validity_of};
use support::running::Daemon;
use support::scrape::Scrape;
use support::world::{Settings, World};

const SHORT: Duration = Duration::from_secs(20);
/// The user an unprivileged daemon runs as.
const NOBODY: u32 = 65534;

/// The gauges of `name` equal the certificate on disk and the schedule `status --json`
/// computes from the same files.
fn assert_gauges_are_true(world: &World, scrape: &Scrape, name: &str) {
    let (not_before, not_after) = validity_of(&world.cert_pem(name));
    assert_eq!(
        scrape.value(
            "kyma_certd_certificate_not_after_timestamp_seconds",
            &[("name", name)]
        ),
        not_after as f64,
        "not-after gauge vs cert.pem"
    );
    assert_eq!(
        scrape.value(
            "kyma_certd_certificate_not_before_timestamp_seconds",
            &[("name", name)]
        ),
        not_before as f64,
        "not-before gauge vs cert.pem"
    );
    let status = world.status(name);
    let scheduled = unix_of(status["next_renewal"].as_str().expect("a next renewal"));
    let gauge = scrape.value(
        "kyma_certd_certificate_next_renewal_timestamp_seconds",
        &[("name", name)],
    );
    // status prints whole seconds, truncated.
    assert_eq!(
        gauge.floor() as i64,
        scheduled,
        "next-renewal gauge {gauge} vs status --json {status}"
    );
    assert_eq!(
        scrape.state(name).as_deref(),
        status["state"].as_str(),
        "state gauge vs status --json"
    );
}

/// Every counter and the streak gauge of `name`, for before/after comparisons.
fn counters(scrape: &Scrape, name: &str) -> BTreeMap<String, f64> {
    let mut all: BTreeMap<String, f64> = scrape
        .failures_by_reason(name)
        .into_iter()
        .map(|(reason, v)| (format!("failure:{reason}"), v))
        .collect();
    for result in ["success", "failure"] {
        all.insert(format!("renewals:{result}"), scrape.renewals(name, result));
    }
    all.insert(
        "consecutive_failures".to_owned(),
        scrape.value("kyma_certd_consecutive_failures", &[("name", name)]),
    );
    all.insert(
        "duration_count".to_owned(),
        scrape.value(
            "kyma_certd_renewal_duration_seconds_count",
            &[("name", name)],
        ),
    );
    all
}

/// `after` equals `before` except for the keys in `moved`, which grew by exactly their value.
fn assert_moved(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
    moved: &[(&str, f64)],
) {
    let mut expected = before.clone();
    for (key, delta) in moved {
        *expected
            .get_mut(*key)
            .unwrap_or_else(|| panic!("no counter {key}")) += delta;
    }
    assert_eq!(after, &expected, "counters after the event");
}

fn readyz(daemon: &Daemon) -> (u16, serde_json::Value) {
    let response = daemon.response("/readyz");
    (response.status, response.json())
}

fn gauges_and_counters_follow_renewals_and_failures(protocol: &'static str) {
    let world = World::with(Settings::quiet(), Duration::from_secs(3600));
    world.write_config(&[world.cert("orders", protocol)]);
    world.enroll("orders");
    let daemon = world.daemon().serving();
    let scrape = daemon.wait_state("orders", "valid", SHORT);
    assert_gauges_are_true(&world, &scrape, "orders");
    assert_eq!(readyz(&daemon).0, 200);
    let before = counters(&scrape, "orders");
    assert!(before.values().all(|v| *v == 0.0), "{before:?}");
    assert_eq!(
        scrape.get(
            "kyma_certd_last_success_timestamp_seconds",
            &[("name", "orders")]
        ),
        None,
        "no success yet"
    );

    // valid -> renewing -> valid: the connector takes a while to answer.
    world.sim.set_fault(
        Fault::Latency {
            delay: Duration::from_millis(1500),
        },
        FaultScope::Next(1),
    );
    let enrolled = world.cert_pem("orders");
    let started = unix(SystemTime::now());
    daemon.renew_now();
    daemon.wait_state("orders", "renewing", SHORT);
    let (status, body) = readyz(&daemon);
    assert_eq!(
        status, 200,
        "a renewing certificate is still usable: {body}"
    );
    assert_eq!(body["certificates"]["orders"], "renewing");
    let scrape = daemon.wait_state("orders", "valid", SHORT);
    assert_ne!(
        world.cert_pem("orders"),
        enrolled,
        "a new certificate on disk"
    );
    let after = counters(&scrape, "orders");
    assert_moved(
        &before,
        &after,
        &[("renewals:success", 1.0), ("duration_count", 1.0)],
    );
    assert_gauges_are_true(&world, &scrape, "orders");
    let last_success = scrape.value(
        "kyma_certd_last_success_timestamp_seconds",
        &[("name", "orders")],
    );
    assert!(
        last_success >= started - 1.0 && last_success <= unix(SystemTime::now()) + 1.0,
        "last success {last_success} is the renewal's time ({started})"
    );
    let took = scrape.value(
        "kyma_certd_renewal_duration_seconds_sum",
        &[("name", "orders")],
    );
    assert!(
        took >= 1.5,
        "the duration includes the connector's 1.5 s: {took}"
    );
    // And nothing more happens by itself.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(counters(&daemon.metrics(), "orders"), after);

    // One failure per fault, each counted once under its reason.
    let faults = [
        (Fault::Unavailable, "http"),
        (Fault::InvalidBase64, "protocol"),
        (Fault::ForeignKey, "verify"),
        (Fault::DropHandshake, "network"),
    ];
    for (streak, (fault, reason)) in faults.into_iter().enumerate() {
        let before = counters(&daemon.metrics(), "orders");
        let on_disk = world.cert_pem("orders");
        world.sim.set_fault(fault.clone(), FaultScope::Next(1));
        daemon.renew_now();
        let scrape = daemon.wait_scrape(SHORT, &format!("a {reason} failure"), |s| {
            s.renewals("orders", "failure") > before["renewals:failure"]
                && s.state("orders").as_deref() == Some("backoff")
        });
        assert_eq!(world.sim.active_fault(), None, "{fault:?} was consumed");
        let after = counters(&scrape, "orders");
        assert_moved(
            &before,
            &after,
            &[
                ("renewals:failure", 1.0),
                (&format!("failure:{reason}"), 1.0),
                ("consecutive_failures", 1.0),
                ("duration_count", 1.0),
            ],
        );
        assert_eq!(after["consecutive_failures"], (streak + 1) as f64);
        assert_eq!(
            world.cert_pem("orders"),
            on_disk,
            "{fault:?}: files untouched"
        );
        // The retry time is what status --json shows for a certificate in backoff.
        assert_gauges_are_true(&world, &scrape, "orders");
        let (status, body) = readyz(&daemon);
        assert_eq!(status, 200, "backing off is still usable: {body}");
        assert_eq!(body["certificates"]["orders"], "backoff");
    }

    // A success ends the streak.
    let before = counters(&daemon.metrics(), "orders");
    daemon.renew_now();
    let scrape = daemon.wait_scrape(SHORT, "the recovery", |s| {
        s.renewals("orders", "success") == before["renewals:success"] + 1.0
            && s.state("orders").as_deref() == Some("valid")
    });
    let mut after = counters(&scrape, "orders");
    assert_eq!(
        after.insert("consecutive_failures".to_owned(), 4.0),
        Some(0.0)
    );
    assert_moved(
        &before,
        &after,
        &[("renewals:success", 1.0), ("duration_count", 1.0)],
    );
    assert_gauges_are_true(&world, &scrape, "orders");
}

#[test]
fn compass_gauges_are_true_and_counters_move_once_per_event() {
    gauges_and_counters_follow_renewals_and_failures("compass");
}

#[test]
fn kyma_rest_gauges_are_true_and_counters_move_once_per_event() {
    gauges_and_counters_follow_renewals_and_failures("kyma-rest");
}

#[test]
fn a_renewal_into_a_read_only_directory_counts_one_write_failure() {
    let world = World::with(Settings::quiet(), Duration::from_secs(3600));
    world.write_config(&[world.compass("orders")]);
    world.enroll("orders");
    // As root, file modes do not apply: the daemon then runs as an unprivileged user,
    // who is handed everything in the world.
    let mut daemon = world.daemon();
    if is_root() {
        chown_tree(world.root(), NOBODY);
        daemon = daemon.user(NOBODY);
    }
    let daemon = daemon.serving();
    let scrape = daemon.wait_state("orders", "valid", SHORT);
    let before = counters(&scrape, "orders");
    let on_disk = world.cert_pem("orders");

    let dir = world.cert_dir("orders");
    chmod(&dir, 0o555);
    daemon.renew_now();
    let scrape = daemon.wait_scrape(SHORT, "a write failure", |s| {
        s.renewals("orders", "failure") == 1.0 && s.state("orders").as_deref() == Some("backoff")
    });
    chmod(&dir, 0o755);
    assert_moved(
        &before,
        &counters(&scrape, "orders"),
        &[
            ("renewals:failure", 1.0),
            ("failure:write", 1.0),
            ("consecutive_failures", 1.0),
            ("duration_count", 1.0),
        ],
    );
    assert_eq!(world.cert_pem("orders"), on_disk);
}

#[test]
fn state_goes_from_backoff_to_expired_when_renewals_fail_until_not_after() {
    let mut world = World::with(Settings::quiet(), Duration::from_secs(6));
    for line in [
        "key_algorithm = \"rsa2048\"",
        "renew_at = \"50%\"",
        "jitter = \"0%\"",
        "retry_min = \"1s\"",
        "retry_max = \"1s\"",
        "timeout = \"5s\"",
    ] {
        world.settings.defaults.set(line);
    }
    world.write_config(&[world.compass("orders")]);
    world.enroll("orders");
    world
        .sim
        .set_fault(Fault::Unavailable, FaultScope::UntilCleared);
    let daemon = world.daemon().serving();
    daemon.wait_state("orders", "backoff", SHORT);
    assert_eq!(readyz(&daemon).0, 200);

    let scrape = daemon.wait_state("orders", "expired", SHORT);
    let (_, not_after) = validity_of(&world.cert_pem("orders"));
    assert!(unix(SystemTime::now()) >= not_after as f64);
    assert_eq!(
        scrape.value(
            "kyma_certd_certificate_not_after_timestamp_seconds",
            &[("name", "orders")]
        ),
        not_after as f64,
        "an expired certificate is still on disk: its notAfter stays"
    );
    assert_eq!(
        scrape.get(
            "kyma_certd_certificate_next_renewal_timestamp_seconds",
            &[("name", "orders")]
        ),
        None,
        "nothing is scheduled for an expired certificate"
    );
    let failures = scrape.failures_by_reason("orders");
    assert!(failures["http"] >= 1.0, "{failures:?}");
    assert_eq!(
        failures.values().sum::<f64>(),
        failures["http"],
        "every failure was the 503: {failures:?}"
    );
    assert_eq!(scrape.renewals("orders", "failure"), failures["http"]);
    assert_eq!(scrape.renewals("orders", "success"), 0.0);
    assert!(
        !daemon.log_text().contains("the connector refused"),
        "the connector never refused anything:\n{}",
        daemon.log_text()
    );
    let (status, body) = readyz(&daemon);
    assert_eq!(status, 503);
    assert_eq!(
        body,
        serde_json::json!({"ready": false, "certificates": {"orders": "expired"}})
    );
    assert_eq!(world.status("orders")["state"], "expired");
}

fn remove_consumer_files(dir: &Path) {
    for file in ["cert.pem", "key.pem", "chain.pem", "ca.pem", "current"] {
        let _ = std::fs::remove_file(dir.join(file));
    }
}

#[test]
fn state_follows_a_revocation_a_new_enrollment_and_deleted_files() {
    let world = World::with(Settings::quiet(), Duration::from_secs(3600));
    world.write_config(&[world.compass("orders")]);
    world.enroll("orders");
    let daemon = world.daemon().serving();
    let scrape = daemon.wait_state("orders", "valid", SHORT);
    let before = counters(&scrape, "orders");

    // An operator revokes the certificate, which removes it with its key; the daemon
    // notices by itself.
    let out = world
        .command(&["revoke", "--name", "orders", "--yes"])
        .run();
    assert!(out.status.success(), "{}", out.describe());
    let scrape = daemon.wait_state("orders", "missing", SHORT);
    assert_eq!(
        counters(&scrape, "orders"),
        before,
        "a revocation is not a renewal attempt"
    );
    let (status, body) = readyz(&daemon);
    assert_eq!(status, 503);
    assert_eq!(
        body,
        serde_json::json!({"ready": false, "certificates": {"orders": "missing"}})
    );

    // A new enrollment brings it back.
    world.enroll("orders");
    let scrape = daemon.wait_state("orders", "valid", SHORT);
    assert_gauges_are_true(&world, &scrape, "orders");
    assert_eq!(readyz(&daemon).0, 200);

    // Someone deletes the files.
    remove_consumer_files(&world.cert_dir("orders"));
    let scrape = daemon.wait_state("orders", "missing", SHORT);
    let (status, body) = readyz(&daemon);
    assert_eq!(status, 503);
    assert_eq!(
        body,
        serde_json::json!({"ready": false, "certificates": {"orders": "missing"}})
    );
    for gauge in [
        "kyma_certd_certificate_not_after_timestamp_seconds",
        "kyma_certd_certificate_not_before_timestamp_seconds",
        "kyma_certd_certificate_next_renewal_timestamp_seconds",
    ] {
        assert_eq!(
            scrape.get(gauge, &[("name", "orders")]),
            None,
            "{gauge}: no certificate, no value"
        );
    }
    assert_eq!(counters(&scrape, "orders"), before);
}
