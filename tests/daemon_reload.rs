//! Reloading a running `kyma-certd run`: SIGHUP adds and removes certificates, and with
//! `watch_config = true` the daemon applies a new configuration file by itself, the way
//! Kubernetes updates a ConfigMap volume (a new timestamped folder, then an atomic rename
//! of the `..data` symlink that `config.toml` points through), without SIGHUP or a
//! restart. A change in the folder that leaves the file as it was reloads nothing. Either
//! way, a new file that does not validate is rejected once and the previous one stays in
//! force. The real binary against the in-process simulator over TLS.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::process::Signal;
use support::disk::fingerprint_on_disk;
use support::running::{Daemon, LogLine};
use support::wait::eventually;
use support::world::{CertSpec, World};

const SHORT: Duration = Duration::from_secs(20);
/// Long enough that nothing is due during a test: every renewal is one the test asked for.
const LONG: Duration = Duration::from_secs(3600);

const WAIT: Duration = Duration::from_secs(10);

fn spec(world: &World, name: &str) -> CertSpec {
    world.compass(name).with("renew_at = \"30%\"")
}

/// The configuration reloads counted with `result` ("success" or "failure").
fn reloads(daemon: &Daemon, result: &str) -> f64 {
    daemon
        .metrics()
        .get("kyma_certd_config_reloads_total", &[("result", result)])
        .unwrap()
}

/// Waits until a reload added certificate `name`.
fn wait_added(daemon: &Daemon, name: &str, within: Duration) {
    daemon.wait_for_line(&format!("{name} added"), within, |l| {
        l.message() == "certificate added to the configuration" && l.field("name") == name
    });
}

/// `text` with a key no configuration has, in `[metrics]`.
fn broken(text: &str) -> String {
    text.replace("[metrics]", "[metrics]\nno_such_key = 1")
}

/// Waits until the daemon rejected a configuration: one error line.
fn wait_rejected(daemon: &Daemon, within: Duration) -> LogLine {
    let rejected = daemon.wait_for_message(
        "the new configuration is invalid and was not applied",
        within,
    );
    assert_eq!(rejected.level(), "ERROR");
    rejected
}

#[test]
fn sighup_adds_and_removes_certificates_and_a_broken_config_changes_nothing() {
    let world = World::new(SHORT);
    world.write_config(&[spec(&world, "alpha")]);
    world.enroll("alpha");
    let mut daemon = world.daemon().ready();
    assert_eq!(reloads(&daemon, "success"), 0.0);

    // Added: an enrolled certificate is tracked with its schedule, a new one as missing.
    world.write_config(&[
        spec(&world, "alpha"),
        spec(&world, "beta"),
        spec(&world, "gamma"),
    ]);
    let beta = world.enroll("beta");
    daemon.signal(Signal::HUP);
    wait_added(&daemon, "beta", Duration::from_secs(5));
    let tracked = eventually(Duration::from_secs(5), || {
        let scrape = daemon.metrics();
        scrape.state("beta").as_deref() == Some("valid")
            && scrape.state("gamma").as_deref() == Some("missing")
            && scrape
                .get(
                    "kyma_certd_certificate_next_renewal_timestamp_seconds",
                    &[("name", "beta")],
                )
                .is_some()
    });
    assert!(tracked, "{}", daemon.metrics().text);
    assert_eq!(reloads(&daemon, "success"), 1.0);

    // Removed: every series of alpha and gamma leaves /metrics.
    world.write_config(&[spec(&world, "beta")]);
    daemon.signal(Signal::HUP);
    let gone = eventually(Duration::from_secs(5), || {
        let scrape = daemon.metrics();
        !scrape.mentions("alpha") && !scrape.mentions("gamma") && scrape.mentions("beta")
    });
    assert!(gone, "{}", daemon.metrics().text);
    assert_eq!(reloads(&daemon, "success"), 2.0);
    let (status, body) = daemon.get("/readyz");
    assert_eq!(
        status, 200,
        "readiness only counts configured certificates: {body}"
    );
    let alpha_fingerprint = fingerprint_on_disk(&world.cert_dir("alpha"));

    // Changed: beta is restarted with its new policy and rescheduled at once.
    world.write_config(&[world.compass("beta").with("renew_at = \"25%\"")]);
    daemon.signal(Signal::HUP);
    daemon.wait_for_line("beta restarted", Duration::from_secs(5), |l| {
        l.message()
            .contains("certificate changed in the configuration")
            && l.field("name") == "beta"
    });
    let labels = [("name", "beta")];
    let rescheduled = eventually(Duration::from_secs(5), || {
        let scrape = daemon.metrics();
        let nb = scrape.get(
            "kyma_certd_certificate_not_before_timestamp_seconds",
            &labels,
        );
        let next = scrape.get(
            "kyma_certd_certificate_next_renewal_timestamp_seconds",
            &labels,
        );
        // 25% of 20 s, less up to 5% jitter.
        matches!((nb, next), (Some(nb), Some(next)) if next >= nb + 3.999 && next <= nb + 5.001)
    });
    assert!(rescheduled, "{}", daemon.metrics().text);
    assert_eq!(reloads(&daemon, "success"), 3.0);

    // Broken: rejected, logged, counted; the old configuration stays in force.
    let good_text = std::fs::read_to_string(&world.config).unwrap();
    std::fs::write(&world.config, broken(&good_text)).unwrap();
    let renewals_before = world.sim.renewals().len();
    daemon.signal(Signal::HUP);
    let rejected = wait_rejected(&daemon, Duration::from_secs(5));
    assert!(
        rejected.message().contains("no_such_key"),
        "{}",
        rejected.text
    );
    assert_eq!(reloads(&daemon, "failure"), 1.0);
    assert_eq!(reloads(&daemon, "success"), 3.0);
    assert!(daemon.alive());

    // Still renewing beta, on the configuration in force before the bad one.
    let renewed = daemon.wait_for_line(
        "beta renewed after the bad reload",
        Duration::from_secs(25),
        |l| {
            l.cert() == Some("beta")
                && l.message().starts_with("renewed ")
                && l.seen > rejected.seen
        },
    );
    let new_fingerprint = renewed.field("new").as_str().unwrap().to_owned();
    assert_ne!(new_fingerprint, beta);
    assert!(eventually(Duration::from_secs(2), || {
        fingerprint_on_disk(&world.cert_dir("beta")).as_deref() == Some(new_fingerprint.as_str())
            || world.sim.renewals().len() > renewals_before + 1
    }));
    assert!(world.sim.renewals().len() > renewals_before);
    assert_eq!(
        fingerprint_on_disk(&world.cert_dir("alpha")),
        alpha_fingerprint,
        "a removed certificate was renewed"
    );
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}

/// A folder laid out like a kubelet's ConfigMap volume.
struct ConfigMapVolume {
    dir: PathBuf,
    version: u32,
}

impl ConfigMapVolume {
    /// `dir/config.toml -> ..data/config.toml`, `..data -> ..v1`, `..v1/config.toml`.
    fn create(dir: &Path, text: &str) -> ConfigMapVolume {
        std::fs::create_dir_all(dir).unwrap();
        let mut volume = ConfigMapVolume {
            dir: dir.to_owned(),
            version: 0,
        };
        volume.update(text);
        std::os::unix::fs::symlink("..data/config.toml", dir.join("config.toml")).unwrap();
        volume
    }

    fn config(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    /// What the kubelet does: write the new version in a folder of its own, point a
    /// temporary symlink at it, rename that over `..data`, remove the old folder.
    fn update(&mut self, text: &str) {
        let old = format!("..v{}", self.version);
        self.version += 1;
        let new = format!("..v{}", self.version);
        std::fs::create_dir(self.dir.join(&new)).unwrap();
        std::fs::write(self.dir.join(&new).join("config.toml"), text).unwrap();
        std::os::unix::fs::symlink(&new, self.dir.join("..data_tmp")).unwrap();
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).unwrap();
        let _ = std::fs::remove_dir_all(self.dir.join(old));
    }
}

#[test]
fn a_configmap_update_is_applied_without_a_restart_and_only_when_the_file_changed() {
    let mut world = World::new(LONG);
    world.settings.daemon.set("watch_config = true");
    let mut volume = ConfigMapVolume::create(
        &world.path("etc"),
        &world.config_text(&[world.compass("alpha")]),
    );
    world.config = volume.config();
    world.enroll("alpha");
    let mut daemon = world
        .daemon()
        .env("RUST_LOG", "info,kyma_certd::daemon=debug")
        .ready();

    // A new version with a second certificate: applied by itself.
    volume.update(&world.config_text(&[world.compass("alpha"), world.compass("beta")]));
    wait_added(&daemon, "beta", WAIT);
    let line = daemon.wait_for_message("reloading the configuration", WAIT);
    assert!(
        line.message().starts_with("the configuration file changed"),
        "{}",
        line.text
    );
    assert!(
        eventually(WAIT, || daemon.metrics().state("beta").as_deref()
            == Some("missing")),
        "{}",
        daemon.metrics().text
    );
    world.enroll("beta");
    assert!(
        eventually(WAIT, || daemon.metrics().state("beta").as_deref()
            == Some("valid")),
        "{}",
        daemon.metrics().text
    );
    assert_eq!(reloads(&daemon, "success"), 1.0);

    // The folder changes, the file does not: nothing is reloaded.
    std::fs::write(world.path("etc").join("unrelated"), "x").unwrap();
    daemon.wait_for_message(
        "the configuration's directory changed, the file did not",
        WAIT,
    );
    assert_eq!(reloads(&daemon, "success"), 1.0);

    // A version that does not validate: rejected once, the previous one stays in force.
    let good = world.config_text(&[world.compass("beta")]);
    volume.update(&broken(&good));
    wait_rejected(&daemon, WAIT);
    assert_eq!(reloads(&daemon, "failure"), 1.0);
    assert!(daemon.metrics().mentions("alpha"), "alpha is still there");
    assert!(daemon.alive());

    // Fixed: alpha leaves.
    volume.update(&good);
    assert!(
        eventually(WAIT, || !daemon.metrics().mentions("alpha")),
        "{}",
        daemon.metrics().text
    );
    assert_eq!(reloads(&daemon, "success"), 2.0);
    assert_eq!(reloads(&daemon, "failure"), 1.0);
    assert!(daemon.stop().success(), "{}", daemon.log_text());
}
