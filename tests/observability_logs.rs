//! Logs: JSON logs are one object per line with the certificate's name and protocol on
//! every line about it, durations and fingerprints as fields; and at `RUST_LOG=trace`, a
//! whole life (enroll, a renewal by the daemon, a one-shot renewal, a revocation) leaves no
//! secret in stdout, stderr, `state.json` or `/metrics`: not the one-time token, no token
//! the connector hands out, no private key, no CSR, no certificate body.

mod support;

use std::time::Duration;

use base64::Engine as _;
use kyma_certd::pki::keys::{PrivateKey, build_csr, csr_base64};
use kyma_certd::pki::subject::Subject;
use kyma_connector_sim::ExpectedSubject;
use support::http::http_get;
use support::invoke::Run;
use support::pem::{pem_bodies, slices};
use support::world::{Settings, World};

const SHORT: Duration = Duration::from_secs(30);
const TRACE: [(&str, &str); 1] = [("RUST_LOG", "trace")];

/// Named needles that must not appear in any output.
#[derive(Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, what: impl Into<String>, needle: impl Into<String>) {
        self.0.push((what.into(), needle.into()));
    }

    /// Slices of the key, the CSR it was sent with, and the certificate files now on disk.
    fn add_material(&mut self, world: &World, protocol: &str, when: &str) {
        let dir = world.cert_dir("orders");
        let read = |file: &str| std::fs::read_to_string(dir.join(file)).expect(file);
        let key_pem = read("key.pem");
        let key_body = &pem_bodies(&key_pem)[0];
        for slice in slices(key_body) {
            self.add(format!("private key body ({when})"), slice);
        }

        // The CSR the daemon sent for this key: RSA PKCS#1 v1.5 signatures and rcgen's
        // encoding are deterministic, so the same key and subject give the same bytes.
        let announced = if protocol == "compass" {
            ExpectedSubject::new(world.sim.app()).announced()
        } else {
            ExpectedSubject::new(world.sim.app()).announced_rest()
        };
        let key = PrivateKey::from_pem(&key_pem).expect("key.pem parses");
        let subject = Subject::parse(&announced).expect("the simulator's subject parses");
        let csr = build_csr(&key, &subject).expect("a CSR");
        assert_eq!(
            build_csr(&key, &subject).expect("a CSR").as_str(),
            csr.as_str(),
            "CSRs are deterministic, so this is the CSR that was sent"
        );
        for slice in slices(&pem_bodies(csr.as_str())[0]) {
            self.add(format!("CSR PEM body ({when})"), slice);
        }
        for slice in slices(&csr_base64(&csr)[60..]) {
            self.add(format!("CSR as sent, base64 of the PEM ({when})"), slice);
        }

        for file in ["cert.pem", "ca.pem", "chain.pem"] {
            for body in pem_bodies(&read(file)) {
                for slice in slices(&body) {
                    self.add(format!("{file} body ({when})"), slice);
                }
            }
        }
    }
}

/// Everything the programs printed or wrote where people and scrapers look.
#[derive(Default)]
struct Outputs(Vec<(String, String)>);

impl Outputs {
    fn add(&mut self, what: impl Into<String>, text: impl Into<String>) {
        self.0.push((what.into(), text.into()));
    }

    fn add_run(&mut self, what: &str, out: &Run) {
        assert!(out.status.success(), "{what}: {}", out.describe());
        self.add(format!("{what} stdout"), out.stdout());
        self.add(format!("{what} stderr"), out.stderr());
    }

    fn add_state(&mut self, world: &World, when: &str) {
        let state = std::fs::read_to_string(world.cert_dir("orders").join("state.json"))
            .expect("state.json");
        self.add(format!("state.json {when}"), state);
    }
}

/// Runs of URL-safe base64 characters exactly as long as a simulator token (32 random
/// bytes, 43 characters): the shape of every token a connector hands out.
fn token_shaped(text: &str) -> Vec<&str> {
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.split(|c: char| !is_token_char(c))
        .filter(|run| run.len() == 43)
        .collect()
}

/// Checks the daemon's JSON log: one object per line, the certificate on every line about
/// it, durations and fingerprints as fields.
fn assert_json_log_shape(log: &str, protocol: &str) {
    let mut about_certificate = 0;
    let mut renewed = 0;
    for line in log.lines() {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(event.is_object(), "{line}");
        for key in ["timestamp", "level", "target"] {
            assert!(event[key].is_string(), "no {key}: {line}");
        }
        let target = event["target"].as_str().unwrap_or_default();
        let certificate_work = [
            "kyma_certd::daemon::task",
            "kyma_certd::flow",
            "kyma_certd::protocol",
            "kyma_certd::store",
            "kyma_certd::hooks",
        ]
        .iter()
        .any(|prefix| target.starts_with(prefix));
        if certificate_work {
            about_certificate += 1;
            assert_eq!(event["cert"], "orders", "no certificate name: {line}");
            assert_eq!(event["protocol"], protocol, "no protocol: {line}");
        }
        let message = event["message"].as_str().unwrap_or_default();
        if message.starts_with("renewed ") {
            renewed += 1;
            assert!(event["took_ms"].is_u64(), "duration as a field: {line}");
            for key in ["old", "new"] {
                let fingerprint = event[key].as_str().unwrap_or_default();
                assert!(
                    fingerprint.len() == 64 && fingerprint.chars().all(|c| c.is_ascii_hexdigit()),
                    "{key} fingerprint as a field: {line}"
                );
            }
        }
        if message.starts_with("next renewal in") {
            assert!(event["in_seconds"].is_u64(), "{line}");
            assert!(event["next_renewal"].is_string(), "{line}");
        }
    }
    assert!(
        about_certificate >= 5,
        "only {about_certificate} lines:\n{log}"
    );
    assert_eq!(renewed, 1, "one renewal by the daemon:\n{log}");
}

fn no_secret_leaves_the_process(protocol: &'static str) {
    let world = World::with(Settings::quiet(), Duration::from_secs(3600));
    world.write_config(&[world.cert("orders", protocol)]);
    let mut secrets = Secrets::default();
    let mut outputs = Outputs::default();

    let (enroll, token) = world.enroll_command("orders");
    let enrolled = enroll.envs(&TRACE).run();
    secrets.add("one-time token", token);
    outputs.add_run("enroll", &enrolled);
    outputs.add_state(&world, "after enroll");
    secrets.add_material(&world, protocol, "enrolled");

    let mut daemon = world.daemon().envs(&TRACE).serving();
    daemon.wait_state("orders", "valid", SHORT);
    daemon.renew_now();
    daemon.wait_scrape(SHORT, "the daemon's renewal", |s| {
        s.renewals("orders", "success") == 1.0 && s.state("orders").as_deref() == Some("valid")
    });
    secrets.add_material(&world, protocol, "renewed by the daemon");
    outputs.add("/metrics", daemon.response("/metrics").body);
    outputs.add(
        "/metrics (OpenMetrics)",
        http_get(
            daemon.metrics_addr(),
            "/metrics",
            &[("Accept", "application/openmetrics-text;version=1.0.0")],
        )
        .body,
    );
    outputs.add("/readyz", daemon.response("/readyz").body);
    outputs.add_state(&world, "after the daemon's renewal");
    assert!(daemon.stop().success(), "{}", daemon.log_text());
    let log = daemon.log_text();
    assert_json_log_shape(&log, protocol);
    outputs.add("daemon stderr", log);
    outputs.add("daemon stdout", daemon.stdout_text());

    let renewed = world
        .command(&["renew", "--force", "--name", "orders"])
        .envs(&TRACE)
        .run();
    outputs.add_run("renew --force", &renewed);
    outputs.add_state(&world, "after renew --force");
    secrets.add_material(&world, protocol, "renewed once");

    let revoked = world
        .command(&["revoke", "--name", "orders", "--yes"])
        .envs(&TRACE)
        .run();
    outputs.add_run("revoke", &revoked);
    outputs.add_state(&world, "after revoke");
    assert_eq!(
        world.sim.revocations().len(),
        2,
        "the revocations of the current and the previous generation reached the connector"
    );

    // Any PEM at all, and any CSR in its wire form, is a leak too.
    for marker in [
        "-----BEGIN",
        "PRIVATE KEY",
        "CERTIFICATE REQUEST",
        // base64 of "-----BEGIN CERTIFICATE REQUEST-----": how every CSR starts on the wire
        &base64::engine::general_purpose::STANDARD.encode("-----BEGIN CERTIFICATE REQUEST-----")
            [..44],
    ] {
        secrets.add(format!("marker {marker:?}"), marker);
    }

    let trace_lines = outputs
        .0
        .iter()
        .filter(|(what, _)| what.contains("stderr"))
        .map(|(_, text)| text.lines().filter(|l| l.contains("TRACE")).count())
        .sum::<usize>();
    assert!(
        trace_lines > 50,
        "the programs really logged at trace: {trace_lines} lines"
    );
    for (what, text) in &outputs.0 {
        for (secret, needle) in &secrets.0 {
            assert!(
                !text.contains(needle.as_str()),
                "{secret} appears in {what}:\n{text}"
            );
        }
        // Tokens the connector hands out (Compass's second token, REST's csrUrl token) are
        // not visible to the test: no value of their shape may appear at all.
        let shaped = token_shaped(text);
        assert!(
            shaped.is_empty(),
            "token-shaped values {shaped:?} appear in {what}:\n{text}"
        );
    }
}

#[test]
fn compass_json_logs_are_flat_and_no_secret_leaves_the_process_at_trace() {
    no_secret_leaves_the_process("compass");
}

#[test]
fn kyma_rest_json_logs_are_flat_and_no_secret_leaves_the_process_at_trace() {
    no_secret_leaves_the_process("kyma-rest");
}
