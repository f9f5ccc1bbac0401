//! What a new operator meets in the first hour: the packaged configuration (no active
//! certificate, a template that is valid once uncommented), the README's minimal example,
//! and `status` run by a member of the daemon's group (who may read the configuration
//! and the certificate, not the key) or by someone who is not (told which permission is
//! missing).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::disk::chmod;
use support::invoke::{BIN, Run, kyma_certd};
use support::pem::fingerprint;
use support::world::{Settings, World};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn packaged_config() -> PathBuf {
    repo().join("packaging/deb/config.toml")
}

/// The README's minimal configuration: the first `toml` block after "A minimal
/// configuration" (tests/host/systemd.sh extracts the same block).
fn readme_minimal_example() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let after = readme
        .split_once("A minimal configuration")
        .expect("the README has a minimal configuration")
        .1;
    let block = after.split_once("```toml\n").expect("a toml block").1;
    block
        .split_once("```")
        .expect("a closed block")
        .0
        .to_owned()
}

fn check_config(dir: &Path, text: &str) -> Run {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    kyma_certd(&path, &["check-config"]).run()
}

#[test]
fn the_packaged_configuration_has_no_certificate_and_check_config_says_so() {
    let run = kyma_certd(&packaged_config(), &["check-config"]).run().ok();
    assert!(
        run.stdout().contains("no certificates configured"),
        "{}",
        run.stdout()
    );
    assert!(
        !run.stdout().lines().any(|line| line == "[[certificate]]"),
        "{}",
        run.stdout()
    );

    let status = kyma_certd(&packaged_config(), &["status"]).run().ok();
    assert!(
        status.stdout().contains("no certificates configured"),
        "{}",
        status.stdout()
    );
}

#[test]
fn the_packaged_template_is_one_valid_certificate_once_uncommented() {
    let text = std::fs::read_to_string(packaged_config()).unwrap();
    // Uncomment the template: from its `# [[certificate]]` line on, one `# ` less.
    let start = text
        .find("# [[certificate]]")
        .expect("a certificate template");
    let mut uncommented = text[..start].to_owned();
    for line in text[start..].lines() {
        uncommented.push_str(line.strip_prefix("# ").unwrap_or(line));
        uncommented.push('\n');
    }
    let dir = tempfile::tempdir().unwrap();
    let run = check_config(dir.path(), &uncommented).ok();
    let out = run.stdout();
    assert_eq!(out.matches("[[certificate]]").count(), 1, "{out}");
    assert!(out.contains("name = \"orders\""), "{out}");
    assert!(out.contains("systemd_unit = \"nginx.service\""), "{out}");
    // A placeholder URL would win over the URL of a pasted rawEncoded token.
    assert!(!uncommented.contains("\nconnector_url"), "{uncommented}");
}

#[test]
fn the_readme_minimal_example_is_valid_and_needs_no_capability() {
    let example = readme_minimal_example();
    let dir = tempfile::tempdir().unwrap();
    let run = check_config(dir.path(), &example).ok();
    assert!(
        run.stdout().contains("name = \"orders\""),
        "{}",
        run.stdout()
    );
    // Signals to root's nginx need CAP_KILL, which the packaged unit does not grant.
    assert!(!example.contains("signal"), "{example}");
    assert!(
        example.contains("systemd_unit = \"nginx.service\""),
        "{example}"
    );
}

/// The user and group ids the permission test runs with: none of them exist here.
const DAEMON_ID: u32 = 65_531;
const OTHER_USER: u32 = 65_530;

/// `kyma-certd --config CONFIG status --json` as `OTHER_USER`, with `groups`
/// supplementary groups (none: `--clear-groups`).
fn status_as(binary: &Path, config: &Path, groups: Option<u32>) -> Run {
    let mut command = Command::new("setpriv");
    command.args([
        &format!("--reuid={OTHER_USER}"),
        &format!("--regid={OTHER_USER}"),
    ]);
    match groups {
        Some(gid) => command.arg(format!("--groups={gid}")),
        None => command.arg("--clear-groups"),
    };
    command
        .arg(binary)
        .arg("--config")
        .arg(config)
        .args(["status", "--json"])
        .env_remove("KYMA_CERTD_CONFIG")
        .env_remove("RUST_LOG");
    Run(command.output().expect("setpriv runs"))
}

#[test]
fn status_works_for_the_daemons_group_and_names_the_missing_permission_for_others() {
    if !rustix::process::geteuid().is_root()
        || Command::new("setpriv").arg("--version").output().is_err()
    {
        eprintln!("needs root and setpriv to run as another user");
        return;
    }
    let world = World::with(Settings::one_shot(), Duration::from_secs(3600));
    // The files belong to the daemon's user, as under the packaged unit: the key 0600,
    // the directories 0750 with the daemon's group.
    world.write_config(&[world
        .compass("app")
        .with(format!("owner = \"{DAEMON_ID}\""))
        .with(format!("group = \"{DAEMON_ID}\""))]);
    world.enroll("app");
    let fingerprint = fingerprint(&world.files("app")["cert.pem"]);
    for dir in [world.root(), &world.path("server-ca"), &world.path("certs")] {
        chmod(dir, 0o755);
    }
    // The configuration as the package installs it: 0640 root:<daemon group>.
    std::os::unix::fs::chown(&world.config, Some(0), Some(DAEMON_ID)).unwrap();
    chmod(&world.config, 0o640);
    let binary = world.root().join("kyma-certd");
    std::fs::copy(BIN, &binary).unwrap();
    chmod(&binary, 0o755);

    let member = status_as(&binary, &world.config, Some(DAEMON_ID)).ok();
    let all: serde_json::Value = serde_json::from_str(&member.stdout()).unwrap();
    assert_eq!(all[0]["state"], "valid", "{}", member.stdout());
    assert_eq!(all[0]["fingerprint_sha256"], fingerprint.as_str());

    // Not a member: the configuration is refused, and the message says why.
    let outsider = status_as(&binary, &world.config, None).fails_with(2);
    let said = outsider.stderr();
    let config = world.config.display().to_string();
    assert!(said.contains(&format!("{config} is mode 0640")), "{said}");
    assert!(
        said.contains(&format!("is not in group gid {DAEMON_ID}")),
        "{said}"
    );

    // A configuration anyone may read, but the certificate directory is the group's.
    chmod(&world.config, 0o644);
    let outsider = status_as(&binary, &world.config, None).fails_with(1);
    let said = outsider.stderr();
    let dir = world.cert_dir("app").display().to_string();
    assert!(said.contains(&format!("{dir} is mode 0750")), "{said}");
}
