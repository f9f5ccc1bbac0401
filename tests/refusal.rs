//! Refusals are classified by evidence: a gateway's 403, a 401/407 (also a forward
//! proxy's 407 to CONNECT) and a TLS alert on the mTLS listener are refusals (state
//! `refused`, exit 1, retried, never latched, renewed once cleared), a `certificate_expired` alert for a valid certificate is probable clock
//! skew, and only the connector's own "revoked" exits 3 — yet is probed until it heals.
//! The real binary, one-shot and as a daemon, against the simulator over real TLS.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kyma_connector_sim::RestFlavour;
use kyma_connector_sim::{AlertName, Endpoint, Fault, FaultScope};
use rustix::process::Signal;
use support::disk::fingerprint_on_disk;
use support::invoke::Run;
use support::running::Daemon;
use support::wait::eventually;
use support::world::World;

/// Long enough that nothing is due during a test: every attempt is one the test caused.
const LONG: Duration = Duration::from_secs(3600);

/// One way of refusing a renewal, and how `status` must name it.
struct Kind {
    fault: Fault,
    reason: &'static str,
    /// The simulator's counter of refused attempts.
    counter: Endpoint,
}

fn kinds() -> Vec<Kind> {
    let gateway = |status: u16, body: &str, reason| Kind {
        fault: Fault::GatewayRefusal {
            status,
            body: body.to_owned(),
        },
        reason,
        counter: Endpoint::GatewayRefusal,
    };
    let alert = |alert, reason| Kind {
        fault: Fault::TlsAlert { alert },
        reason,
        counter: Endpoint::RefusedHandshake,
    };
    vec![
        gateway(
            403,
            "RBAC: access denied",
            "http 403 not in the connector's error format",
        ),
        gateway(401, "Jwt is missing", "http 401"),
        gateway(407, "Proxy Authentication Required", "http 407"),
        alert(AlertName::UnknownCa, "tls alert unknown_ca"),
        alert(AlertName::HandshakeFailure, "tls alert handshake_failure"),
        alert(
            AlertName::CertificateExpired,
            "tls alert certificate_expired: probable clock skew",
        ),
    ]
}

/// `status --json` of `orders`, with its exit code.
fn status(world: &World) -> (i32, serde_json::Value) {
    let output = world
        .command(&["status", "--name", "orders", "--json"])
        .run();
    let all: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("status --json printed no JSON ({e}): {}", output.stderr()));
    (output.status.code().unwrap_or(-1), all[0].clone())
}

fn one_shot_refusals_exit_1_are_never_latched_and_renew_once_cleared(protocol: &str) {
    let world = World::new(LONG);
    world.write_config(&[world.cert("orders", protocol)]);
    let mut current = world.enroll("orders");
    let dir = world.cert_dir("orders");
    for kind in kinds() {
        let issued = world.sim.issued_certificates().len();
        let refused_before = world.sim.request_counts().get(kind.counter);
        world
            .sim
            .set_fault(kind.fault.clone(), FaultScope::UntilCleared);
        for attempt in 0..2 {
            let output = world
                .command(&["renew", "--name", "orders", "--force"])
                .run();
            let text = output.stderr();
            assert_eq!(output.status.code(), Some(1), "{}: {text}", kind.reason);
            assert!(
                text.contains(&format!("renewal refused ({})", kind.reason))
                    && text.contains("not revoked"),
                "attempt {attempt}: {text}"
            );
            if kind.reason.contains("clock skew") {
                assert!(text.contains("probable clock skew"), "{text}");
            }
            assert!(!text.contains("-----BEGIN"), "{text}");
            let (code, shown) = status(&world);
            assert_eq!(code, 0, "a refused certificate is still valid: {shown}");
            assert_eq!(shown["state"], "refused", "{shown}");
            assert_eq!(shown["reason"], kind.reason, "{shown}");
            assert_eq!(shown["fingerprint_sha256"], current.as_str());
        }
        assert_eq!(
            world.sim.request_counts().get(kind.counter),
            refused_before + 2,
            "both attempts reached the refusing gateway, and nothing more"
        );
        assert_eq!(world.sim.issued_certificates().len(), issued);
        assert_eq!(fingerprint_on_disk(&dir).as_deref(), Some(current.as_str()));

        world.sim.clear_fault();
        let output = world
            .command(&["renew", "--name", "orders", "--force"])
            .run();
        assert!(
            output.status.success(),
            "{}: {}",
            kind.reason,
            output.stderr()
        );
        let renewed = fingerprint_on_disk(&dir).expect("a certificate on disk");
        assert_ne!(renewed, current, "{}: renewed once cleared", kind.reason);
        let (code, shown) = status(&world);
        assert_eq!((code, &shown["state"]), (0, &"valid".into()), "{shown}");
        assert!(shown["reason"].is_null(), "{shown}");
        current = renewed;
    }
    let state = std::fs::read_to_string(dir.join("state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert!(
        state["revoked"].is_null() && state["refused"].is_null(),
        "{state}"
    );
}

#[test]
fn compass_one_shot_refusals_exit_1_are_never_latched_and_renew_once_cleared() {
    one_shot_refusals_exit_1_are_never_latched_and_renew_once_cleared("compass");
}

#[test]
fn kyma_rest_one_shot_refusals_exit_1_are_never_latched_and_renew_once_cleared() {
    one_shot_refusals_exit_1_are_never_latched_and_renew_once_cleared("kyma-rest");
}

fn wait_state(daemon: &mut Daemon, state: &str) {
    let reached = eventually(Duration::from_secs(10), || {
        daemon.metrics().state("orders").as_deref() == Some(state)
    });
    assert!(
        reached,
        "never {state}: {:?}\n{}",
        daemon.metrics().state("orders"),
        daemon.log_text()
    );
}

fn daemon_refusals_are_retried_with_backoff_and_renewed_once_cleared(protocol: &str) {
    let world = World::new(LONG);
    world.write_config(&[world.cert("orders", protocol)]);
    let mut current = world.enroll("orders");
    let dir = world.cert_dir("orders");
    let mut daemon = world.daemon().ready();
    for kind in kinds() {
        world
            .sim
            .set_fault(kind.fault.clone(), FaultScope::UntilCleared);
        let refused_before = world.sim.request_counts().get(kind.counter);
        daemon.signal(Signal::USR1);
        wait_state(&mut daemon, "refused");
        // Still valid: consumers keep it, and readiness says so while naming the state.
        let (code, body) = daemon.get("/readyz");
        assert_eq!(code, 200, "{body}");
        assert!(body.contains("\"refused\""), "{body}");
        let (status_code, shown) = status(&world);
        assert_eq!(status_code, 0);
        assert_eq!(shown["state"], "refused", "{shown}");
        assert_eq!(shown["reason"], kind.reason, "{shown}");
        // Never latched: the daemon keeps trying (retry_min 1s, retry_max 2s).
        let retried = eventually(Duration::from_secs(10), || {
            world.sim.request_counts().get(kind.counter) >= refused_before + 3
        });
        assert!(
            retried,
            "{}: no retries\n{}",
            kind.reason,
            daemon.log_text()
        );
        let line = daemon.wait_for_line("the refusal", Duration::from_secs(1), |l| {
            l.level() == "WARN" && l.field("refusal") == kind.reason
        });
        assert!(line.message().contains("stays valid"), "{}", line.text);
        assert_eq!(fingerprint_on_disk(&dir).as_deref(), Some(current.as_str()));

        world.sim.clear_fault();
        let renewed = eventually(Duration::from_secs(10), || {
            fingerprint_on_disk(&dir).is_some_and(|f| f != current)
        });
        assert!(renewed, "{}: not renewed once cleared", kind.reason);
        wait_state(&mut daemon, "valid");
        current = fingerprint_on_disk(&dir).unwrap();
        let (_, shown) = status(&world);
        assert_eq!(shown["state"], "valid", "{shown}");
    }
    let errors: Vec<String> = daemon
        .log()
        .into_iter()
        .filter(|l| l.level() == "ERROR")
        .map(|l| l.text)
        .collect();
    assert!(errors.is_empty(), "a refusal is not an error: {errors:#?}");
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}

#[test]
fn compass_daemon_refusals_are_retried_with_backoff_and_renewed_once_cleared() {
    daemon_refusals_are_retried_with_backoff_and_renewed_once_cleared("compass");
}

#[test]
fn kyma_rest_daemon_refusals_are_retried_with_backoff_and_renewed_once_cleared() {
    daemon_refusals_are_retried_with_backoff_and_renewed_once_cleared("kyma-rest");
}

/// Requests that authenticate a renewal with the certificate: the probes.
fn probes(world: &World, protocol: &str) -> u64 {
    let counts = world.sim.request_counts();
    match protocol {
        "compass" => counts.get(Endpoint::CompassConfiguration),
        _ => counts.get(Endpoint::RestManagementInfo),
    }
}

fn a_real_revocation_exits_3_and_heals_when_lifted(protocol: &str, flavour: RestFlavour) {
    let world = World::new(LONG);
    world.sim.set_rest_flavour(flavour);
    world.write_config(&[world.cert("orders", protocol)]);
    let enrolled = world.enroll("orders");
    let dir = world.cert_dir("orders");

    // One-shot: the connector's own words exit 3, every time they are said.
    world.sim.revoke(&enrolled);
    for _ in 0..2 {
        let output = world
            .command(&["renew", "--name", "orders", "--force"])
            .run();
        let text = output.stderr();
        assert_eq!(output.status.code(), Some(3), "{text}");
        assert!(text.to_lowercase().contains("revoked"), "{text}");
        assert!(!text.contains("refused ("), "{text}");
    }
    let (code, shown) = status(&world);
    assert_eq!(code, 3, "{shown}");
    assert_eq!(shown["state"], "revoked", "{shown}");
    assert_eq!(
        fingerprint_on_disk(&dir).as_deref(),
        Some(enrolled.as_str())
    );

    // Lifted at the connector: the next renewal heals it and clears the record.
    world.sim.unrevoke(&enrolled);
    let output = world
        .command(&["renew", "--name", "orders", "--force"])
        .run();
    assert!(output.status.success(), "{}", output.stderr());
    let (code, shown) = status(&world);
    assert_eq!((code, &shown["state"]), (0, &"valid".into()), "{shown}");
    let current = fingerprint_on_disk(&dir).unwrap();
    assert_ne!(current, enrolled);

    // The daemon: revoked, probed every retry_max (2s here), healed when lifted.
    let mut daemon = world.daemon().ready();
    world.sim.revoke(&current);
    daemon.signal(Signal::USR1);
    wait_state(&mut daemon, "revoked");
    let (code, body) = daemon.get("/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("\"revoked\""), "{body}");
    let (code, shown) = status(&world);
    assert_eq!((code, &shown["state"]), (3, &"revoked".into()), "{shown}");
    let before = probes(&world, protocol);
    let probed = eventually(Duration::from_secs(8), || {
        probes(&world, protocol) >= before + 2
    });
    assert!(
        probed,
        "a revoked certificate is probed\n{}",
        daemon.log_text()
    );
    let errors: Vec<String> = daemon
        .log()
        .into_iter()
        .filter(|l| l.level() == "ERROR")
        .map(|l| l.text)
        .collect();
    assert_eq!(errors.len(), 1, "one error, not one per probe: {errors:#?}");
    assert!(errors[0].contains("kyma-certd enroll"), "{}", errors[0]);
    assert_eq!(fingerprint_on_disk(&dir).as_deref(), Some(current.as_str()));

    world.sim.unrevoke(&current);
    let healed = eventually(Duration::from_secs(8), || {
        fingerprint_on_disk(&dir).is_some_and(|f| f != current)
    });
    assert!(healed, "not healed once lifted\n{}", daemon.log_text());
    wait_state(&mut daemon, "valid");
    assert_eq!(daemon.get("/readyz").0, 200);
    let state = std::fs::read_to_string(dir.join("state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert!(state["revoked"].is_null(), "the record is cleared: {state}");
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}

/// Compass: the Connector's authenticator, which got no identity for the certificate.
#[test]
fn compass_a_real_revocation_exits_3_and_heals_when_lifted() {
    a_real_revocation_exits_3_and_heals_when_lifted("compass", RestFlavour::default());
}

/// Kyma's connector-service: `Certificate has been revoked.` on renewals.
#[test]
fn kyma_rest_a_real_revocation_exits_3_and_heals_when_lifted() {
    a_real_revocation_exits_3_and_heals_when_lifted("kyma-rest", RestFlavour::ConnectorService);
}

/// The REST API as Compass's connectivity-adapter serves it: `invalid token or
/// certificate` on every mTLS call, `management/info` included.
#[test]
fn connectivity_adapter_a_real_revocation_exits_3_and_heals_when_lifted() {
    a_real_revocation_exits_3_and_heals_when_lifted("kyma-rest", RestFlavour::ConnectivityAdapter);
}

/// A forward proxy that answers every CONNECT with `407 Proxy Authentication Required`,
/// counting them. Serves on a thread of its own until the test process ends.
fn proxy_demanding_credentials() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let addr = listener.local_addr().unwrap();
    let connects = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connects);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            // The rest of the request head, up to the empty line.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            if first.starts_with("CONNECT ") {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            let _ = stream.write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"egress\"\r\nContent-Length: 0\r\n\r\n",
            );
        }
    });
    (addr, connects)
}

/// `renew --force` through `proxy`, with no proxy exceptions from the environment.
fn renew_through(world: &World, proxy: SocketAddr) -> Run {
    let url = format!("http://{proxy}");
    world
        .command(&["renew", "--name", "orders", "--force"])
        .env("HTTPS_PROXY", &url)
        .env("https_proxy", &url)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .run()
}

fn a_forward_proxy_demanding_credentials_is_a_refusal(protocol: &str) {
    let world = World::new(LONG);
    world.write_config(&[world.cert("orders", protocol)]);
    let enrolled = world.enroll("orders");
    let (proxy, connects) = proxy_demanding_credentials();
    let output = renew_through(&world, proxy);
    let text = output.stderr();
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("renewal refused (http 407)"), "{text}");
    assert!(text.contains("proxy authentication required"), "{text}");
    assert!(connects.load(Ordering::SeqCst) >= 1, "the proxy was asked");
    let (code, shown) = status(&world);
    assert_eq!(code, 0, "{shown}");
    assert_eq!(shown["state"], "refused", "{shown}");
    assert_eq!(shown["reason"], "http 407", "{shown}");
    assert_eq!(
        fingerprint_on_disk(&world.cert_dir("orders")).as_deref(),
        Some(enrolled.as_str())
    );
    // Without the proxy in the way, the same certificate renews.
    let output = world
        .command(&["renew", "--name", "orders", "--force"])
        .run();
    assert!(output.status.success(), "{}", output.stderr());
    assert_eq!(status(&world).1["state"], "valid");
}

#[test]
fn compass_a_forward_proxy_demanding_credentials_is_a_refusal() {
    a_forward_proxy_demanding_credentials_is_a_refusal("compass");
}

#[test]
fn kyma_rest_a_forward_proxy_demanding_credentials_is_a_refusal() {
    a_forward_proxy_demanding_credentials_is_a_refusal("kyma-rest");
}

#[test]
fn a_refusal_and_its_reason_survive_a_daemon_restart_and_still_heal() {
    let world = World::new(LONG);
    world.write_config(&[world.cert("orders", "compass")]);
    let enrolled = world.enroll("orders");
    let dir = world.cert_dir("orders");
    world.sim.set_fault(
        Fault::TlsAlert {
            alert: AlertName::UnknownCa,
        },
        FaultScope::UntilCleared,
    );
    let mut daemon = world.daemon().ready();
    daemon.signal(Signal::USR1);
    wait_state(&mut daemon, "refused");
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");

    // Restarted: refused from the first look, and retried, not waiting for its schedule.
    let refused_before = world.sim.request_counts().get(Endpoint::RefusedHandshake);
    let mut daemon = world.daemon().ready();
    assert_eq!(daemon.metrics().state("orders").as_deref(), Some("refused"));
    let retried = eventually(Duration::from_secs(10), || {
        world.sim.request_counts().get(Endpoint::RefusedHandshake) >= refused_before + 2
    });
    assert!(
        retried,
        "no retries after the restart\n{}",
        daemon.log_text()
    );
    assert_eq!(status_reason(&world), "tls alert unknown_ca");

    world.sim.clear_fault();
    let renewed = eventually(Duration::from_secs(10), || {
        fingerprint_on_disk(&dir).is_some_and(|f| f != enrolled)
    });
    assert!(renewed, "not renewed once cleared\n{}", daemon.log_text());
    wait_state(&mut daemon, "valid");
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}

#[test]
fn a_refusal_seen_by_a_one_shot_renew_is_retried_by_the_daemon_at_once() {
    let world = World::new(LONG);
    world.write_config(&[world.cert("orders", "kyma-rest")]);
    let enrolled = world.enroll("orders");
    world.sim.set_fault(
        Fault::GatewayRefusal {
            status: 403,
            body: "RBAC: access denied".to_owned(),
        },
        FaultScope::UntilCleared,
    );
    let output = world
        .command(&["renew", "--name", "orders", "--force"])
        .run();
    assert_eq!(output.status.code(), Some(1), "{}", output.stderr());
    let mut daemon = world.daemon().ready();
    // Refused, like `status` says, and retried: not "valid" until a renewal weeks away.
    assert_eq!(daemon.metrics().state("orders").as_deref(), Some("refused"));
    world.sim.clear_fault();
    let renewed = eventually(Duration::from_secs(10), || {
        fingerprint_on_disk(&world.cert_dir("orders")).is_some_and(|f| f != enrolled)
    });
    assert!(renewed, "not retried\n{}", daemon.log_text());
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}

fn status_reason(world: &World) -> String {
    let (_, shown) = status(world);
    shown["reason"].as_str().unwrap_or_default().to_owned()
}
