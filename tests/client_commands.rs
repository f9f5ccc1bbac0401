//! The one-shot commands (`enroll`, `renew`, `revoke`, `status`) of the real binary
//! against the connector simulator over real TLS on 127.0.0.1.
//!
//! `revoke` after a key leak: every generation still valid (the current one and the
//! previous one kept for rollback) is revoked at the connector, each over mTLS with its
//! own certificate, and removed from disk with its key; one line per generation says so.
//! A generation whose revocation failed stays with its key, and a second `revoke`
//! finishes the job.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use kyma_connector_sim::{Fault, FaultScope, SimConfig};
use support::pem::{cert_spki, fingerprint, key_spki};
use support::world::{CertSpec, Settings, World, toml_path};

const LONG: Duration = Duration::from_secs(3600);

/// A world for one-shot commands whose certificates live an hour.
fn world() -> World {
    World::with(Settings::one_shot(), LONG)
}

/// Every file under `dir`, recursively (symlinks not followed).
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path.display().to_string());
        }
    }
    found
}

/// Enrolls, renews once (the enrolled certificate becomes the previous generation) and
/// returns the (previous, current) fingerprints.
fn two_generations(world: &World) -> (String, String) {
    world.enroll("app");
    let first = fingerprint(&world.files("app")["cert.pem"]);
    world
        .command(&["renew", "--name", "app", "--force"])
        .run()
        .ok();
    let second = fingerprint(&world.files("app")["cert.pem"]);
    assert_ne!(first, second);
    assert!(world.cert_dir("app").join("previous").exists());
    (first, second)
}

/// `app` in the files layout, its four files in `out` under names of its own.
fn files_layout(world: &World, out: &Path) -> CertSpec {
    let line = |k: &str, f: &str| format!("{k} = {}", toml_path(&out.join(f)));
    world
        .kyma_rest("app")
        .with("layout = \"files\"")
        .with(line("cert_file", "client.crt"))
        .with(line("key_file", "client.key"))
        .with(line("chain_file", "chain.crt"))
        .with(line("ca_file", "ca.crt"))
}

fn full_cycle(protocol: &'static str) {
    let world = world();
    world.write_config(&[world.cert("app", protocol)]);

    let enrolled = world.try_enroll("app").ok();
    assert!(
        enrolled.stdout().contains("enrolled app"),
        "{}",
        enrolled.stdout()
    );
    let first = world.files("app");
    assert_eq!(
        cert_spki(&first["cert.pem"]),
        key_spki(&first["key.pem"]),
        "key matches cert"
    );
    let first_fp = fingerprint(&first["cert.pem"]);
    assert!(
        world.sim.issued_certificate(&first_fp).is_some(),
        "the simulator issued it"
    );
    let status = world.status("app");
    assert_eq!(status["state"], "valid");
    assert_eq!(status["fingerprint_sha256"], first_fp.as_str());
    assert_eq!(status["protocol"], protocol);
    assert!(status["next_renewal"].is_string());

    // Not due: nothing is sent.
    let before = world.sim.request_counts().total();
    let not_due = world.command(&["renew", "--name", "app"]).run().ok();
    assert!(not_due.stdout().contains("not due"), "{}", not_due.stdout());
    assert_eq!(
        world.sim.request_counts().total(),
        before,
        "no request when not due"
    );

    // Forced renewal rotates the key and keeps the consumer paths.
    world
        .command(&["renew", "--name", "app", "--force"])
        .run()
        .ok();
    let second = world.files("app");
    let second_fp = fingerprint(&second["cert.pem"]);
    assert_ne!(second_fp, first_fp, "a new certificate");
    assert_ne!(second["key.pem"], first["key.pem"], "a new key by default");
    assert_eq!(cert_spki(&second["cert.pem"]), key_spki(&second["key.pem"]));
    let dir = world.cert_dir("app");
    for f in ["cert.pem", "key.pem", "chain.pem", "ca.pem"] {
        let link = std::fs::read_link(dir.join(f)).expect("consumer path is a symlink");
        assert_eq!(
            link,
            std::path::Path::new("current").join(f),
            "stable consumer path {f}"
        );
    }
    let previous = std::fs::read_link(dir.join("previous")).expect("previous generation kept");
    assert_eq!(
        std::fs::read(dir.join(&previous).join("cert.pem")).unwrap(),
        first["cert.pem"]
    );
    let renewal = world
        .sim
        .issued_certificate(&second_fp)
        .expect("issued by the simulator");
    assert!(renewal.renewal, "issued over mTLS as a renewal");

    every_valid_generation_is_revoked_and_removed(&world, &first_fp, &second_fp);
}

/// `revoke` with two valid generations: each is revoked with its own certificate and
/// removed with its key, one line each; then every renewal needs a new enrollment, and a
/// new one-time token brings the certificate back.
fn every_valid_generation_is_revoked_and_removed(world: &World, previous: &str, current: &str) {
    let run = world
        .command(&["revoke", "--name", "app", "--yes"])
        .run()
        .ok();
    let out = run.stdout();
    let revoked = world.sim.revocations();
    // The simulator records the fingerprint of the certificate that authenticated each
    // revocation: each generation was revoked with its own certificate.
    assert!(revoked.iter().any(|r| r == current), "{revoked:?}");
    assert!(revoked.iter().any(|r| r == previous), "{revoked:?}");
    let lines: Vec<&str> = out.lines().collect();
    let current_line = lines
        .iter()
        .find(|l| l.contains(current))
        .unwrap_or_else(|| panic!("no line for the current generation:\n{out}"));
    assert!(
        current_line.contains("revoked the current generation")
            && current_line.contains("key removed"),
        "{current_line}"
    );
    let previous_line = lines
        .iter()
        .find(|l| l.contains(previous))
        .unwrap_or_else(|| panic!("no line for the previous generation:\n{out}"));
    assert!(
        previous_line.contains("revoked the previous generation")
            && previous_line.contains("key removed"),
        "{previous_line}"
    );
    assert!(out.contains("no key of it is left on disk"), "{out}");

    let left = files_under(&world.cert_dir("app"));
    assert!(
        left.iter()
            .all(|f| !f.ends_with(".pem") && !f.contains("gen-")),
        "generation files left: {left:?}"
    );
    assert!(
        world.files("app").values().all(Vec::is_empty),
        "the revoked files are gone"
    );
    let status_run = world
        .command(&["status", "--name", "app", "--json"])
        .run()
        .fails_with(3);
    let status: serde_json::Value = serde_json::from_str(&status_run.stdout()).unwrap();
    assert_eq!(status[0]["state"], "missing");
    assert!(
        status[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("revoked")),
        "{status}"
    );
    let refused = world
        .command(&["renew", "--name", "app", "--force"])
        .run()
        .fails_with(3);
    assert!(refused.stderr().contains("enroll"), "{}", refused.stderr());

    // A new one-time token brings it back.
    world.enroll("app");
    assert_eq!(world.status("app")["state"], "valid");
}

#[test]
fn compass_enroll_renew_revoke_and_status() {
    full_cycle("compass");
}

#[test]
fn kyma_rest_enroll_renew_revoke_and_status() {
    full_cycle("kyma-rest");
}

#[test]
fn rotate_key_false_keeps_the_key() {
    let world = world();
    world.write_config(&[world.compass("app").with("rotate_key = false")]);
    world.enroll("app");
    let first = world.files("app");
    // Same key, same subject, same serial: only notBefore (seconds) tells them apart.
    std::thread::sleep(Duration::from_millis(1100));
    world.command(&["renew", "--force"]).run().ok();
    let second = world.files("app");
    assert_ne!(
        fingerprint(&second["cert.pem"]),
        fingerprint(&first["cert.pem"])
    );
    assert_eq!(second["key.pem"], first["key.pem"]);
}

#[test]
fn files_have_their_modes_and_the_key_matches_after_every_step() {
    let world = world();
    world.write_config(&[world.compass("app").with("key_mode = \"0640\"")]);
    for step in 0..3 {
        if step == 0 {
            world.enroll("app");
        } else {
            world.command(&["renew", "--force"]).run().ok();
        }
        let dir = world.cert_dir("app");
        let mode = |f: &str| std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("key.pem"), 0o640, "key mode after step {step}");
        assert_eq!(mode("cert.pem"), 0o644);
        assert_eq!(mode("chain.pem"), 0o644);
        let files = world.files("app");
        assert_eq!(cert_spki(&files["cert.pem"]), key_spki(&files["key.pem"]));
    }
}

#[test]
fn files_layout_writes_plain_files_at_the_configured_paths() {
    let world = world();
    let out = world.root().join("tls");
    world.write_config(&[files_layout(&world, &out)]);
    world.enroll("app");
    let cert = std::fs::read(out.join("client.crt")).unwrap();
    let key = std::fs::read(out.join("client.key")).unwrap();
    assert!(
        !std::fs::symlink_metadata(out.join("client.crt"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(cert_spki(&cert), key_spki(&key));
    world.command(&["renew", "--force"]).run().ok();
    let renewed = std::fs::read(out.join("client.crt")).unwrap();
    assert_ne!(renewed, cert);
    assert_eq!(
        cert_spki(&renewed),
        key_spki(&std::fs::read(out.join("client.key")).unwrap())
    );
    assert_eq!(
        std::fs::metadata(out.join("client.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

#[test]
fn renewing_without_a_certificate_needs_reenrollment() {
    let world = world();
    world.write_config(&[world.compass("app")]);
    let run = world.command(&["renew", "--force"]).run().fails_with(3);
    assert!(run.stderr().contains("enroll"), "{}", run.stderr());
    assert_eq!(world.status("app")["state"], "missing");
}

#[test]
fn enroll_if_needed_keeps_a_valid_certificate_and_the_token() {
    let world = world();
    world.write_config(&[world.compass("app")]);
    world.enroll("app");
    let before = world.files("app");
    let token = world.sim.mint_compass_token();
    world
        .command(&["enroll", "--name", "app", "--token", &token, "--if-needed"])
        .run()
        .ok();
    assert_eq!(world.files("app"), before);
    // The token was not used, so it still works.
    world
        .command(&["enroll", "--name", "app", "--token", &token])
        .run()
        .ok();
    assert_ne!(world.files("app"), before);
}

#[test]
fn revoke_without_yes_and_without_a_terminal_refuses() {
    let world = world();
    world.write_config(&[world.compass("app")]);
    world.enroll("app");
    let run = world
        .command(&["revoke", "--name", "app"])
        .run()
        .fails_with(2);
    assert!(run.stderr().contains("--yes"), "{}", run.stderr());
    assert!(world.sim.revocations().is_empty());
}

#[test]
fn ecdsa_keys_work_where_the_connector_accepts_them_and_fail_clearly_elsewhere() {
    let mut accepting = world();
    accepting
        .settings
        .defaults
        .set("key_algorithm = \"ecdsa-p256\"");
    accepting.write_config(&[accepting.kyma_rest("app")]);
    accepting.enroll("app");
    let key = String::from_utf8(accepting.files("app")["key.pem"].clone()).unwrap();
    assert_eq!(
        kyma_certd::pki::keys::PrivateKey::from_pem(&key)
            .unwrap()
            .algorithm()
            .as_str(),
        "ecdsa-p256"
    );

    // Upstream's connectors sign RSA requests only.
    let mut strict = World::with_sim(
        Settings::one_shot(),
        SimConfig {
            validity: LONG,
            ..SimConfig::default()
        },
    );
    strict
        .settings
        .defaults
        .set("key_algorithm = \"ecdsa-p256\"");
    strict.write_config(&[strict.kyma_rest("app")]);
    let run = strict.try_enroll("app").fails_with(1);
    assert!(
        run.stderr().contains("400") || run.stderr().to_lowercase().contains("rsa"),
        "{}",
        run.stderr()
    );
}

#[test]
fn owner_and_group_are_applied_when_running_as_root() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: ownership cannot be changed here");
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let world = world();
    world.write_config(&[world
        .compass("app")
        .with("owner = \"65534\"")
        .with("group = \"65534\"")]);
    world.enroll("app");
    for f in ["cert.pem", "key.pem", "chain.pem", "ca.pem"] {
        let meta = std::fs::metadata(world.cert_dir("app").join(f)).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (65534, 65534),
            "{f} owned as configured"
        );
    }
}

#[test]
fn concurrent_renewals_in_one_directory_never_leave_a_mismatch() {
    let world = world();
    world.write_config(&[world.compass("app")]);
    world.enroll("app");
    let children: Vec<_> = (0..4)
        .map(|_| {
            world
                .command(&["renew", "--force"])
                .command()
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "every renewal succeeds");
    }
    let files = world.files("app");
    assert_eq!(cert_spki(&files["cert.pem"]), key_spki(&files["key.pem"]));
    assert!(
        world
            .sim
            .issued_certificate(&fingerprint(&files["cert.pem"]))
            .is_some()
    );
    let generations = std::fs::read_dir(world.cert_dir("app"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("gen-")
        })
        .count();
    assert_eq!(generations, 2, "current and previous only");
}

#[test]
fn a_generation_whose_revocation_failed_keeps_its_key_until_revoke_runs_again() {
    let world = world();
    world.write_config(&[world.compass("app")]);
    let (previous, current) = two_generations(&world);

    // The connector fails the first revocation (the current generation's).
    world
        .sim
        .set_fault(Fault::InternalError, FaultScope::Next(1));
    let run = world
        .command(&["revoke", "--name", "app", "--yes"])
        .run()
        .fails_with(1);
    let revoked = world.sim.revocations();
    assert!(!revoked.contains(&current), "{revoked:?}");
    assert!(revoked.contains(&previous), "{revoked:?}");
    assert!(
        run.stdout()
            .lines()
            .any(|l| l.contains(&current) && l.contains("stays on disk with its key")),
        "{}",
        run.stdout()
    );
    let files = world.files("app");
    assert_eq!(
        fingerprint(&files["cert.pem"]),
        current,
        "the current generation stays"
    );
    assert!(!files["key.pem"].is_empty(), "with its key");
    assert!(
        !files_under(&world.cert_dir("app"))
            .iter()
            .any(|f| f.contains(&previous[..8])),
        "the revoked previous generation is removed"
    );

    let again = world
        .command(&["revoke", "--name", "app", "--yes"])
        .run()
        .ok();
    assert!(world.sim.revocations().contains(&current));
    assert!(
        again.stdout().contains("revoked the current generation"),
        "{}",
        again.stdout()
    );
    assert!(world.files("app").values().all(Vec::is_empty));
}

#[test]
fn with_the_files_layout_the_one_certificate_is_revoked_and_its_files_removed() {
    let world = world();
    let out = world.root().join("tls");
    world.write_config(&[files_layout(&world, &out)]);
    world.enroll("app");
    let current = fingerprint(&std::fs::read(out.join("client.crt")).unwrap());

    let run = world
        .command(&["revoke", "--name", "app", "--yes"])
        .run()
        .ok();
    assert!(world.sim.revocations().contains(&current));
    assert!(
        run.stdout().contains("revoked the current generation"),
        "{}",
        run.stdout()
    );
    for file in ["client.crt", "client.key", "chain.crt", "ca.crt"] {
        assert!(!out.join(file).exists(), "{file} is left");
    }
    assert_eq!(world.status("app")["state"], "missing");
}
