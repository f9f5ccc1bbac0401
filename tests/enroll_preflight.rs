//! A one-time token is never spent in vain: before it is sent, `enroll` checks that the
//! certificate it buys can be stored (the folder can be made and written, the paths the
//! consumers read have the right type); after the certificate arrives, a renewal window
//! too long for its lifetime is clamped with a warning, never a reason to throw it away.
//! The real binary against the simulator over real TLS.

mod support;

use std::time::{Duration, SystemTime};

use kyma_connector_sim::Endpoint;
use support::world::{CertSpec, World, toml_path};

const HOUR: Duration = Duration::from_secs(3600);

/// A guide for 92-day certificates applied to 1-hour ones.
fn guide_window(spec: CertSpec) -> CertSpec {
    spec.with("renew_before = \"2h\"").with("jitter = \"10%\"")
}

fn parse_time(text: &serde_json::Value) -> SystemTime {
    humantime::parse_rfc3339(text.as_str().expect("a timestamp")).expect("rfc 3339")
}

#[test]
fn a_one_hour_certificate_with_a_two_hour_window_enrolls_and_renews() {
    for protocol in ["compass", "kyma-rest"] {
        let world = World::new(HOUR);
        let spec = match protocol {
            "compass" => world.compass("orders"),
            _ => world.kyma_rest("orders"),
        };
        world.write_config(&[guide_window(spec)]);
        let first = world.enroll("orders");
        let status = &world.status("orders");
        assert_eq!(status["state"], "valid", "{status}");
        assert_eq!(status["fingerprint_sha256"], first.as_str());
        // Clamped to 70% of the lifetime, less at most 10% of it: 36 to 42 minutes in.
        let (not_before, next) = (
            parse_time(&status["not_before"]),
            parse_time(&status["next_renewal"]),
        );
        let offset = next.duration_since(not_before).unwrap();
        assert!(
            offset >= HOUR.mul_f64(0.6) - Duration::from_secs(1) && offset <= HOUR.mul_f64(0.7),
            "renews {offset:?} after notBefore"
        );
        // Not due now: a plain renew leaves it; a forced one renews it, and keeps it too.
        let renew = world.command(&["renew", "--name", "orders"]).run();
        assert!(
            renew.status.success(),
            "{}",
            String::from_utf8_lossy(&renew.stderr)
        );
        assert_eq!(world.status("orders")["fingerprint_sha256"], first.as_str());
        let forced = world
            .command(&["renew", "--name", "orders", "--force"])
            .run();
        let stderr = String::from_utf8_lossy(&forced.stderr);
        assert!(forced.status.success(), "{stderr}");
        assert!(
            stderr.contains("renew_before"),
            "the warning names the setting: {stderr}"
        );
        let renewed = &world.status("orders");
        assert_eq!(renewed["state"], "valid", "{renewed}");
        assert_ne!(renewed["fingerprint_sha256"], first.as_str());
    }
}

/// What the simulator counted of the token-secured first step, both protocols.
fn token_calls(world: &World) -> u64 {
    let counts = world.sim.request_counts();
    counts.get(Endpoint::CompassConfiguration) + counts.get(Endpoint::RestInfo)
}

/// Runs `enroll` with `token_file`; returns its exit code and standard error.
fn enroll_with(world: &World, token_file: &std::path::Path) -> (i32, String) {
    let output = world
        .command(&["enroll", "--name", "orders", "--token-file"])
        .arg(token_file)
        .run();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn an_unusable_store_is_refused_before_the_token_is_sent_and_the_token_still_works() {
    let world = World::new(HOUR);
    let token_file = world.path("token");
    std::fs::write(&token_file, world.sim.mint_compass_token()).unwrap();

    // `dir` cannot be made: a file stands where its parent folder belongs.
    let certs = world.cert_dir("orders").parent().unwrap().to_owned();
    std::fs::write(&certs, "not a folder").unwrap();
    world.write_config(&[world.compass("orders")]);
    let (code, stderr) = enroll_with(&world, &token_file);
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&certs.display().to_string()),
        "the error names the path: {stderr}"
    );
    std::fs::remove_file(&certs).unwrap();

    // `dir` exists but takes no new file: immutable, like a read-only remount (root).
    if rustix::process::geteuid().is_root() {
        let dir = world.cert_dir("orders");
        std::fs::create_dir_all(&dir).unwrap();
        world.write_config(&[world.compass("orders")]);
        let chattr = |flag: &str| {
            let status = std::process::Command::new("chattr")
                .arg(flag)
                .arg(&dir)
                .status();
            assert!(status.unwrap().success(), "chattr {flag}");
        };
        chattr("+i");
        let (code, stderr) = enroll_with(&world, &token_file);
        chattr("-i");
        assert_ne!(code, 0, "{stderr}");
        assert!(stderr.contains(&dir.display().to_string()), "{stderr}");
    }

    // A consumer path of the wrong type: a folder where the store links cert.pem.
    world.write_config(&[world.compass("orders")]);
    std::fs::create_dir_all(world.cert_dir("orders").join("cert.pem")).unwrap();
    let (code, stderr) = enroll_with(&world, &token_file);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("cert.pem"), "{stderr}");
    std::fs::remove_dir(world.cert_dir("orders").join("cert.pem")).unwrap();

    // The files layout: a folder where the key file belongs.
    let tls = world.path("tls");
    std::fs::create_dir_all(tls.join("client.key")).unwrap();
    let files = world
        .compass("orders")
        .with("layout = \"files\"")
        .with(format!(
            "cert_file = {}",
            toml_path(&tls.join("client.crt"))
        ))
        .with(format!("key_file = {}", toml_path(&tls.join("client.key"))))
        .with(format!(
            "chain_file = {}",
            toml_path(&tls.join("chain.pem"))
        ))
        .with(format!("ca_file = {}", toml_path(&tls.join("ca.pem"))));
    world.write_config(&[files]);
    let (code, stderr) = enroll_with(&world, &token_file);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("client.key"), "{stderr}");
    assert!(stderr.contains("a directory"), "{stderr}");

    // Nothing reached the connector, so the same token enrolls once the host is fixed.
    assert_eq!(token_calls(&world), 0, "the token was sent");
    std::fs::remove_dir(tls.join("client.key")).unwrap();
    let (code, stderr) = enroll_with(&world, &token_file);
    assert_eq!(code, 0, "{stderr}");
    assert!(tls.join("client.key").is_file());
    assert_eq!(world.status("orders")["state"], "valid");
}
