//! What the alerts need to tell a new certificate from a lost one: a certificate that was
//! never enrolled is `missing` without `kyma_certd_certificate_enrolled_timestamp_seconds`;
//! once enrolled, the series stays (from state.json) when the files are gone again, and a
//! restarted daemon still shows it.

#[path = "support/daemon.rs"]
mod harness;

use std::time::{Duration, SystemTime};

use harness::{CertSpec, World, unix};

const ENROLLED: &str = "kyma_certd_certificate_enrolled_timestamp_seconds";
const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn a_lost_certificate_keeps_its_enrollment_record_and_a_new_one_has_none() {
    let world = World::new(Duration::from_secs(3600));
    world.write_config(&[CertSpec::compass("orders")]);
    // The daemon watches the certificate's directory for an enrollment: it exists.
    std::fs::create_dir_all(world.cert_dir("orders")).unwrap();
    let mut daemon = world.run();
    daemon.wait_ready();
    let scrape = daemon.wait_state("orders", "missing", LIMIT);
    assert_eq!(
        scrape.get(ENROLLED, &[("name", "orders")]),
        None,
        "never enrolled"
    );

    let before = unix(SystemTime::now()).floor();
    world.enroll("orders", "compass");
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
    daemon.terminate();

    let mut restarted = world.run();
    restarted.wait_ready();
    let scrape = restarted.wait_state("orders", "missing", LIMIT);
    assert_eq!(scrape.get(ENROLLED, &[("name", "orders")]), Some(enrolled));
    restarted.terminate();
}
