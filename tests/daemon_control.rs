//! Controlling a running `kyma-certd run`: SIGHUP reloads, SIGTERM in the middle of a
//! renewal, SIGUSR1, files replaced by an operator, and certificates that only a new
//! enrollment can save. The real binary against the in-process simulator over TLS.
//!
//! With `watch_config = true` the daemon also applies a new configuration file by itself,
//! the way Kubernetes updates a ConfigMap volume (a new timestamped folder, then an atomic
//! rename of the `..data` symlink that `config.toml` points through), without SIGHUP or a
//! restart. A change in the folder that leaves the file as it was reloads nothing. Either
//! way, a new file that does not validate is rejected once and the previous one stays in
//! force.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use kyma_certd::store::Store;
use kyma_connector_sim::{Endpoint, Fault, FaultScope};
use rustix::process::Signal;
use support::ca::TestCa;
use support::disk::{OnDisk, fingerprint_on_disk, temporary_leftovers};
use support::pem::unix;
use support::running::{Daemon, LogLine};
use support::wait::{eventually, wait_for};
use support::world::{CertSpec, World, toml_argv};

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

/// Generation folders in `dir` that lack one of the four files.
fn incomplete_generations(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("gen-"))
        .filter(|p| {
            ["cert.pem", "key.pem", "chain.pem", "ca.pem"]
                .iter()
                .any(|f| !p.join(f).is_file())
        })
        .map(|p| p.display().to_string())
        .collect()
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

#[test]
fn sigterm_during_a_renewal_exits_at_once_and_leaves_one_complete_generation() {
    let world = World::new(LONG);
    world.write_config(&[spec(&world, "orders")]);
    let enrolled = world.enroll("orders");
    let dir = world.cert_dir("orders");
    // Hold each request for 3 s; stop once in the first request and once in the signing one.
    world.sim.set_fault(
        Fault::Latency {
            delay: Duration::from_secs(3),
        },
        FaultScope::UntilCleared,
    );
    for (endpoint, stage) in [
        (
            Endpoint::CompassConfiguration,
            "asking for the signing info",
        ),
        (Endpoint::CompassSign, "signing"),
    ] {
        let mut daemon = world.daemon().ready();
        let before = world.sim.request_counts().get(endpoint);
        daemon.signal(Signal::USR1);
        wait_for(
            "the request to reach the connector",
            Duration::from_secs(10),
            || (world.sim.request_counts().get(endpoint) > before).then_some(()),
        );
        let (status, took) = daemon.terminate();
        eprintln!("SIGTERM while {stage}: exited in {took:?} with {status}");
        assert!(status.success(), "{status}");
        assert!(
            took < Duration::from_millis(1500),
            "took {took:?} to stop while {stage}"
        );
        let files = OnDisk::read(&dir);
        assert!(files.key_matches(), "key and certificate mismatch");
        assert_eq!(
            files.fingerprint(),
            enrolled,
            "an abandoned renewal changed the files"
        );
        assert_eq!(temporary_leftovers(&dir), Vec::<String>::new());
        assert_eq!(incomplete_generations(&dir), Vec::<String>::new());
    }
    world.sim.clear_fault();

    // Without latency a renewal takes a few tens of milliseconds: stopping at staggered
    // points lands before, inside or after the swap. Each time one generation is whole.
    let mut outcomes = Vec::new();
    for offset_ms in [0u64, 15, 30, 45, 60, 90] {
        let mut daemon = world.daemon().ready();
        let before = fingerprint_on_disk(&dir).unwrap();
        daemon.signal(Signal::USR1);
        std::thread::sleep(Duration::from_millis(offset_ms));
        let (status, took) = daemon.terminate();
        assert!(status.success(), "{status}");
        assert!(took < Duration::from_millis(1500), "took {took:?}");
        let files = OnDisk::read(&dir);
        assert!(
            files.key_matches(),
            "key and certificate mismatch at {offset_ms} ms"
        );
        let now = files.fingerprint();
        let renewed = world.sim.renewals().iter().any(|c| c.fingerprint == now);
        assert!(
            now == before || renewed,
            "a certificate from nowhere at {offset_ms} ms"
        );
        assert_eq!(temporary_leftovers(&dir), Vec::<String>::new());
        assert_eq!(incomplete_generations(&dir), Vec::<String>::new());
        outcomes.push(if now == before { "old" } else { "new" });
    }
    eprintln!("SIGTERM at 0..90 ms into a renewal left: {outcomes:?}");
}

#[test]
fn sigusr1_renews_every_certificate_now() {
    let world = World::new(LONG);
    let certs = [spec(&world, "orders"), world.kyma_rest("billing")];
    world.write_config(&certs);
    let orders = world.enroll("orders");
    let billing = world.enroll("billing");
    let mut daemon = world.daemon().ready();
    assert!(world.sim.renewals().is_empty());

    let asked = Instant::now();
    daemon.signal(Signal::USR1);
    let both = eventually(Duration::from_secs(10), || {
        fingerprint_on_disk(&world.cert_dir("orders")).is_some_and(|f| f != orders)
            && fingerprint_on_disk(&world.cert_dir("billing")).is_some_and(|f| f != billing)
    });
    assert!(both, "not both renewed\n{}", daemon.log_text());
    eprintln!("SIGUSR1 renewed 2 certificates in {:?}", asked.elapsed());
    daemon.wait_for_message("SIGUSR1: renewing every certificate now", Duration::ZERO);
    let renewals = world.sim.renewals();
    assert_eq!(renewals.len(), 2, "{renewals:#?}");
    for name in ["orders", "billing"] {
        assert!(OnDisk::read(&world.cert_dir(name)).key_matches());
    }
    // Once each: nothing more follows.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(world.sim.renewals().len(), 2);
    let scrape = daemon.metrics();
    for name in ["orders", "billing"] {
        assert_eq!(
            scrape.get(
                "kyma_certd_renewals_total",
                &[("name", name), ("result", "success")]
            ),
            Some(1.0)
        );
    }

    // A second SIGUSR1 while those renewals are in flight asks for nothing more.
    world.sim.set_fault(
        Fault::Latency {
            delay: Duration::from_millis(700),
        },
        FaultScope::UntilCleared,
    );
    let requests = world.sim.request_counts().total();
    daemon.signal(Signal::USR1);
    wait_for("both renewals in flight", Duration::from_secs(5), || {
        (world.sim.request_counts().total() >= requests + 2).then_some(())
    });
    daemon.signal(Signal::USR1);
    let done = eventually(Duration::from_secs(10), || world.sim.renewals().len() == 4);
    assert!(done, "{}", daemon.log_text());
    world.sim.clear_fault();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        world.sim.renewals().len(),
        4,
        "a SIGUSR1 during a renewal renewed again\n{}",
        daemon.log_text()
    );
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}

#[test]
fn files_replaced_by_an_operator_are_picked_up_at_once_and_own_swaps_do_not_loop() {
    let world = World::new(LONG);
    world.write_config(&[spec(&world, "orders")]);
    world.enroll("orders");
    let mut daemon = world.daemon().ready();
    let labels = [("name", "orders")];
    let first_due = daemon
        .metrics()
        .get(
            "kyma_certd_certificate_next_renewal_timestamp_seconds",
            &labels,
        )
        .unwrap();

    // An operator enrolls again into the same folder while the daemon runs.
    std::thread::sleep(Duration::from_millis(1100)); // a new notBefore second
    let signing_before = world.sim.signing_requests();
    let replaced = world.enroll("orders");
    let enrolled_at = Instant::now();
    let line = daemon.wait_for_line("the replacement noticed", Duration::from_secs(3), |l| {
        l.message().contains("replaced on disk") && l.field("fingerprint") == replaced.as_str()
    });
    let noticed = line.seen.saturating_duration_since(enrolled_at);
    eprintln!("a replacement on disk was noticed {noticed:?} after enroll exited");
    assert!(
        noticed < Duration::from_secs(1),
        "noticed after {noticed:?}"
    );
    let info = OnDisk::read(&world.cert_dir("orders")).info();
    let rescheduled = eventually(Duration::from_secs(2), || {
        let scrape = daemon.metrics();
        scrape.get(
            "kyma_certd_certificate_not_before_timestamp_seconds",
            &labels,
        ) == Some(unix(info.not_before))
            && scrape
                .get(
                    "kyma_certd_certificate_next_renewal_timestamp_seconds",
                    &labels,
                )
                .is_some_and(|next| next != first_due && next > unix(info.not_before))
    });
    assert!(rescheduled, "{}", daemon.metrics().text);
    assert_eq!(
        world.status("orders")["fingerprint_sha256"],
        replaced.as_str()
    );
    // The operator's enrollment made one signing request; the daemon adds none.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(world.sim.signing_requests(), signing_before + 1);

    // The daemon's own swap: exactly one signing request over a quiet period.
    let signing_before = world.sim.signing_requests();
    daemon.signal(Signal::USR1);
    daemon.wait_for_message("renewed ", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        world.sim.signing_requests(),
        signing_before + 1,
        "the daemon's own swap caused more renewals\n{}",
        daemon.log_text()
    );
    assert_eq!(
        daemon.lines_with("replaced on disk").len(),
        1,
        "its own swap was taken for a replacement"
    );
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}

/// Waits a few seconds and checks that the certificate stays put in `state`: not ready,
/// at most one error line, and no request to the connector.
fn assert_waits_for_enrollment(world: &World, daemon: &mut Daemon, state: &str) {
    let reached = eventually(Duration::from_secs(15), || {
        daemon.metrics().state("orders").as_deref() == Some(state)
    });
    assert!(reached, "never {state}\n{}", daemon.metrics().text);
    let requests = world.sim.request_counts().total();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        world.sim.request_counts().total(),
        requests,
        "requests while {state}"
    );
    let scrape = daemon.metrics();
    assert_eq!(scrape.state("orders").as_deref(), Some(state));
    assert_eq!(
        scrape.get(
            "kyma_certd_certificate_next_renewal_timestamp_seconds",
            &[("name", "orders")]
        ),
        None,
        "nothing is scheduled while {state}"
    );
    let (status, body) = daemon.get("/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(state), "{body}");
    assert_eq!(daemon.get("/healthz").0, 200);
    let errors: Vec<String> = daemon
        .log()
        .into_iter()
        .filter(|l| l.level() == "ERROR")
        .map(|l| l.text)
        .collect();
    assert_eq!(errors.len(), 1, "error lines while {state}: {errors:#?}");
    assert!(
        errors[0].contains("kyma-certd enroll"),
        "the error says what to do: {}",
        errors[0]
    );
}

/// After an operator's enrollment the certificate is valid again and renews on schedule.
/// Leaves the daemon running.
fn assert_back_to_normal(world: &World, daemon: &mut Daemon) {
    let renewals = world.sim.renewals().len();
    let enrolled = world.enroll("orders");
    let valid = eventually(Duration::from_secs(3), || {
        daemon.metrics().state("orders").as_deref() == Some("valid")
    });
    assert!(valid, "{}", daemon.log_text());
    assert_eq!(daemon.get("/readyz").0, 200);
    let renewed = eventually(Duration::from_secs(12), || {
        fingerprint_on_disk(&world.cert_dir("orders")).is_some_and(|f| f != enrolled)
    });
    assert!(
        renewed,
        "no renewal after the new enrollment\n{}",
        daemon.log_text()
    );
    assert_eq!(world.sim.renewals().len(), renewals + 1);
}

#[test]
fn a_missing_certificate_waits_quietly_until_enrolled_then_renews() {
    let world = World::new(SHORT);
    std::fs::create_dir_all(world.cert_dir("orders").parent().unwrap()).unwrap();
    world.write_config(&[spec(&world, "orders")]);
    let mut daemon = world.daemon().ready();
    assert_waits_for_enrollment(&world, &mut daemon, "missing");
    assert_back_to_normal(&world, &mut daemon);
    // The folder did not exist when the daemon started: it is watched now all the same.
    let replaced = world.enroll("orders");
    let enrolled_at = Instant::now();
    let line = daemon.wait_for_line("the replacement noticed", Duration::from_secs(3), |l| {
        l.message().contains("replaced on disk") && l.field("fingerprint") == replaced.as_str()
    });
    assert!(line.seen.saturating_duration_since(enrolled_at) < Duration::from_secs(1));
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}

/// Writes an expired certificate into `name`'s folder, as a previous enrollment would
/// have left it, with the connector's renewal URL in `state.json`.
fn write_expired(world: &World, name: &str) {
    let config = kyma_certd::config::load(&world.config).unwrap();
    let cfg = config.certificates.iter().find(|c| c.name == name).unwrap();
    let expired = TestCa::new("an earlier connector").material(
        "CN=orders-app",
        SystemTime::now() - Duration::from_secs(80),
        Duration::from_secs(20),
    );
    let store = Store::new(cfg);
    store.swap(&expired).unwrap();
    let mut state = store.read_state().unwrap();
    state.renewal_url = Some(world.sim.compass_mtls_url());
    state.enrolled_at = Some(SystemTime::now() - Duration::from_secs(80));
    store.write_state(&state).unwrap();
}

#[test]
fn an_expired_certificate_waits_quietly_until_enrolled_then_renews() {
    let world = World::new(SHORT);
    world.write_config(&[spec(&world, "orders")]);
    write_expired(&world, "orders");
    let mut daemon = world.daemon().ready();
    assert_waits_for_enrollment(&world, &mut daemon, "expired");
    assert_back_to_normal(&world, &mut daemon);
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}

#[test]
fn a_revoked_certificate_is_probed_not_hammered_until_enrolled_then_renews() {
    let world = World::new(SHORT);
    world.write_config(&[spec(&world, "orders")]);
    let enrolled = world.enroll("orders");
    let mut daemon = world.daemon().ready();
    // Revoked at the connector: the daemon learns it at its next renewal.
    world.sim.revoke(&enrolled);
    let reached = eventually(Duration::from_secs(15), || {
        daemon.metrics().state("orders").as_deref() == Some("revoked")
    });
    assert!(
        reached,
        "never revoked
{}",
        daemon.metrics().text
    );
    // Probed every retry_max (2s here) until it expires, in case the revocation is lifted:
    // a handful of requests, not a retry storm.
    let requests = world.sim.request_counts().total();
    std::thread::sleep(Duration::from_secs(3));
    let probes = world.sim.request_counts().total() - requests;
    assert!(
        (1..=4).contains(&probes),
        "{probes} requests in 3s while revoked"
    );
    let (status, body) = daemon.get("/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("revoked"), "{body}");
    assert_eq!(daemon.get("/healthz").0, 200);
    let errors: Vec<String> = daemon
        .log()
        .into_iter()
        .filter(|l| l.level() == "ERROR")
        .map(|l| l.text)
        .collect();
    assert_eq!(errors.len(), 1, "error lines while revoked: {errors:#?}");
    assert!(
        errors[0].contains("kyma-certd enroll"),
        "the error says what to do: {}",
        errors[0]
    );
    assert_eq!(
        fingerprint_on_disk(&world.cert_dir("orders")),
        Some(enrolled),
        "the refused certificate stays in place"
    );
    assert_eq!(world.status("orders")["state"], "revoked");
    assert_back_to_normal(&world, &mut daemon);
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}

#[test]
fn run_refuses_to_start_on_a_taken_port_or_a_bad_config_with_one_sentence_and_its_exit_code() {
    let world = World::new(LONG);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let text = world
        .config_text(&[spec(&world, "orders")])
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    std::fs::write(&world.config, text).unwrap();
    let output = world.command(&["run"]).run();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    // The configuration asks for JSON logs: the last word is a JSON line too.
    let last: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("the error is not a JSON line ({e}): {stderr}"));
    assert_eq!(last["level"], "ERROR", "{stderr}");
    assert_eq!(last["exit_code"], 1, "{stderr}");
    assert!(
        last["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(&format!("cannot listen on 127.0.0.1:{port}"))),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    std::fs::write(
        &world.config,
        world.config_text(&[spec(&world, "orders")]) + "no_such_key = 1\n",
    )
    .unwrap();
    let output = world.command(&["run"]).run();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no_such_key"), "{stderr}");
    assert_eq!(world.sim.request_counts().total(), 0);
}

#[test]
fn sigterm_while_a_hook_hangs_exits_at_once_and_takes_the_hook_along() {
    let world = World::new(LONG);
    let pids = world.path("hook.pids");
    // The shell and its child `sleep` form the hook's process group.
    let hang = r#"echo $$ >> "$0"; sleep 60 & echo $! >> "$0"; wait"#;
    world.write_config(&[spec(&world, "orders").hook(&[
        format!(
            "command = {}",
            toml_argv(&["sh", "-c", hang, pids.to_str().unwrap()])
        ),
        "timeout = \"30s\"".to_owned(),
    ])]);
    world.enroll("orders");
    let mut daemon = world.daemon().ready();
    daemon.signal(Signal::USR1);
    let hook_pids: Vec<String> = wait_for("the hook to start", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&pids).ok()?;
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        (lines.len() == 2).then_some(lines)
    });
    let (status, took) = daemon.terminate();
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    for pid in hook_pids {
        let proc_entry = std::path::PathBuf::from(format!("/proc/{pid}"));
        let gone = eventually(Duration::from_secs(2), || {
            // Gone, or a zombie waiting for a parent that is gone too.
            std::fs::read_to_string(proc_entry.join("stat"))
                .map(|stat| stat.split_whitespace().nth(2) == Some("Z"))
                .unwrap_or(true)
        });
        assert!(gone, "hook process {pid} outlived the daemon");
    }
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
