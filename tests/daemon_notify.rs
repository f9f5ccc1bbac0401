//! `kyma-certd run` under a service manager: the `sd_notify` messages it sends to
//! `NOTIFY_SOCKET` (ready, status, watchdog, reloading, stopping), and that it runs the
//! same without one. The test plays systemd with a unix datagram socket.

mod support;

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use support::wait::eventually;
use support::world::World;

/// The receiving end of `NOTIFY_SOCKET`: every datagram with when it arrived.
struct Manager {
    messages: Arc<Mutex<Vec<(Instant, String)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Manager {
    fn bind(path: &std::path::Path) -> Manager {
        let socket = UnixDatagram::bind(path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sink, stopped) = (Arc::clone(&messages), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while !stopped.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    sink.lock().unwrap().push((Instant::now(), text));
                }
            }
        });
        Manager {
            messages,
            stop,
            thread: Some(thread),
        }
    }

    fn messages(&self) -> Vec<(Instant, String)> {
        self.messages.lock().unwrap().clone()
    }

    /// Messages carrying the assignment `line` (e.g. `READY=1`).
    fn with(&self, line: &str) -> Vec<(Instant, String)> {
        self.messages()
            .into_iter()
            .filter(|(_, m)| m.lines().any(|l| l == line))
            .collect()
    }

    /// The index of the first message carrying `line`, after index `after`.
    fn position(&self, line: &str, after: usize) -> Option<usize> {
        self.messages()
            .iter()
            .enumerate()
            .skip(after)
            .find(|(_, (_, m))| m.lines().any(|l| l == line))
            .map(|(i, _)| i)
    }

    fn wait_for(&self, line: &str, after: usize) -> usize {
        let mut found = None;
        eventually(Duration::from_secs(10), || {
            found = self.position(line, after);
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("no {line} after message {after}: {:#?}", self.messages()))
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn tells_the_service_manager_ready_status_watchdog_reloading_and_stopping() {
    let world = World::new(Duration::from_secs(20));
    world.write_config(&[world.compass("orders")]);
    world.enroll("orders");
    let socket = world.path("notify.sock");
    let manager = Manager::bind(&socket);
    let mut daemon = world
        .daemon()
        .env("NOTIFY_SOCKET", &socket)
        .env("WATCHDOG_USEC", "2000000")
        .spawn();

    // READY=1 once the first schedule is known, with a status naming it just before.
    let ready = manager.wait_for("READY=1", 0);
    let messages = manager.messages();
    let ready_after = messages[ready].0.duration_since(daemon.started);
    eprintln!("exec to READY=1 with 1 certificate: {ready_after:?}");
    let status = messages[..ready]
        .iter()
        .rev()
        .find_map(|(_, m)| m.lines().find_map(|l| l.strip_prefix("STATUS=")))
        .unwrap_or_else(|| panic!("no STATUS= before READY=1: {messages:#?}"));
    assert!(
        status.starts_with("1 certificate, next renewal orders in 1"),
        "{status}"
    );
    assert!(
        !daemon.lines_with("next renewal in").is_empty(),
        "READY=1 before the first schedule"
    );

    // WATCHDOG=1 every half of WATCHDOG_USEC.
    std::thread::sleep(Duration::from_millis(3500));
    let pings: Vec<Instant> = manager
        .with("WATCHDOG=1")
        .into_iter()
        .map(|(at, _)| at)
        .filter(|at| *at >= messages[ready].0)
        .collect();
    assert!(
        (3..=5).contains(&pings.len()),
        "{} pings in 3.5 s",
        pings.len()
    );
    for pair in pings.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        assert!(
            gap >= Duration::from_millis(800) && gap <= Duration::from_millis(1200),
            "watchdog pings {gap:?} apart"
        );
    }

    // SIGHUP: RELOADING=1 with a timestamp, then READY=1 again.
    let seen = manager.messages().len();
    daemon.signal(Signal::HUP);
    let reloading = manager.wait_for("RELOADING=1", seen);
    assert!(
        manager.messages()[reloading]
            .1
            .lines()
            .any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{:?}",
        manager.messages()[reloading]
    );
    manager.wait_for("READY=1", reloading + 1);

    // SIGTERM: STOPPING=1, then a clean exit.
    let seen = manager.messages().len();
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
    manager.wait_for("STOPPING=1", seen);
    assert!(
        daemon.lines_with("cannot notify systemd").is_empty(),
        "{}",
        daemon.log_text()
    );
}

#[test]
fn watchdog_pings_follow_watchdog_pid_and_without_a_socket_the_daemon_runs_the_same() {
    let world = World::new(Duration::from_secs(3600));
    world.write_config(&[world.compass("orders")]);
    world.enroll("orders");

    // WATCHDOG_PID names another process: READY=1, but no pings.
    let socket = world.path("notify.sock");
    let manager = Manager::bind(&socket);
    let mut daemon = world
        .daemon()
        .env("NOTIFY_SOCKET", &socket)
        .env("WATCHDOG_USEC", "1000000")
        .env("WATCHDOG_PID", "1")
        .spawn();
    manager.wait_for("READY=1", 0);
    std::thread::sleep(Duration::from_millis(2000));
    assert!(
        manager.with("WATCHDOG=1").is_empty(),
        "{:#?}",
        manager.messages()
    );
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");

    // WATCHDOG_PID names the daemon itself (set before `exec`, as systemd does): pings.
    let socket = world.path("notify-own.sock");
    let manager = Manager::bind(&socket);
    let mut daemon = world
        .daemon()
        .shell("WATCHDOG_PID=$$")
        .env("NOTIFY_SOCKET", &socket)
        .env("WATCHDOG_USEC", "1000000")
        .spawn();
    manager.wait_for("READY=1", 0);
    let pinged = eventually(Duration::from_secs(3), || {
        manager.with("WATCHDOG=1").len() >= 3
    });
    assert!(pinged, "{:#?}", manager.messages());
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");

    // No NOTIFY_SOCKET at all: the daemon runs, serves and stops (SIGINT) as usual.
    let mut daemon = world.daemon().ready();
    assert_eq!(daemon.get("/readyz").0, 200);
    daemon.signal(Signal::INT);
    let status = daemon
        .wait_exit(Duration::from_secs(3))
        .expect("exits on SIGINT");
    assert!(status.success(), "{status}");
    let warnings: Vec<String> = daemon
        .log()
        .into_iter()
        .filter(|l| l.level() == "WARN" || l.level() == "ERROR")
        .map(|l| l.text)
        .collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
}
