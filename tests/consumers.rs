//! Real consumers of the outputs, while the daemon renews: HAProxy presenting the
//! combined PEM (`pem-bundle`) as its client certificate toward the connector's mTLS
//! listener, reloaded by a `signal` hook, with a client sending requests through it
//! without pause; and a Java program calling the same endpoint with the `pkcs12`
//! keystore after each renewal. The certificates live 12 seconds, so a consumer still
//! on an old one fails within the test.

mod support;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::pem::fingerprint;
use support::wait::wait_for;
use support::world::{World, toml_path};

const LIFETIME: Duration = Duration::from_secs(12);
const PATH: &str = "/v1/applications/management/info";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn need(program: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "{program} is not installed (.ci/run installs it)");
}

/// The fingerprints the simulator issued as renewals so far.
fn renewals(world: &World) -> usize {
    world.sim.renewals().len()
}

/// A world whose simulator issues 12-second certificates, renewed at half their life.
fn renewing_world() -> World {
    let mut world = World::new(LIFETIME);
    world.settings.defaults.set("renew_at = \"50%\"");
    world.settings.defaults.set("jitter = \"0%\"");
    world
}

struct Haproxy {
    child: Child,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// HAProxy in master-worker mode: plain HTTP on `front`, TLS with `bundle` as client
/// certificate toward `backend`.
fn start_haproxy(world: &World, front: u16, bundle: &Path, pid_file: &Path) -> Haproxy {
    let config = world.path("haproxy.cfg");
    let text = format!(
        "global\n  log stderr format short local0 warning\n\
         defaults\n  mode http\n  log global\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
         frontend fe\n  bind 127.0.0.1:{front}\n  default_backend connector\n\
         backend connector\n  server sim {backend} ssl crt {bundle} ca-file {ca} verify required sni str(localhost) verifyhost localhost\n",
        backend = world.sim.mtls_addr(),
        bundle = bundle.display(),
        ca = world.sim.server_ca_path().display(),
    );
    std::fs::write(&config, text).unwrap();
    let check = Command::new("haproxy")
        .args(["-c", "-f"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "haproxy -c: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let child = Command::new("haproxy")
        .args(["-W", "-db", "-f"])
        .arg(&config)
        .arg("-p")
        .arg(pid_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy starts");
    Haproxy { child }
}

/// One HTTP/1.0 request through `port`; the status code, if an answer came.
fn get(port: u16) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(format!("GET {PATH} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn haproxy_serves_every_request_through_renewals_with_the_combined_pem() {
    need("haproxy");
    let world = renewing_world();
    let pid_file = world.path("haproxy.pid");
    let bundle = world.cert_dir("orders").join("bundle.pem");
    let spec = world
        .kyma_rest("orders")
        .hook(&[
            "signal = \"USR2\"".to_owned(),
            format!("pid_file = {}", toml_path(&pid_file)),
        ])
        .table("[[certificate.output]]\nkind = \"pem-bundle\"\nfile = \"bundle.pem\"\nparts = [\"key\", \"cert\", \"chain\"]");
    world.write_config(&[spec]);
    world.enroll("orders");
    let front = free_port();
    let _haproxy = start_haproxy(&world, front, &bundle, &pid_file);
    wait_for("haproxy to answer", Duration::from_secs(10), || {
        (get(front) == Some(200)).then_some(())
    });

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let client = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match get(front) {
                    Some(200) => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        failures.push(other);
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
            failures
        })
    };
    let mut daemon = world.daemon().ready();
    let started = Instant::now();
    // Three renewals and past the first certificate's expiry: HAProxy must have moved on.
    wait_for("three renewals", Duration::from_secs(60), || {
        (renewals(&world) >= 3 && started.elapsed() > LIFETIME).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let failures = client.join().unwrap();
    let hook_runs = daemon
        .metrics()
        .get(
            "kyma_certd_hook_runs_total",
            &[
                ("name", "orders"),
                ("hook", "signal"),
                ("result", "success"),
            ],
        )
        .unwrap_or(0.0);
    daemon.terminate();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!(
        "haproxy: {ok} requests answered 200, {failed} failed, {} renewals, {hook_runs} reloads",
        renewals(&world)
    );
    assert_eq!(failed, 0, "requests failed through HAProxy: {failures:?}");
    assert!(ok > 100, "only {ok} requests");
    assert!(hook_runs >= 3.0, "HAProxy was reloaded {hook_runs} times");
}

fn run_ok(command: &mut Command) -> String {
    let output = command.output().expect("the command starts");
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_java_client_calls_the_connector_with_the_pkcs12_keystore_after_each_renewal() {
    for program in ["java", "javac", "keytool", "openssl"] {
        need(program);
    }
    let world = renewing_world();
    let password = "kyma-keystore-pass";
    let password_file = world.path("keystore.pass");
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    let spec = world.kyma_rest("orders").table(&format!(
        "[[certificate.output]]\nkind = \"pkcs12\"\nfile = \"keystore.p12\"\npassword_file = {}\ntruststore = \"truststore.p12\"",
        toml_path(&password_file)
    ));
    world.write_config(&[spec]);
    let dir = world.cert_dir("orders");

    // The Java consumer, and a truststore for the connector's TLS certificate.
    let classes = world.path("classes");
    run_ok(
        Command::new("javac")
            .arg("-d")
            .arg(&classes)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java/MtlsCall.java")),
    );
    let server_trust = world.path("server-trust.p12");
    run_ok(
        Command::new("keytool")
            .args([
                "-importcert",
                "-noprompt",
                "-alias",
                "connector",
                "-storetype",
                "PKCS12",
            ])
            .arg("-file")
            .arg(world.sim.server_ca_path())
            .arg("-keystore")
            .arg(&server_trust)
            .args(["-storepass", "server-trust-pass"]),
    );
    let url = format!("https://localhost:{}{PATH}", world.sim.mtls_addr().port());
    let call = || {
        run_ok(
            Command::new("java")
                .arg("-cp")
                .arg(&classes)
                .arg("MtlsCall")
                .arg(&url)
                .arg(dir.join("keystore.p12"))
                .arg(password)
                .arg(&server_trust)
                .arg("server-trust-pass"),
        )
    };

    world.enroll("orders");
    // The truststore holds the connector's CA as an entry Java trusts.
    let listing = run_ok(
        Command::new("keytool")
            .args(["-list", "-storetype", "PKCS12", "-keystore"])
            .arg(dir.join("truststore.p12"))
            .args(["-storepass", password]),
    );
    assert!(listing.contains("trustedCertEntry"), "{listing}");
    assert!(call().contains("status 200"));

    let mut daemon = world.daemon().ready();
    for round in 1..=3 {
        wait_for("the next renewal on disk", Duration::from_secs(30), || {
            let renewed = world.sim.renewals();
            let newest = renewed.get(round - 1)?.fingerprint.clone();
            let on_disk = fingerprint(&std::fs::read(dir.join("cert.pem")).ok()?);
            (on_disk == newest).then_some(())
        });
        // The keystore flipped with the certificate.
        let keystore_cert = run_ok(
            Command::new("openssl")
                .args(["pkcs12", "-nokeys", "-clcerts", "-in"])
                .arg(dir.join("keystore.p12"))
                .arg("-passin")
                .arg(format!("pass:{password}")),
        );
        assert_eq!(
            fingerprint(keystore_cert.as_bytes()),
            fingerprint(&std::fs::read(dir.join("cert.pem")).unwrap()),
            "round {round}: the keystore holds the current certificate"
        );
        assert!(call().contains("status 200"), "round {round}");
    }
    daemon.terminate();
}
