//! The daemon's thread count stays bounded however many certificates it starts with:
//! start-up recovery, key generation and durable writes share a small blocking pool
//! sized by `max_concurrent_renewals`, instead of one thread per certificate.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Kills the daemon if the test fails before stopping it.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn threads_of(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn daemon_with_many_certificates_starts_with_a_bounded_number_of_threads() {
    const CERTIFICATES: usize = 64;
    const MAX_CONCURRENT_RENEWALS: usize = 2;
    let folder = tempfile::tempdir().unwrap();
    let mut config = format!(
        "[daemon]\nmax_concurrent_renewals = {MAX_CONCURRENT_RENEWALS}\n\n[metrics]\nlisten = \"\"\n\n"
    );
    for i in 0..CERTIFICATES {
        let dir = folder.path().join(format!("c{i:02}"));
        std::fs::create_dir(&dir).unwrap();
        config += &format!(
            "[[certificate]]\nname = \"c{i:02}\"\nprotocol = \"compass\"\ndir = {:?}\n\n",
            dir.to_str().unwrap()
        );
    }
    let config_path = folder.path().join("config.toml");
    std::fs::write(&config_path, config).unwrap();

    let mut daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_kyma-certd"))
            .arg("--config")
            .arg(&config_path)
            .arg("run")
            .env_remove("NOTIFY_SOCKET")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = daemon.0.stderr.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("the daemon logs `ready` within 30 s");
        if line.contains(" ready") {
            break;
        }
    }

    // Idle blocking threads live on for 10 s, so every thread start-up needed is still
    // there. Fixed threads: the event loop and the file watcher (one spare allowed).
    let threads = threads_of(daemon.0.id());
    let bound = MAX_CONCURRENT_RENEWALS + 2 + 3;
    assert!(
        threads <= bound,
        "{threads} threads for {CERTIFICATES} certificates; expected at most {bound}"
    );

    let pid = rustix::process::Pid::from_raw(daemon.0.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = daemon.0.wait().unwrap();
    assert!(
        status.success(),
        "the daemon exited with {status} after SIGTERM"
    );
}
