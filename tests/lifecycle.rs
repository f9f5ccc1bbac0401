//! The daemon's lifecycle at its edges: a SIGHUP or a SIGTERM while a hook runs, two
//! certificates whose files share a directory, health checks while stalled clients hold
//! the metrics port, and the systemd unit's stop timeout against the daemon's own bound.
//! The real binary against the in-process simulator over TLS.

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use kyma_certd::daemon::{DRAIN, STOP_BOUND};
use rustix::process::Signal;
use support::http::try_http_get;
use support::running::Daemon;
use support::scrape::Scrape;
use support::wait::{eventually, wait_for};
use support::world::{CertSpec, World, toml_argv, toml_path};

/// Long enough that nothing is due during a test: every renewal is one the test asked for.
const LONG: Duration = Duration::from_secs(3600);

/// How long the slow hook sleeps when nobody stops it.
const HOOK_SLEEP: Duration = Duration::from_secs(3);

fn spec(world: &World, name: &str) -> CertSpec {
    world.compass(name).with("renew_at = \"30%\"")
}

/// A hook whose shell and `sleep` (one process group) append their pids to `pids`, and
/// which appends "done" to `pids.done` if it is allowed to finish.
fn slow_hook(pids: &Path) -> Vec<String> {
    let script = format!(
        r#"echo $$ >> "$0"; sleep {} & echo $! >> "$0"; wait; echo done >> "$0.done""#,
        HOOK_SLEEP.as_secs()
    );
    vec![
        format!(
            "command = {}",
            toml_argv(&["sh", "-c", &script, pids.to_str().unwrap()])
        ),
        "timeout = \"30s\"".to_owned(),
    ]
}

/// Renews every certificate now and waits until the slow hook's two processes run.
/// A daemon with one certificate, "orders", whose renewal is in its slow hook.
fn running_in_the_slow_hook(world: &World, pids: &Path) -> (Daemon, Vec<String>, Instant) {
    world.write_config(&[spec(world, "orders").hook(&slow_hook(pids))]);
    world.enroll("orders");
    let daemon = world.daemon().ready();
    let (hook_pids, started) = renew_into_the_slow_hook(&daemon, pids);
    (daemon, hook_pids, started)
}

fn renew_into_the_slow_hook(daemon: &Daemon, pids: &Path) -> (Vec<String>, Instant) {
    daemon.signal(Signal::USR1);
    let found = wait_for("the hook to start", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(pids).ok()?;
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        (lines.len() == 2).then_some(lines)
    });
    (found, Instant::now())
}

/// Whether process `pid` is gone (or a zombie whose parent has not reaped it yet).
fn process_gone(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next())
                == Some("Z")
        })
        .unwrap_or(true)
}

/// Waits until every pid is gone; returns when that was seen.
fn wait_gone(pids: &[String]) -> Instant {
    wait_for(
        "the hook's processes to go",
        Duration::from_secs(10),
        || pids.iter().all(|p| process_gone(p)).then(Instant::now),
    )
}

/// The bytes and modification time of `path`.
fn snapshot(path: &Path) -> (Vec<u8>, SystemTime) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let modified = std::fs::metadata(path).unwrap().modified().unwrap();
    (bytes, modified)
}

/// Scrapes until `until`, failing as soon as `trace` finds something in a scrape.
fn never_until(daemon: &mut Daemon, until: Instant, trace: impl Fn(&Scrape) -> bool) {
    while Instant::now() < until {
        let scrape = daemon.metrics();
        assert!(!trace(&scrape), "a stopped task wrote:\n{}", scrape.text);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sighup_removing_a_certificate_during_its_hook_kills_the_hook_and_leaves_no_trace() {
    let world = World::new(LONG);
    let pids = world.path("hook.pids");
    world.write_config(&[
        spec(&world, "orders").hook(&slow_hook(&pids)),
        spec(&world, "billing"),
    ]);
    world.enroll("orders");
    world.enroll("billing");
    let mut daemon = world.daemon().ready();
    let (hook_pids, hook_started) = renew_into_the_slow_hook(&daemon, &pids);
    let state_file = world.cert_dir("orders").join("state.json");
    let state_before = snapshot(&state_file);

    world.write_config(&[spec(&world, "billing")]);
    daemon.signal(Signal::HUP);
    let removed = daemon.wait_for_line("orders removed", Duration::from_secs(5), |l| {
        l.message() == "certificate removed from the configuration" && l.field("name") == "orders"
    });
    let gone_after = wait_gone(&hook_pids).saturating_duration_since(removed.seen);
    eprintln!("the removed certificate's hook was gone {gone_after:?} after the reload");
    assert!(
        gone_after <= DRAIN,
        "the hook outlived the drain: {gone_after:?}"
    );

    // Past the time the hook would have ended: nothing of the old task comes back.
    let would_have_ended = hook_started + HOOK_SLEEP + Duration::from_secs(1);
    never_until(&mut daemon, would_have_ended, |scrape| {
        scrape.mentions("orders")
    });
    assert!(
        !world.path("hook.pids.done").exists(),
        "the hook ran to its end"
    );
    assert_eq!(
        snapshot(&state_file),
        state_before,
        "state.json was written after the certificate was removed"
    );
    assert_eq!(daemon.metrics().state("billing").as_deref(), Some("valid"));
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}

#[test]
fn sighup_changing_a_certificate_during_its_hook_restarts_it_without_the_old_hook() {
    let world = World::new(LONG);
    let pids = world.path("hook.pids");
    let (mut daemon, hook_pids, hook_started) = running_in_the_slow_hook(&world, &pids);

    // The new version has another policy and no hook: any hook outcome recorded from now
    // on could only come from the old task.
    world.write_config(&[world.compass("orders").with("renew_at = \"25%\"")]);
    daemon.signal(Signal::HUP);
    let changed = daemon.wait_for_line("orders restarted", Duration::from_secs(5), |l| {
        l.message()
            .contains("certificate changed in the configuration")
            && l.field("name") == "orders"
    });
    let gone_after = wait_gone(&hook_pids).saturating_duration_since(changed.seen);
    eprintln!("the changed certificate's old hook was gone {gone_after:?} after the reload");
    assert!(
        gone_after <= DRAIN,
        "the hook outlived the drain: {gone_after:?}"
    );

    let labels = [("name", "orders")];
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
        let lifetime = LONG.as_secs_f64();
        // 25% of the lifetime, less up to 5% jitter.
        matches!((nb, next), (Some(nb), Some(next))
            if next >= nb + 0.20 * lifetime - 1.0 && next <= nb + 0.25 * lifetime + 1.0)
    });
    assert!(rescheduled, "{}", daemon.metrics().text);
    let state_file = world.cert_dir("orders").join("state.json");
    let state_before = snapshot(&state_file);

    let would_have_ended = hook_started + HOOK_SLEEP + Duration::from_secs(1);
    // Hook counters start at zero for every certificate: any run would count.
    never_until(&mut daemon, would_have_ended, |scrape| {
        scrape
            .matching("kyma_certd_hook_runs_total", &labels)
            .iter()
            .any(|sample| sample.value != 0.0)
    });
    assert!(
        !world.path("hook.pids.done").exists(),
        "the old hook ran to its end"
    );
    assert_eq!(
        snapshot(&state_file),
        state_before,
        "state.json was written after the restarted task settled"
    );
    assert_eq!(daemon.metrics().state("orders").as_deref(), Some("valid"));
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}

#[test]
fn sigterm_during_a_hook_exits_cleanly_within_the_stop_bound_and_kills_the_hook() {
    let world = World::new(LONG);
    let pids = world.path("hook.pids");
    let (mut daemon, hook_pids, _) = running_in_the_slow_hook(&world, &pids);

    let (status, took) = daemon.terminate();
    eprintln!("SIGTERM during a hook: exited in {took:?} with {status}");
    assert!(status.success(), "{status}");
    assert!(took < STOP_BOUND, "took {took:?}, more than {STOP_BOUND:?}");
    let exited = Instant::now();
    let gone_after = wait_gone(&hook_pids).saturating_duration_since(exited);
    assert!(
        gone_after <= DRAIN,
        "the hook outlived the daemon by {gone_after:?}"
    );
    assert!(
        !world.path("hook.pids.done").exists(),
        "the hook ran to its end"
    );
    daemon.wait_for_message("the running hook was interrupted", Duration::ZERO);
}

/// A `[[certificate]]` in the files layout with its four files in `shared`.
fn files_in(world: &World, shared: &Path, name: &str) -> CertSpec {
    let mut spec = spec(world, name).with("layout = \"files\"");
    for (key, suffix) in consumer_files() {
        spec = spec.with(format!(
            "{key} = {}",
            toml_path(&shared.join(format!("{name}{suffix}")))
        ));
    }
    spec
}

fn consumer_files() -> [(&'static str, &'static str); 4] {
    [
        ("cert_file", ".crt"),
        ("key_file", ".key"),
        ("chain_file", "-chain.pem"),
        ("ca_file", "-ca.pem"),
    ]
}

fn file_paths(shared: &Path, name: &str) -> Vec<PathBuf> {
    consumer_files()
        .iter()
        .map(|(_, suffix)| shared.join(format!("{name}{suffix}")))
        .collect()
}

#[test]
fn two_certificates_with_files_in_one_directory_are_both_rescheduled_by_a_change_there() {
    let world = World::new(LONG);
    let shared = world.path("ssl");
    let names = ["orders", "billing"];
    world.write_config(&names.map(|n| files_in(&world, &shared, n)));
    // A first enrollment of each is kept as a backup, a second one is current.
    let mut backups = Vec::new();
    for name in names {
        let first = world.enroll(name);
        let copies: Vec<(PathBuf, Vec<u8>)> = file_paths(&shared, name)
            .into_iter()
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap();
                (p, bytes)
            })
            .collect();
        backups.push((name, first, copies));
        world.enroll(name);
    }
    let mut daemon = world.daemon().ready();

    // Configuration management restores both from the backup: renames into the shared
    // directory only, nothing in either certificate's own `dir`.
    let restored_at = Instant::now();
    for (_, _, copies) in &backups {
        for (path, bytes) in copies {
            let temporary = path.with_extension("restore-tmp");
            std::fs::write(&temporary, bytes).unwrap();
            std::fs::rename(&temporary, path).unwrap();
        }
    }
    for (name, first, _) in &backups {
        let line = daemon.wait_for_line(
            &format!("{name} noticed the restore"),
            Duration::from_secs(3),
            |l| {
                l.cert() == Some(*name)
                    && l.message().contains("replaced on disk")
                    && l.field("fingerprint") == first.as_str()
            },
        );
        let noticed = line.seen.saturating_duration_since(restored_at);
        eprintln!("{name}: a change in the shared directory was noticed after {noticed:?}");
        assert!(
            noticed < Duration::from_secs(1),
            "{name} noticed after {noticed:?}"
        );
    }
    for (name, first, _) in &backups {
        assert_eq!(world.status(name)["fingerprint_sha256"], first.as_str());
    }
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}

/// Opens `n` connections that send the start of a request head and then nothing.
fn stalled_clients(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).expect("connect");
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: stalled\r\nX-Stall: ")
                .expect("partial head");
            stream
        })
        .collect()
}

#[test]
fn healthz_and_readyz_answer_within_a_second_while_100_clients_stall() {
    let world = World::new(LONG);
    world.write_config(&[spec(&world, "orders")]);
    world.enroll("orders");
    let mut daemon = world.daemon().ready();
    let addr = daemon.metrics_addr();

    // More than the connection limit (64), each holding its connection for the whole
    // header timeout (5 s) unless the server makes room.
    let stalled = stalled_clients(addr, 100);
    let started = Instant::now();
    for round in 0..3 {
        for (path, status) in [("/healthz", 200), ("/readyz", 200), ("/metrics", 200)] {
            let asked = Instant::now();
            let response = try_http_get(addr, path, &[], Duration::from_secs(1))
                .unwrap_or_else(|e| panic!("{path} in round {round}: {e}"));
            let took = asked.elapsed();
            eprintln!(
                "{path} with 100 stalled clients: {} in {took:?}",
                response.status
            );
            assert_eq!(response.status, status, "{path}: {}", response.body);
            assert!(took < Duration::from_secs(1), "{path} took {took:?}");
        }
    }
    // All of it happened while the stalled clients were still within their header time.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    drop(stalled);
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}

/// `TimeoutStopSec=` of the shipped unit.
fn unit_stop_timeout() -> Duration {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/kyma-certd.service");
    let text = std::fs::read_to_string(&unit).expect("read the systemd unit");
    let value = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("TimeoutStopSec="))
        .expect("the unit sets TimeoutStopSec=");
    // systemd reads a bare number as seconds.
    match value.trim().parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(value.trim())
            .unwrap_or_else(|e| panic!("TimeoutStopSec={value}: {e}")),
    }
}

#[test]
fn the_units_stop_timeout_agrees_with_the_daemons_stop_bound() {
    let timeout = unit_stop_timeout();
    // Room for a clean stop on a loaded host, so systemd never SIGKILLs one...
    assert!(
        timeout >= STOP_BOUND * 3,
        "TimeoutStopSec={timeout:?} leaves too little room for a clean stop ({STOP_BOUND:?})"
    );
    // ...and no more than needed, so that a stop hung on a dead disk ends promptly.
    assert!(
        timeout <= STOP_BOUND * 10,
        "TimeoutStopSec={timeout:?} waits far longer than a stop takes ({STOP_BOUND:?})"
    );
    assert!(DRAIN < STOP_BOUND);
}
