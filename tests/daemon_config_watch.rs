//! `watch_config = true`: the running daemon applies a new configuration file by itself,
//! the way Kubernetes updates a ConfigMap volume (a new timestamped folder, then an atomic
//! rename of the `..data` symlink that `config.toml` points through), without SIGHUP or a
//! restart. A change in the folder that leaves the file as it was reloads nothing; a new
//! file that does not validate is rejected once and the daemon keeps the previous one.

#[path = "support/daemon.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::{CertSpec, World, eventually};

const LONG: Duration = Duration::from_secs(3600);
const WAIT: Duration = Duration::from_secs(10);

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

fn spec(name: &str) -> CertSpec {
    CertSpec::compass(name)
}

#[test]
fn a_configmap_update_is_applied_without_a_restart_and_only_when_the_file_changed() {
    let mut world = World::new(LONG);
    world.daemon_extra.push("watch_config = true".to_owned());
    let mut volume =
        ConfigMapVolume::create(&world.path("etc"), &world.config_text(&[spec("alpha")]));
    world.config = volume.config();
    world.enroll("alpha", "compass");
    let mut daemon = world.run_with(|command| {
        command.env("RUST_LOG", "info,kyma_certd::daemon=debug");
    });
    daemon.wait_ready();
    let reloads = |daemon: &mut harness::Daemon, result: &str| {
        daemon
            .metrics()
            .get("kyma_certd_config_reloads_total", &[("result", result)])
            .unwrap()
    };

    // A new version with a second certificate: applied by itself.
    volume.update(&world.config_text(&[spec("alpha"), spec("beta")]));
    daemon.wait_for_line("beta added", WAIT, |l| {
        l.message() == "certificate added to the configuration" && l.field("name") == "beta"
    });
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
    world.enroll("beta", "compass");
    assert!(
        eventually(WAIT, || daemon.metrics().state("beta").as_deref()
            == Some("valid")),
        "{}",
        daemon.metrics().text
    );
    assert_eq!(reloads(&mut daemon, "success"), 1.0);

    // The folder changes, the file does not: nothing is reloaded.
    std::fs::write(world.path("etc").join("unrelated"), "x").unwrap();
    daemon.wait_for_message(
        "the configuration's directory changed, the file did not",
        WAIT,
    );
    assert_eq!(reloads(&mut daemon, "success"), 1.0);

    // A version that does not validate: rejected once, the previous one stays in force.
    let good = world.config_text(&[spec("beta")]);
    volume.update(&good.replace("[metrics]", "[metrics]\nno_such_key = 1"));
    let rejected =
        daemon.wait_for_message("the new configuration is invalid and was not applied", WAIT);
    assert_eq!(rejected.level(), "ERROR");
    assert_eq!(reloads(&mut daemon, "failure"), 1.0);
    assert!(daemon.metrics().mentions("alpha"), "alpha is still there");
    assert!(daemon.alive());

    // Fixed: alpha leaves.
    volume.update(&good);
    assert!(
        eventually(WAIT, || !daemon.metrics().mentions("alpha")),
        "{}",
        daemon.metrics().text
    );
    assert_eq!(reloads(&mut daemon, "success"), 2.0);
    assert_eq!(reloads(&mut daemon, "failure"), 1.0);
    assert!(daemon.stop().success(), "{}", daemon.log_text());
}
