//! Every simulator fault against one-shot `renew --force`: a non-zero exit with a
//! clear message, consumer files byte-identical, and the request was really made.

mod support;

use std::time::Duration;

use kyma_connector_sim::{Fault, FaultScope};
use support::world::{Settings, World};

/// Each fault, the words the error must contain, and whether it is reported as a
/// failure to verify (so the request reached the signing step).
fn faults() -> Vec<(Fault, &'static [&'static str])> {
    vec![
        (
            Fault::Latency {
                delay: Duration::from_secs(6),
            },
            &["timed out", "timeout"],
        ),
        (Fault::InternalError, &["500"]),
        (Fault::Unavailable, &["503"]),
        (Fault::MalformedJson, &["json", "JSON"]),
        (Fault::InvalidBase64, &["base64"]),
        (Fault::ForeignKey, &["public key"]),
        (Fault::WrongSubject, &["subject"]),
        (Fault::ExpiredCertificate, &["expired"]),
        (Fault::UnrelatedCa, &["chain", "CA"]),
        (
            Fault::Stall {
                duration: Duration::from_secs(8),
            },
            &["timed out", "timeout"],
        ),
        (
            Fault::OversizedBody { bytes: 40 << 20 },
            &["large", "MiB", "size"],
        ),
        (
            Fault::DropHandshake,
            &["connect", "handshake", "closed", "reset", "eof", "EOF"],
        ),
    ]
}

fn every_fault_keeps_the_old_files(protocol: &'static str) {
    let mut world = World::with(Settings::one_shot(), Duration::from_secs(3600));
    world.settings.defaults.set("timeout = \"2s\"");
    world.write_config(&[world.cert("app", protocol)]);
    world.enroll("app");
    let before = world.files("app");
    for (fault, words) in faults() {
        let requests = world.sim.request_counts().total();
        world.sim.set_fault(fault.clone(), FaultScope::UntilCleared);
        let started = std::time::Instant::now();
        let run = world.command(&["renew", "--force"]).run();
        world.sim.clear_fault();
        let stderr = run.stderr();
        assert_eq!(run.code(), 1, "{fault:?}: exit 1\n{stderr}");
        assert!(
            words.iter().any(|w| stderr.contains(w)),
            "{fault:?}: the error says what happened ({words:?}): {stderr}"
        );
        assert!(
            stderr.lines().count() <= 3,
            "{fault:?}: a short message, not a dump: {stderr}"
        );
        assert_eq!(
            world.files("app"),
            before,
            "{fault:?}: files byte-identical"
        );
        assert!(
            world.sim.request_counts().total() > requests,
            "{fault:?}: the request was made"
        );
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "{fault:?}: bounded by the timeout"
        );
    }
    // And once the connector is healthy again, renewal works.
    world.command(&["renew", "--force"]).run().ok();
    assert_ne!(world.files("app")["cert.pem"], before["cert.pem"]);
}

#[test]
fn compass_every_fault_fails_cleanly_and_keeps_the_old_files() {
    every_fault_keeps_the_old_files("compass");
}

#[test]
fn kyma_rest_every_fault_fails_cleanly_and_keeps_the_old_files() {
    every_fault_keeps_the_old_files("kyma-rest");
}
