//! `revoke` after a key leak: every generation still valid (the current one and the
//! previous one kept for rollback) is revoked at the connector, each over mTLS with its
//! own certificate, and removed from disk with its key; one line per generation says so.
//! A generation whose revocation failed stays with its key, and a second `revoke`
//! finishes the job.

#[path = "support/cli.rs"]
mod harness;

use std::path::Path;
use std::time::Duration;

use harness::{Cert, Env, fingerprint};
use kyma_connector_sim::{Fault, FaultScope};

const LONG: Duration = Duration::from_secs(3600);

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
fn two_generations(env: &Env, protocol: &str) -> (String, String) {
    env.enroll("app", protocol).ok();
    let first = fingerprint(&env.files("app")["cert.pem"]);
    env.run(&["renew", "--name", "app", "--force"]).ok();
    let second = fingerprint(&env.files("app")["cert.pem"]);
    assert_ne!(first, second);
    assert!(env.cert_dir("app").join("previous").exists());
    (first, second)
}

async fn every_valid_generation_is_revoked_and_removed(protocol: &'static str) {
    let env = Env::start(LONG).await;
    env.write_config(&[], &[Cert::of(protocol, "app")]);
    let (previous, current) = two_generations(&env, protocol);

    let run = env.run(&["revoke", "--name", "app", "--yes"]).ok();
    let out = run.stdout();
    let revoked = env.sim.revocations();
    // The simulator records the fingerprint of the certificate that authenticated each
    // revocation: each generation was revoked with its own certificate.
    assert!(revoked.contains(&current), "{revoked:?}");
    assert!(revoked.contains(&previous), "{revoked:?}");
    let lines: Vec<&str> = out.lines().collect();
    let current_line = lines
        .iter()
        .find(|l| l.contains(&current))
        .unwrap_or_else(|| panic!("no line for the current generation:\n{out}"));
    assert!(
        current_line.contains("revoked the current generation")
            && current_line.contains("key removed"),
        "{current_line}"
    );
    let previous_line = lines
        .iter()
        .find(|l| l.contains(&previous))
        .unwrap_or_else(|| panic!("no line for the previous generation:\n{out}"));
    assert!(
        previous_line.contains("revoked the previous generation")
            && previous_line.contains("key removed"),
        "{previous_line}"
    );
    assert!(out.contains("no key of it is left on disk"), "{out}");

    let left = files_under(&env.cert_dir("app"));
    assert!(
        left.iter()
            .all(|f| !f.ends_with(".pem") && !f.contains("gen-")),
        "generation files left: {left:?}"
    );
    let status = env.status("app");
    assert_eq!(status["state"], "missing");
    // A new one-time token brings it back.
    env.enroll("app", protocol).ok();
    assert_eq!(env.status("app")["state"], "valid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compass_revoke_revokes_the_current_and_the_previous_generation_and_removes_their_keys() {
    every_valid_generation_is_revoked_and_removed("compass").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kyma_rest_revoke_revokes_the_current_and_the_previous_generation_and_removes_their_keys() {
    every_valid_generation_is_revoked_and_removed("kyma-rest").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_whose_revocation_failed_keeps_its_key_until_revoke_runs_again() {
    let env = Env::start(LONG).await;
    env.write_config(&[], &[Cert::compass("app")]);
    let (previous, current) = two_generations(&env, "compass");

    // The connector fails the first revocation (the current generation's).
    env.sim.set_fault(Fault::InternalError, FaultScope::Next(1));
    let run = env.run(&["revoke", "--name", "app", "--yes"]).fails_with(1);
    let revoked = env.sim.revocations();
    assert!(!revoked.contains(&current), "{revoked:?}");
    assert!(revoked.contains(&previous), "{revoked:?}");
    assert!(
        run.stdout()
            .lines()
            .any(|l| l.contains(&current) && l.contains("stays on disk with its key")),
        "{}",
        run.stdout()
    );
    let files = env.files("app");
    assert_eq!(
        fingerprint(&files["cert.pem"]),
        current,
        "the current generation stays"
    );
    assert!(!files["key.pem"].is_empty(), "with its key");
    assert!(
        !files_under(&env.cert_dir("app"))
            .iter()
            .any(|f| f.contains(&previous[..8])),
        "the revoked previous generation is removed"
    );

    let again = env.run(&["revoke", "--name", "app", "--yes"]).ok();
    assert!(env.sim.revocations().contains(&current));
    assert!(
        again.stdout().contains("revoked the current generation"),
        "{}",
        again.stdout()
    );
    assert!(env.files("app").values().all(Vec::is_empty));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_files_layout_the_one_certificate_is_revoked_and_its_files_removed() {
    let env = Env::start(LONG).await;
    let out = env.dir.path().join("tls");
    let line = |k: &str, f: &str| format!("{k} = {}", harness::quoted(&out.join(f)));
    env.write_config(
        &[],
        &[Cert::rest("app")
            .with("layout = \"files\"")
            .with(&line("cert_file", "client.crt"))
            .with(&line("key_file", "client.key"))
            .with(&line("chain_file", "chain.crt"))
            .with(&line("ca_file", "ca.crt"))],
    );
    env.enroll("app", "kyma-rest").ok();
    let current = fingerprint(&std::fs::read(out.join("client.crt")).unwrap());

    let run = env.run(&["revoke", "--name", "app", "--yes"]).ok();
    assert!(env.sim.revocations().contains(&current));
    assert!(
        run.stdout().contains("revoked the current generation"),
        "{}",
        run.stdout()
    );
    for file in ["client.crt", "client.key", "chain.crt", "ca.crt"] {
        assert!(!out.join(file).exists(), "{file} is left");
    }
    assert_eq!(env.status("app")["state"], "missing");
}
