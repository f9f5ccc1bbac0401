//! A renewal that returns a different CA bundle (the simulator announces a next CA, as a
//! connector does at the start of a CA rotation): the renewal still verifies and swaps,
//! the daemon logs a warning naming both bundles and counts it in
//! `kyma_certd_ca_changes_total`; renewals that return the same bundle count nothing.

mod support;

use std::time::Duration;

use kyma_certd::pki::x509::{hex, pem_certificates, sha256};
use rustix::process::Signal;
use support::running::Daemon;
use support::wait::wait_for;
use support::world::World;

const CHANGED: &str = "different CA bundle";

fn ca_changes(daemon: &mut Daemon) -> f64 {
    daemon
        .metrics()
        .value("kyma_certd_ca_changes_total", &[("name", "orders")])
}

/// Sends SIGUSR1 and waits until the simulator has issued `count` renewals and the daemon
/// has logged the swap of the last one.
fn renew_now(world: &World, daemon: &Daemon, count: usize) {
    daemon.signal(Signal::USR1);
    wait_for("the renewal", Duration::from_secs(30), || {
        (world.sim.renewals().len() >= count).then_some(())
    });
    let last = world.sim.renewals()[count - 1].fingerprint.clone();
    daemon.wait_for_line("swapping in the renewal", Duration::from_secs(15), |l| {
        l.field("new").as_str() == Some(last.as_str())
    });
}

/// Short fingerprints of a bundle's certificates, in its order.
fn ca_fingerprints(pem: &str) -> Vec<String> {
    pem_certificates(pem)
        .unwrap()
        .iter()
        .map(|der| hex(&sha256(der).as_ref()[..8]))
        .collect()
}

#[test]
fn a_changed_ca_bundle_is_logged_and_counted_once_per_change() {
    let world = World::new(Duration::from_secs(3600));
    world.write_config(&[world.compass("orders")]);
    world.enroll("orders");
    let ca_path = world.cert_dir("orders").join("ca.pem");
    let first_ca = std::fs::read_to_string(&ca_path).unwrap();
    let mut daemon = world.daemon().ready();
    assert_eq!(
        ca_changes(&mut daemon),
        0.0,
        "the series exists from the start"
    );

    renew_now(&world, &daemon, 1);
    assert_eq!(ca_changes(&mut daemon), 0.0, "the same CA is no change");
    assert!(daemon.lines_with(CHANGED).is_empty());

    let next_ca = world.sim.announce_next_ca().unwrap();
    renew_now(&world, &daemon, 2);
    let line = daemon.wait_for_message(CHANGED, Duration::from_secs(10));
    assert_eq!(line.level(), "WARN");
    assert_eq!(line.cert(), Some("orders"));
    let old = ca_fingerprints(&first_ca).join(",");
    let new = ca_fingerprints(&format!("{first_ca}{next_ca}")).join(",");
    assert_eq!(line.field("old_ca").as_str(), Some(old.as_str()));
    assert_eq!(line.field("new_ca").as_str(), Some(new.as_str()));
    wait_for("the counter", Duration::from_secs(10), || {
        (ca_changes(&mut daemon) == 1.0).then_some(())
    });
    let on_disk = std::fs::read_to_string(&ca_path).unwrap();
    assert_eq!(
        ca_fingerprints(&on_disk),
        ca_fingerprints(&format!("{first_ca}{next_ca}")),
        "the new bundle was swapped in"
    );

    renew_now(&world, &daemon, 3);
    assert_eq!(
        ca_changes(&mut daemon),
        1.0,
        "the bundle did not change again"
    );
    assert_eq!(daemon.lines_with(CHANGED).len(), 1);
    daemon.assert_no_secrets();
}
