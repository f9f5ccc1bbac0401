//! The one-shot commands (`enroll`, `renew`, `revoke`, `status`) of the real binary
//! against the connector simulator over real TLS on 127.0.0.1.

#[path = "support/cli.rs"]
mod harness;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use harness::{Cert, Env, cert_spki, fingerprint, key_spki};

const LONG: Duration = Duration::from_secs(3600);

async fn full_cycle(protocol: &'static str) {
    let env = Env::start(LONG).await;
    env.write_config(&[], &[Cert::of(protocol, "app")]);

    let enrolled = env.enroll("app", protocol).ok();
    assert!(
        enrolled.stdout().contains("enrolled app"),
        "{}",
        enrolled.stdout()
    );
    let first = env.files("app");
    assert_eq!(
        cert_spki(&first["cert.pem"]),
        key_spki(&first["key.pem"]),
        "key matches cert"
    );
    let first_fp = fingerprint(&first["cert.pem"]);
    assert!(
        env.sim.issued_certificate(&first_fp).is_some(),
        "the simulator issued it"
    );
    let status = env.status("app");
    assert_eq!(status["state"], "valid");
    assert_eq!(status["fingerprint_sha256"], first_fp.as_str());
    assert_eq!(status["protocol"], protocol);
    assert!(status["next_renewal"].is_string());

    // Not due: nothing is sent.
    let before = env.sim.request_counts().total();
    let not_due = env.run(&["renew", "--name", "app"]).ok();
    assert!(not_due.stdout().contains("not due"), "{}", not_due.stdout());
    assert_eq!(
        env.sim.request_counts().total(),
        before,
        "no request when not due"
    );

    // Forced renewal rotates the key and keeps the consumer paths.
    env.run(&["renew", "--name", "app", "--force"]).ok();
    let second = env.files("app");
    let second_fp = fingerprint(&second["cert.pem"]);
    assert_ne!(second_fp, first_fp, "a new certificate");
    assert_ne!(second["key.pem"], first["key.pem"], "a new key by default");
    assert_eq!(cert_spki(&second["cert.pem"]), key_spki(&second["key.pem"]));
    let dir = env.cert_dir("app");
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
    let renewal = env
        .sim
        .issued_certificate(&second_fp)
        .expect("issued by the simulator");
    assert!(renewal.renewal, "issued over mTLS as a renewal");

    // Revocation of every valid generation (the renewed one and the enrolled one kept
    // for rollback), then every renewal needs a new enrollment.
    env.run(&["revoke", "--name", "app", "--yes"]).ok();
    let revoked = env.sim.revocations();
    assert!(revoked.contains(&second_fp), "{revoked:?}");
    assert!(revoked.contains(&first_fp), "{revoked:?}");
    let status_run = env
        .run(&["status", "--name", "app", "--json"])
        .fails_with(3);
    let status: serde_json::Value = serde_json::from_str(&status_run.stdout()).unwrap();
    assert_eq!(status[0]["state"], "missing");
    assert!(
        status[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("revoked")),
        "{status}"
    );
    let refused = env
        .run(&["renew", "--name", "app", "--force"])
        .fails_with(3);
    assert!(refused.stderr().contains("enroll"), "{}", refused.stderr());
    assert!(
        env.files("app").values().all(Vec::is_empty),
        "the revoked files are gone"
    );

    // A new one-time token brings it back.
    env.enroll("app", protocol).ok();
    assert_eq!(env.status("app")["state"], "valid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compass_enroll_renew_revoke_and_status() {
    full_cycle("compass").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kyma_rest_enroll_renew_revoke_and_status() {
    full_cycle("kyma-rest").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_key_false_keeps_the_key() {
    let env = Env::start(LONG).await;
    env.write_config(&[], &[Cert::compass("app").with("rotate_key = false")]);
    env.enroll("app", "compass").ok();
    let first = env.files("app");
    // Same key, same subject, same serial: only notBefore (seconds) tells them apart.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    env.run(&["renew", "--force"]).ok();
    let second = env.files("app");
    assert_ne!(
        fingerprint(&second["cert.pem"]),
        fingerprint(&first["cert.pem"])
    );
    assert_eq!(second["key.pem"], first["key.pem"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_have_their_modes_and_the_key_matches_after_every_step() {
    let env = Env::start(LONG).await;
    env.write_config(&[], &[Cert::compass("app").with("key_mode = \"0640\"")]);
    for step in 0..3 {
        if step == 0 {
            env.enroll("app", "compass").ok();
        } else {
            env.run(&["renew", "--force"]).ok();
        }
        let dir = env.cert_dir("app");
        let mode = |f: &str| std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("key.pem"), 0o640, "key mode after step {step}");
        assert_eq!(mode("cert.pem"), 0o644);
        assert_eq!(mode("chain.pem"), 0o644);
        let files = env.files("app");
        assert_eq!(cert_spki(&files["cert.pem"]), key_spki(&files["key.pem"]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_layout_writes_plain_files_at_the_configured_paths() {
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
    let cert = std::fs::read(out.join("client.crt")).unwrap();
    let key = std::fs::read(out.join("client.key")).unwrap();
    assert!(
        !std::fs::symlink_metadata(out.join("client.crt"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(cert_spki(&cert), key_spki(&key));
    env.run(&["renew", "--force"]).ok();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_token_is_refused_with_a_clear_error() {
    let env = Env::start(LONG).await;
    env.write_config(&[], &[Cert::compass("app")]);
    let token = env.sim.mint_compass_token();
    env.run(&["enroll", "--name", "app", "--token", &token])
        .ok();
    let before = env.files("app");
    let again = env
        .run(&["enroll", "--name", "app", "--token", &token])
        .fails_with(1);
    assert!(
        again.stderr().contains("token"),
        "names the token problem: {}",
        again.stderr()
    );
    assert!(!again.stderr().contains(&token), "never prints the token");
    assert_eq!(env.files("app"), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refused_for_both_protocols() {
    let env = Env::start_with(kyma_connector_sim::SimConfig {
        validity: LONG,
        token_ttl: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    env.write_config(&[], &[Cert::compass("a"), Cert::rest("b")]);
    let token = env.sim.mint_compass_token();
    let (_, url) = env.sim.mint_rest_token();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let compass = env
        .run(&["enroll", "--name", "a", "--token", &token])
        .fails_with(1);
    assert!(compass.stderr().contains("token"), "{}", compass.stderr());
    let rest = env
        .run(&["enroll", "--name", "b", "--url", url.as_str()])
        .fails_with(1);
    assert!(
        rest.stderr().contains("403") || rest.stderr().contains("token"),
        "{}",
        rest.stderr()
    );
    assert!(
        !rest.stderr().contains(url.query().unwrap()),
        "never prints the token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewing_without_a_certificate_needs_reenrollment() {
    let env = Env::start(LONG).await;
    env.write_config(&[], &[Cert::compass("app")]);
    let run = env.run(&["renew", "--force"]).fails_with(3);
    assert!(run.stderr().contains("enroll"), "{}", run.stderr());
    assert_eq!(env.status("app")["state"], "missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_if_needed_keeps_a_valid_certificate_and_the_token() {
    let env = Env::start(LONG).await;
    env.write_config(&[], &[Cert::compass("app")]);
    env.enroll("app", "compass").ok();
    let before = env.files("app");
    let token = env.sim.mint_compass_token();
    env.run(&["enroll", "--name", "app", "--token", &token, "--if-needed"])
        .ok();
    assert_eq!(env.files("app"), before);
    // The token was not used, so it still works.
    env.run(&["enroll", "--name", "app", "--token", &token])
        .ok();
    assert_ne!(env.files("app"), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_without_yes_and_without_a_terminal_refuses() {
    let env = Env::start(LONG).await;
    env.write_config(&[], &[Cert::compass("app")]);
    env.enroll("app", "compass").ok();
    let run = env.run(&["revoke", "--name", "app"]).fails_with(2);
    assert!(run.stderr().contains("--yes"), "{}", run.stderr());
    assert!(env.sim.revocations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_file_keeps_the_token_off_the_command_line() {
    let env = Env::start(LONG).await;
    env.write_config(&[], &[Cert::compass("app")]);
    let file = env.dir.path().join("token");
    std::fs::write(&file, format!("{}\n", env.sim.mint_compass_token())).unwrap();
    env.run(&[
        "enroll",
        "--name",
        "app",
        "--token-file",
        file.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(env.status("app")["state"], "valid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecdsa_keys_work_where_the_connector_accepts_them_and_fail_clearly_elsewhere() {
    let accepting = Env::start_with(kyma_connector_sim::SimConfig {
        validity: LONG,
        accept_ecdsa: true,
        ..Default::default()
    })
    .await;
    accepting.write_config(&["key_algorithm = \"ecdsa-p256\""], &[Cert::rest("app")]);
    accepting.enroll("app", "kyma-rest").ok();
    let key = String::from_utf8(accepting.files("app")["key.pem"].clone()).unwrap();
    assert_eq!(
        kyma_certd::pki::keys::PrivateKey::from_pem(&key)
            .unwrap()
            .algorithm()
            .as_str(),
        "ecdsa-p256"
    );

    let strict = Env::start(LONG).await;
    strict.write_config(&["key_algorithm = \"ecdsa-p256\""], &[Cert::rest("app")]);
    let run = strict.enroll("app", "kyma-rest").fails_with(1);
    assert!(
        run.stderr().contains("400") || run.stderr().to_lowercase().contains("rsa"),
        "{}",
        run.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_and_group_are_applied_when_running_as_root() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: ownership cannot be changed here");
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let env = Env::start(LONG).await;
    env.write_config(
        &[],
        &[Cert::compass("app")
            .with("owner = \"65534\"")
            .with("group = \"65534\"")],
    );
    env.enroll("app", "compass").ok();
    for f in ["cert.pem", "key.pem", "chain.pem", "ca.pem"] {
        let meta = std::fs::metadata(env.cert_dir("app").join(f)).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (65534, 65534),
            "{f} owned as configured"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_renewals_in_one_directory_never_leave_a_mismatch() {
    let env = Env::start(LONG).await;
    env.write_config(&[], &[Cert::compass("app")]);
    env.enroll("app", "compass").ok();
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_kyma-certd"))
                .arg("--config")
                .arg(&env.config)
                .args(["renew", "--force"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "every renewal succeeds");
    }
    let files = env.files("app");
    assert_eq!(cert_spki(&files["cert.pem"]), key_spki(&files["key.pem"]));
    assert!(
        env.sim
            .issued_certificate(&fingerprint(&files["cert.pem"]))
            .is_some()
    );
    let generations = std::fs::read_dir(env.cert_dir("app"))
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
