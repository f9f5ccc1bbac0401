//! Hands-free (re-)enrollment: while a certificate is missing, the daemon enrolls with a
//! one-time token that appears in its `token_file`, once per token; a token that the
//! connector rejects or that is not a token at all is reported (log, metric, status)
//! and not retried; a token that arrives while the certificate is valid is left alone;
//! and a Kubernetes Secret volume, updated by its `..data` symlink swap, works the same.

mod support;

use std::path::Path;
use std::time::Duration;

use kyma_connector_sim::{Endpoint, Fault, FaultScope, RestFlavour};
use rustix::process::Signal;
use support::running::Daemon;
use support::wait::wait_for;
use support::world::{CertSpec, World, toml_path};

fn spec(world: &World, token_file: &Path) -> CertSpec {
    world
        .compass("orders")
        .with(format!("token_file = {}", toml_path(token_file)))
}

fn enrolled(world: &World) -> bool {
    world.cert_dir("orders").join("cert.pem").exists()
}

fn token_metric(daemon: &mut Daemon, result: &str) -> f64 {
    daemon
        .metrics()
        .get(
            "kyma_certd_token_enrollments_total",
            &[("name", "orders"), ("result", result)],
        )
        .unwrap_or(-1.0)
}

/// Waits until another certificate than `old` is in place and valid.
fn wait_for_reenrollment(world: &World, old: &str) {
    wait_for("the re-enrollment", Duration::from_secs(10), || {
        let status = world.status("orders");
        let fingerprint = status["fingerprint_sha256"].as_str()?.to_owned();
        (fingerprint != old && status["state"] == "valid").then_some(())
    });
}

fn configurations(world: &World) -> u64 {
    world
        .sim
        .request_counts()
        .get(Endpoint::CompassConfiguration)
}

#[test]
fn a_token_dropped_into_the_token_file_enrolls_once_and_a_rejected_one_is_not_retried() {
    let world = World::new(Duration::from_secs(3600));
    let tokens = world.path("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let token_file = tokens.join("orders");
    world.write_config(&[spec(&world, &token_file)]);
    let mut daemon = world.daemon().ready();
    assert!(!enrolled(&world));

    // A token the connector does not know: reported, remembered, never sent again.
    std::fs::write(&token_file, "not-a-token-the-connector-issued\n").unwrap();
    wait_for(
        "the rejected token reported",
        Duration::from_secs(10),
        || (token_metric(&mut daemon, "failure") == 1.0).then_some(()),
    );
    let status = &world.status("orders");
    assert!(
        status["token_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{status}"
    );
    let asked = configurations(&world);
    std::fs::write(&token_file, "not-a-token-the-connector-issued\n").unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        configurations(&world),
        asked,
        "the rejected token was sent again"
    );
    assert!(!enrolled(&world));

    // A real token: enrolled, once.
    std::fs::write(&token_file, format!("{}\n", world.sim.mint_compass_token())).unwrap();
    wait_for(
        "the enrollment from the token file",
        Duration::from_secs(10),
        || enrolled(&world).then_some(()),
    );
    wait_for("the success counted", Duration::from_secs(5), || {
        (token_metric(&mut daemon, "success") == 1.0).then_some(())
    });
    let status = &world.status("orders");
    assert_eq!(status["state"], "valid", "{status}");
    assert!(status["token_error"].is_null(), "{status}");
    daemon.assert_no_secrets();
    daemon.terminate();
}

#[test]
fn a_token_that_arrives_while_the_certificate_is_valid_is_left_alone() {
    let world = World::new(Duration::from_secs(3600));
    let token_file = world.path("orders.token");
    world.write_config(&[spec(&world, &token_file)]);
    world.enroll("orders");
    let mut daemon = world.daemon().ready();
    let token = world.sim.mint_compass_token();
    std::fs::write(&token_file, &token).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(token_metric(&mut daemon, "success"), 0.0);
    assert_eq!(token_metric(&mut daemon, "failure"), 0.0);
    daemon.terminate();
    // Unburned: an operator can still enroll with it.
    let output = world
        .command(&["enroll", "--name", "orders", "--token-file"])
        .arg(&token_file)
        .run();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A Secret volume as the kubelet writes it: `token -> ..data/token`, `..data ->
/// ..<timestamp>/`, updated by creating a new timestamped folder and renaming a new
/// `..data` link over the old one.
#[test]
fn a_kubernetes_secret_volume_update_delivers_the_token() {
    let world = World::new(Duration::from_secs(3600));
    let volume = world.path("secret");
    std::fs::create_dir(&volume).unwrap();
    let first = volume.join("..2026_12_03_10_00_00.000000001");
    std::fs::create_dir(&first).unwrap();
    std::fs::write(first.join("token"), "placeholder until provisioning\n").unwrap();
    std::os::unix::fs::symlink(first.file_name().unwrap(), volume.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/token", volume.join("token")).unwrap();
    world.write_config(&[spec(&world, &volume.join("token"))]);
    let mut daemon = world.daemon().ready();
    // The placeholder is not a token: reported once, nothing burned.
    wait_for("the placeholder reported", Duration::from_secs(10), || {
        (token_metric(&mut daemon, "failure") == 1.0).then_some(())
    });

    let second = volume.join("..2026_12_03_10_05_00.000000002");
    std::fs::create_dir(&second).unwrap();
    std::fs::write(second.join("token"), world.sim.mint_compass_token()).unwrap();
    std::os::unix::fs::symlink(second.file_name().unwrap(), volume.join("..data_tmp")).unwrap();
    std::fs::rename(volume.join("..data_tmp"), volume.join("..data")).unwrap();
    std::fs::remove_dir_all(&first).unwrap();
    wait_for(
        "the enrollment from the Secret",
        Duration::from_secs(10),
        || enrolled(&world).then_some(()),
    );
    assert_eq!(world.status("orders")["state"], "valid");
    daemon.terminate();
}

/// An expired certificate is re-enrolled from a token dropped in afterwards: the same
/// path as a missing one, without a person running `enroll`.
#[test]
fn an_expired_certificate_is_re_enrolled_from_the_token_file() {
    let world = World::new(Duration::from_secs(4));
    let token_file = world.path("orders.token");
    world.write_config(&[spec(&world, &token_file)]);
    let old = world.enroll("orders");
    // The connector is down until the certificate has expired.
    world
        .sim
        .set_fault(Fault::Unavailable, FaultScope::UntilCleared);
    let mut daemon = world.daemon().ready();
    wait_for("the certificate to expire", Duration::from_secs(15), || {
        (world.status("orders")["state"] == "expired").then_some(())
    });
    world.sim.clear_fault();
    std::fs::write(&token_file, world.sim.mint_compass_token()).unwrap();
    wait_for_reenrollment(&world, &old);
    wait_for("the success counted", Duration::from_secs(5), || {
        (token_metric(&mut daemon, "success") == 1.0).then_some(())
    });
    daemon.terminate();
}

/// How the token reaches the token file.
#[derive(Clone, Copy)]
enum Delivery {
    /// Written in place.
    File,
    /// A Kubernetes Secret volume's `..data` swap.
    SecretVolume,
}

/// A Secret volume as the kubelet lays it out, holding `content` as `token`.
fn secret_volume(world: &World, content: &str) -> std::path::PathBuf {
    let volume = world.path("secret");
    std::fs::create_dir_all(&volume).unwrap();
    let first = volume.join("..2026_12_03_10_00_00.000000001");
    std::fs::create_dir(&first).unwrap();
    std::fs::write(first.join("token"), content).unwrap();
    std::os::unix::fs::symlink(first.file_name().unwrap(), volume.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/token", volume.join("token")).unwrap();
    volume.join("token")
}

/// The kubelet's update: a new timestamped folder, `..data` renamed over, the old removed.
fn swap_secret_volume(token_file: &Path, content: &str) {
    let volume = token_file.parent().unwrap();
    let old = std::fs::read_link(volume.join("..data")).unwrap();
    let second = volume.join("..2026_12_03_10_05_00.000000002");
    std::fs::create_dir(&second).unwrap();
    std::fs::write(second.join("token"), content).unwrap();
    std::os::unix::fs::symlink(second.file_name().unwrap(), volume.join("..data_tmp")).unwrap();
    std::fs::rename(volume.join("..data_tmp"), volume.join("..data")).unwrap();
    std::fs::remove_dir_all(volume.join(old)).unwrap();
}

/// A certificate the connector revoked, in that connector's own words, is re-enrolled from
/// a token dropped in afterwards, while the daemon keeps probing it.
fn a_revoked_certificate_is_re_enrolled_from_the_token_file(
    protocol: &str,
    flavour: RestFlavour,
    delivery: Delivery,
) {
    let world = World::new(Duration::from_secs(3600));
    world.sim.set_rest_flavour(flavour);
    let token_file = match delivery {
        Delivery::File => world.path("orders.token"),
        Delivery::SecretVolume => secret_volume(&world, "placeholder until provisioning\n"),
    };
    let base = match protocol {
        "compass" => world.compass("orders"),
        _ => world.kyma_rest("orders"),
    };
    world.write_config(&[base.with(format!("token_file = {}", toml_path(&token_file)))]);
    let old = world.enroll("orders");
    world.sim.revoke(&old);
    let mut daemon = world.daemon().ready();
    daemon.signal(Signal::USR1);
    wait_for("the revocation noticed", Duration::from_secs(15), || {
        (world.status("orders")["state"] == "revoked").then_some(())
    });
    let token = match protocol {
        "compass" => world.sim.mint_compass_token(),
        // The REST form: the configuration URL that carries the token.
        _ => world.sim.mint_rest_token().1.to_string(),
    };
    match delivery {
        Delivery::File => std::fs::write(&token_file, token).unwrap(),
        Delivery::SecretVolume => swap_secret_volume(&token_file, &token),
    }
    wait_for_reenrollment(&world, &old);
    wait_for("the success counted", Duration::from_secs(5), || {
        (token_metric(&mut daemon, "success") == 1.0).then_some(())
    });
    daemon.terminate();
}

#[test]
fn a_revoked_compass_certificate_is_re_enrolled_from_the_token_file() {
    a_revoked_certificate_is_re_enrolled_from_the_token_file(
        "compass",
        RestFlavour::default(),
        Delivery::File,
    );
}

#[test]
fn a_revoked_compass_certificate_is_re_enrolled_from_a_secret_volume_update() {
    a_revoked_certificate_is_re_enrolled_from_the_token_file(
        "compass",
        RestFlavour::default(),
        Delivery::SecretVolume,
    );
}

#[test]
fn a_revoked_connector_service_certificate_is_re_enrolled_from_the_token_file() {
    a_revoked_certificate_is_re_enrolled_from_the_token_file(
        "kyma-rest",
        RestFlavour::ConnectorService,
        Delivery::File,
    );
}

#[test]
fn a_revoked_connectivity_adapter_certificate_is_re_enrolled_from_a_secret_volume_update() {
    a_revoked_certificate_is_re_enrolled_from_the_token_file(
        "kyma-rest",
        RestFlavour::ConnectivityAdapter,
        Delivery::SecretVolume,
    );
}
