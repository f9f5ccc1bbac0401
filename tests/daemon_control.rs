//! Controlling a running `kyma-certd run`: SIGTERM in the middle of a renewal or a hook,
//! SIGUSR1, files replaced by an operator, and a start that cannot happen. Reloads are
//! in `daemon_reload.rs`, certificates that only a new enrollment can save in
//! `daemon_enrollment_wait.rs`. The real binary against the in-process simulator over
//! TLS.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use kyma_connector_sim::{Endpoint, Fault, FaultScope};
use rustix::process::Signal;
use support::disk::{OnDisk, fingerprint_on_disk, temporary_leftovers};
use support::pem::unix;
use support::wait::{eventually, wait_for};
use support::world::{CertSpec, World, toml_argv};

/// Long enough that nothing is due during a test: every renewal is one the test asked for.
const LONG: Duration = Duration::from_secs(3600);

fn spec(world: &World, name: &str) -> CertSpec {
    world.compass(name).with("renew_at = \"30%\"")
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
