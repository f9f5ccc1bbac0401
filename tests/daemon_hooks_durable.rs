//! A daemon killed (SIGKILL) between a swap and its hooks tells the dependents about the
//! new certificate at its next start: the notification is durable with the swap.

mod support;

use std::time::Duration;

use kyma_certd::pki::x509::CertInfo;
use kyma_connector_sim::{Fault, FaultScope};
use rustix::process::Signal;
use support::disk::OnDisk;
use support::running::Daemon;
use support::wait::wait_for;
use support::world::{World, toml_argv};

fn current_fingerprint(world: &World) -> String {
    let pem = std::fs::read_to_string(world.cert_dir("orders").join("cert.pem")).unwrap();
    CertInfo::from_pem(&pem).unwrap().fingerprint_sha256
}

fn announced(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_daemon_killed_before_its_hooks_ran_tells_the_dependents_after_restart() {
    let world = World::new(Duration::from_secs(3600));
    let log = world.path("announced");
    let slow = world.path("slow");
    let started = world.path("hook.pid");
    // While `slow` exists the hook records its pid and hangs before it announces.
    let script = "if [ -e \"$0\" ]; then echo $$ > \"$1\"; sleep 60; fi; echo $KYMA_CERTD_FINGERPRINT >> \"$2\"";
    let hook = vec![format!(
        "command = {}",
        toml_argv(&[
            "sh",
            "-c",
            script,
            slow.to_str().unwrap(),
            started.to_str().unwrap(),
            log.to_str().unwrap(),
        ])
    )];
    world.write_config(&[world.compass("orders").hook(&hook)]);
    world.enroll("orders");
    let enrolled = current_fingerprint(&world);

    // A first enrollment is what the dependents start with: nothing to announce.
    let mut daemon = world.daemon().ready();

    // A renewal whose hook hangs; the daemon dies before the hook finished.
    std::fs::write(&slow, "").unwrap();
    daemon.signal(Signal::USR1);
    let hook_pid: i32 = wait_for("the hook to start", Duration::from_secs(20), || {
        std::fs::read_to_string(&started).ok()?.trim().parse().ok()
    });
    let renewed = current_fingerprint(&world);
    assert_ne!(
        renewed, enrolled,
        "the renewal was swapped in before its hook"
    );
    daemon.signal(Signal::KILL);
    daemon
        .wait_exit(Duration::from_secs(5))
        .expect("the daemon died");
    if let Some(pid) = rustix::process::Pid::from_raw(hook_pid) {
        let _ = rustix::process::kill_process_group(pid, Signal::KILL);
    }
    assert!(announced(&log).is_empty(), "{:?}", announced(&log));

    // The next start tells the dependents about the certificate they missed, once.
    std::fs::remove_file(&slow).unwrap();
    let mut daemon = world.daemon().spawn();
    wait_for(
        "the missed certificate announced",
        Duration::from_secs(20),
        || announced(&log).contains(&renewed).then_some(()),
    );
    daemon.terminate();
    let told = announced(&log);
    assert_eq!(
        told.iter().filter(|f| **f == renewed).count(),
        1,
        "{told:?}"
    );
    assert_eq!(current_fingerprint(&world), renewed);
}

/// An `enroll` that lands while the daemon's renewal is in flight wins: the renewal's
/// compare-and-swap finds another certificate in place, discards its own and keeps the
/// enrolled one, without counting a failure.
#[test]
fn an_enroll_racing_a_daemon_renewal_wins_and_the_renewal_is_discarded() {
    let world = World::new(Duration::from_secs(3600));
    world.write_config(&[world.compass("orders")]);
    world.enroll("orders");
    let mut daemon = world.daemon().ready();

    // The daemon's first request is held for 4 s; the enrollment's are not.
    world.sim.set_fault(
        Fault::Latency {
            delay: Duration::from_secs(4),
        },
        FaultScope::Next(1),
    );
    daemon.signal(Signal::USR1);
    wait_for(
        "the renewal to reach the connector",
        Duration::from_secs(10),
        || world.sim.active_fault().is_none().then_some(()),
    );
    world.enroll("orders");
    let enrolled = current_fingerprint(&world);

    daemon.wait_for_message("renewal discarded", Duration::from_secs(20));
    assert_eq!(
        current_fingerprint(&world),
        enrolled,
        "the enrolled certificate stays"
    );
    let files = OnDisk::read(&world.cert_dir("orders"));
    assert!(files.key_matches());
    let scrape = daemon.metrics();
    assert_eq!(
        scrape.get(
            "kyma_certd_renewals_total",
            &[("name", "orders"), ("result", "failure")]
        ),
        Some(0.0),
        "a discarded renewal is not a failure"
    );
    daemon.terminate();
}

/// Sets or clears the immutable attribute (root; `chattr` from e2fsprogs): nobody, root
/// included, can replace the file then, like on a read-only remount.
fn immutable(path: &std::path::Path, on: bool) {
    let status = std::process::Command::new("chattr")
        .arg(if on { "+i" } else { "-i" })
        .arg(path)
        .status()
        .expect("chattr runs");
    assert!(status.success(), "chattr {}", path.display());
}

/// A state.json that cannot be written does not turn the hooks into a storm: a hook that
/// succeeded is not run again, one that fails and a renewal that fails wait their
/// backoff, the daemon says so in a metric, and the record is written once the disk
/// takes it.
#[test]
fn an_unwritable_state_json_slows_the_hooks_instead_of_running_them_in_a_loop() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: making a file immutable needs root");
        return;
    }
    let world = World::new(Duration::from_secs(3600));
    let told = world.path("told");
    let failing = world.path("failing");
    let hook = |log: &std::path::Path, code: u8| {
        vec![format!(
            "command = {}",
            toml_argv(&[
                "sh",
                "-c",
                &format!("echo $KYMA_CERTD_FINGERPRINT >> \"$0\"; exit {code}"),
                log.to_str().unwrap(),
            ])
        )]
    };
    world.write_config(&[
        world.compass("orders").hook(&hook(&told, 0)),
        world.compass("billing").hook(&hook(&failing, 1)),
    ]);
    // A second enrollment replaces the first: its certificate is owed to the dependents.
    for name in ["orders", "billing"] {
        world.enroll(name);
        world.enroll(name);
    }
    let state = |name: &str| world.cert_dir(name).join("state.json");
    for name in ["orders", "billing"] {
        immutable(&state(name), true);
    }

    let mut daemon = world.daemon().ready();
    wait_for("the hooks ran", Duration::from_secs(10), || {
        (announced(&told).len() == 1 && !announced(&failing).is_empty()).then_some(())
    });
    let unwritten = |daemon: &mut Daemon, name: &str| {
        daemon
            .metrics()
            .get("kyma_certd_state_unwritten", &[("name", name)])
            .unwrap_or(-1.0)
    };
    // Said once the round's record could not be written (just after the hook ran).
    wait_for("the record kept in memory", Duration::from_secs(5), || {
        (unwritten(&mut daemon, "orders") == 1.0).then_some(())
    });
    // retry_min 1 s, retry_max 2 s: the failing hook runs at most about every second.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(announced(&told).len(), 1, "a hook that succeeded ran again");
    let failures = announced(&failing).len();
    assert!(
        (2..=6).contains(&failures),
        "the failing hook ran {failures} times in about 4 s"
    );

    // Renewals that fail while nothing can be recorded keep their backoff too, from
    // memory: retried every second or two, neither forgotten nor in a loop.
    world
        .sim
        .set_fault(Fault::InternalError, FaultScope::UntilCleared);
    daemon.signal(Signal::USR1);
    let renewals = |daemon: &mut Daemon, result: &str| {
        daemon
            .metrics()
            .get(
                "kyma_certd_renewals_total",
                &[("name", "orders"), ("result", result)],
            )
            .unwrap_or(0.0)
    };
    wait_for("a failed renewal", Duration::from_secs(10), || {
        (renewals(&mut daemon, "failure") >= 1.0).then_some(())
    });
    std::thread::sleep(Duration::from_secs(5));
    let failed = renewals(&mut daemon, "failure");
    assert!(
        (2.0..=7.0).contains(&failed),
        "{failed} failed renewals of orders in about 5 s"
    );
    assert_eq!(
        daemon.metrics().get(
            "kyma_certd_certificate_state",
            &[("name", "orders"), ("state", "backoff")]
        ),
        Some(1.0)
    );
    world.sim.clear_fault();
    wait_for("the renewal, and its hook", Duration::from_secs(10), || {
        (announced(&told).len() == 2).then_some(())
    });

    // The disk takes writes again: the record is saved and nothing runs twice.
    immutable(&state("orders"), false);
    immutable(&state("billing"), false);
    wait_for("the record saved", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(state("orders")).ok()?;
        let saved: serde_json::Value = serde_json::from_str(&text).ok()?;
        let current = current_fingerprint(&world);
        (saved["notified"]["fingerprint"] == current.as_str()
            && !saved["notified"]["delivered"].as_array()?.is_empty())
        .then_some(())
    });
    wait_for("the metric cleared", Duration::from_secs(10), || {
        (unwritten(&mut daemon, "orders") == 0.0).then_some(())
    });
    assert_eq!(announced(&told).len(), 2);
    daemon.terminate();
}
