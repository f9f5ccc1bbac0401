//! Certificates that only a new enrollment can save, in a running `kyma-certd run`: a
//! missing one and an expired one wait quietly (not ready, one error line, no request to
//! the connector), a revoked one is probed every `retry_max`, not hammered; after an
//! operator's enrollment each is valid again and renews on schedule. The real binary
//! against the in-process simulator over TLS.

mod support;

use std::time::{Duration, Instant, SystemTime};

use kyma_certd::store::Store;
use support::ca::TestCa;
use support::disk::fingerprint_on_disk;
use support::running::Daemon;
use support::wait::eventually;
use support::world::{CertSpec, World};

const SHORT: Duration = Duration::from_secs(20);

fn spec(world: &World, name: &str) -> CertSpec {
    world.compass(name).with("renew_at = \"30%\"")
}

/// Waits a few seconds and checks that the certificate stays put in `state`: not ready,
/// at most one error line, and no request to the connector.
fn assert_waits_for_enrollment(world: &World, daemon: &mut Daemon, state: &str) {
    let reached = eventually(Duration::from_secs(15), || {
        daemon.metrics().state("orders").as_deref() == Some(state)
    });
    assert!(reached, "never {state}\n{}", daemon.metrics().text);
    let requests = world.sim.request_counts().total();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        world.sim.request_counts().total(),
        requests,
        "requests while {state}"
    );
    let scrape = daemon.metrics();
    assert_eq!(scrape.state("orders").as_deref(), Some(state));
    assert_eq!(
        scrape.get(
            "kyma_certd_certificate_next_renewal_timestamp_seconds",
            &[("name", "orders")]
        ),
        None,
        "nothing is scheduled while {state}"
    );
    assert_not_ready_and_said_once(daemon, state);
}

/// After an operator's enrollment the certificate is valid again and renews on schedule.
/// Leaves the daemon running.
fn assert_back_to_normal(world: &World, daemon: &mut Daemon) {
    let renewals = world.sim.renewals().len();
    let enrolled = world.enroll("orders");
    let valid = eventually(Duration::from_secs(3), || {
        daemon.metrics().state("orders").as_deref() == Some("valid")
    });
    assert!(valid, "{}", daemon.log_text());
    assert_eq!(daemon.get("/readyz").0, 200);
    let renewed = eventually(Duration::from_secs(12), || {
        fingerprint_on_disk(&world.cert_dir("orders")).is_some_and(|f| f != enrolled)
    });
    assert!(
        renewed,
        "no renewal after the new enrollment\n{}",
        daemon.log_text()
    );
    assert_eq!(world.sim.renewals().len(), renewals + 1);
}

#[test]
fn a_missing_certificate_waits_quietly_until_enrolled_then_renews() {
    let world = World::new(SHORT);
    std::fs::create_dir_all(world.cert_dir("orders").parent().unwrap()).unwrap();
    world.write_config(&[spec(&world, "orders")]);
    let mut daemon = world.daemon().ready();
    assert_waits_for_enrollment(&world, &mut daemon, "missing");
    assert_back_to_normal(&world, &mut daemon);
    // The folder did not exist when the daemon started: it is watched now all the same.
    let replaced = world.enroll("orders");
    let enrolled_at = Instant::now();
    let line = daemon.wait_for_line("the replacement noticed", Duration::from_secs(3), |l| {
        l.message().contains("replaced on disk") && l.field("fingerprint") == replaced.as_str()
    });
    assert!(line.seen.saturating_duration_since(enrolled_at) < Duration::from_secs(1));
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}

/// Writes an expired certificate into `name`'s folder, as a previous enrollment would
/// have left it, with the connector's renewal URL in `state.json`.
fn write_expired(world: &World, name: &str) {
    let config = kyma_certd::config::load(&world.config).unwrap();
    let cfg = config.certificates.iter().find(|c| c.name == name).unwrap();
    let expired = TestCa::new("an earlier connector").material(
        "CN=orders-app",
        SystemTime::now() - Duration::from_secs(80),
        Duration::from_secs(20),
    );
    let store = Store::new(cfg);
    store.swap(&expired).unwrap();
    let mut state = store.read_state().unwrap();
    state.renewal_url = Some(world.sim.compass_mtls_url());
    state.enrolled_at = Some(SystemTime::now() - Duration::from_secs(80));
    store.write_state(&state).unwrap();
}

#[test]
fn an_expired_certificate_waits_quietly_until_enrolled_then_renews() {
    let world = World::new(SHORT);
    world.write_config(&[spec(&world, "orders")]);
    write_expired(&world, "orders");
    let mut daemon = world.daemon().ready();
    assert_waits_for_enrollment(&world, &mut daemon, "expired");
    assert_back_to_normal(&world, &mut daemon);
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}

#[test]
fn a_revoked_certificate_is_probed_not_hammered_until_enrolled_then_renews() {
    let world = World::new(SHORT);
    world.write_config(&[spec(&world, "orders")]);
    let enrolled = world.enroll("orders");
    let mut daemon = world.daemon().ready();
    // Revoked at the connector: the daemon learns it at its next renewal.
    world.sim.revoke(&enrolled);
    let reached = eventually(Duration::from_secs(15), || {
        daemon.metrics().state("orders").as_deref() == Some("revoked")
    });
    assert!(
        reached,
        "never revoked
{}",
        daemon.metrics().text
    );
    // Probed every retry_max (2s here) until it expires, in case the revocation is lifted:
    // a handful of requests, not a retry storm.
    let requests = world.sim.request_counts().total();
    std::thread::sleep(Duration::from_secs(3));
    let probes = world.sim.request_counts().total() - requests;
    assert!(
        (1..=4).contains(&probes),
        "{probes} requests in 3s while revoked"
    );
    assert_not_ready_and_said_once(&daemon, "revoked");
    assert_eq!(
        fingerprint_on_disk(&world.cert_dir("orders")),
        Some(enrolled),
        "the refused certificate stays in place"
    );
    assert_eq!(world.status("orders")["state"], "revoked");
    assert_back_to_normal(&world, &mut daemon);
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}

/// `/readyz` says 503 naming `state` while `/healthz` stays 200, and one error line says
/// what to do (`kyma-certd enroll`).
fn assert_not_ready_and_said_once(daemon: &Daemon, state: &str) {
    let (status, body) = daemon.get("/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(state), "{body}");
    assert_eq!(daemon.get("/healthz").0, 200);
    let errors: Vec<String> = daemon
        .log()
        .into_iter()
        .filter(|l| l.level() == "ERROR")
        .map(|l| l.text)
        .collect();
    assert_eq!(errors.len(), 1, "error lines while {state}: {errors:#?}");
    assert!(
        errors[0].contains("kyma-certd enroll"),
        "the error says what to do: {}",
        errors[0]
    );
}
