//! What the alerts need to tell a new certificate from a lost one: a certificate that was
//! never enrolled is `missing` without `kyma_certd_certificate_enrolled_timestamp_seconds`;
//! once enrolled, the series stays (from state.json) when the files are gone again, and a
//! restarted daemon still shows it; `status` says which of the two a `missing` one is.
//! And a reload that would drop every certificate (an emptied file) is refused, so the
//! alerts keep watching them.

mod support;

use std::time::{Duration, SystemTime};

use rustix::process::Signal;
use support::pem::unix;
use support::world::World;

const ENROLLED: &str = "kyma_certd_certificate_enrolled_timestamp_seconds";
const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn a_lost_certificate_keeps_its_enrollment_record_and_a_new_one_has_none() {
    let world = World::new(Duration::from_secs(3600));
    world.write_config(&[world.compass("orders")]);
    // The daemon watches the certificate's directory for an enrollment: it exists.
    std::fs::create_dir_all(world.cert_dir("orders")).unwrap();
    let mut daemon = world.daemon().ready();
    let scrape = daemon.wait_state("orders", "missing", LIMIT);
    assert_eq!(
        scrape.get(ENROLLED, &[("name", "orders")]),
        None,
        "never enrolled"
    );
    let reason = world.status("orders")["reason"].clone();
    assert!(
        reason
            .as_str()
            .is_some_and(|r| r.starts_with("never enrolled")),
        "{reason}"
    );

    let before = unix(SystemTime::now()).floor();
    world.enroll("orders");
    let scrape = daemon.wait_state("orders", "valid", LIMIT);
    let enrolled = scrape
        .get(ENROLLED, &[("name", "orders")])
        .expect("an enrolled certificate has its enrollment time");
    assert!(
        enrolled >= before && enrolled <= unix(SystemTime::now()),
        "{enrolled} is not the enrollment's time"
    );

    // The files are lost: missing again, but with the record of its enrollment.
    std::fs::remove_file(world.cert_dir("orders").join("current")).unwrap();
    let scrape = daemon.wait_state("orders", "missing", LIMIT);
    assert_eq!(scrape.get(ENROLLED, &[("name", "orders")]), Some(enrolled));
    let reason = world.status("orders")["reason"].clone();
    assert!(
        reason.as_str().is_some_and(
            |r| r.starts_with("enrolled at ") && r.contains("no certificate is on disk")
        ),
        "{reason}"
    );
    daemon.terminate();

    let mut restarted = world.daemon().ready();
    let scrape = restarted.wait_state("orders", "missing", LIMIT);
    assert_eq!(scrape.get(ENROLLED, &[("name", "orders")]), Some(enrolled));
    restarted.terminate();
}

#[test]
fn a_reload_that_would_drop_every_certificate_is_refused() {
    let world = World::new(Duration::from_secs(3600));
    world.write_config(&[world.compass("orders")]);
    world.enroll("orders");
    let mut daemon = world.daemon().ready();
    daemon.wait_state("orders", "valid", LIMIT);

    // The file emptied by accident (a truncating editor, a full disk).
    std::fs::write(&world.config, "").unwrap();
    daemon.signal(Signal::HUP);
    let scrape = daemon.wait_scrape(LIMIT, "the reload to be refused", |s| {
        s.get("kyma_certd_config_reloads_total", &[("result", "failure")]) == Some(1.0)
    });
    assert_eq!(scrape.state("orders").as_deref(), Some("valid"));
    daemon.wait_for_message("has no [[certificate]] and was not applied", LIMIT);
    daemon.terminate();
}
