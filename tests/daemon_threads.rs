//! The daemon's threads: however many certificates it starts with, start-up recovery, key
//! generation and durable writes share a small blocking pool sized by
//! `max_concurrent_renewals`, and that pool runs at a lower priority than the event loop.

#[path = "support/bin.rs"]
mod bin;

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running daemon; killed if the test fails before stopping it.
struct Daemon {
    child: Child,
    _folder: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// `run` with `certificates` empty certificate directories, once it logged `ready`.
    fn start(certificates: usize, max_concurrent_renewals: usize) -> Daemon {
        let folder = tempfile::tempdir().unwrap();
        let mut config = format!(
            "[daemon]\nmax_concurrent_renewals = {max_concurrent_renewals}\n\n[metrics]\nlisten = \"\"\n\n"
        );
        for i in 0..certificates {
            let dir = folder.path().join(format!("c{i:02}"));
            std::fs::create_dir(&dir).unwrap();
            config += &format!(
                "[[certificate]]\nname = \"c{i:02}\"\nprotocol = \"compass\"\ndir = {:?}\n\n",
                dir.to_str().unwrap()
            );
        }
        let config_path = folder.path().join("config.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut child = bin::run_with_piped_log(&config_path);
        let stderr = child.stderr.take().unwrap();
        let daemon = Daemon {
            child,
            _folder: folder,
        };
        let (lines_tx, lines) = mpsc::channel();
        // Drains stderr for the daemon's whole life, also after `ready` was seen.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines
                .recv_timeout(left)
                .expect("the daemon logs `ready` within 30 s");
            if line.contains(" ready") {
                return daemon;
            }
        }
    }

    /// (thread name, nice value) of every thread, the event loop (the main thread) first.
    fn threads(&self) -> Vec<(String, i32)> {
        let pid = self.child.id();
        let mut threads = Vec::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
            let task = task.unwrap();
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue; // The thread ended meanwhile.
            };
            // "tid (comm) state ...": the name may hold spaces; the fields after it are plain.
            let open = stat.find('(').unwrap();
            let close = stat.rfind(')').unwrap();
            let name = stat[open + 1..close].to_owned();
            let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
            // Field 19 of stat is the nice value; `fields` starts at field 3.
            let nice: i32 = fields[16].parse().unwrap();
            let main = task.file_name().to_str() == Some(pid.to_string().as_str());
            threads.push((main, name, nice));
        }
        threads.sort_by_key(|(main, _, _)| !*main);
        threads
            .into_iter()
            .map(|(_, name, nice)| (name, nice))
            .collect()
    }

    fn stop(mut self) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "the daemon exited with {status} after SIGTERM"
        );
    }
}

#[test]
fn daemon_with_many_certificates_starts_with_a_bounded_number_of_threads() {
    const CERTIFICATES: usize = 64;
    const MAX_CONCURRENT_RENEWALS: usize = 2;
    let daemon = Daemon::start(CERTIFICATES, MAX_CONCURRENT_RENEWALS);

    // Idle blocking threads live on for 10 s, so every thread start-up needed is still
    // there. Fixed threads: the event loop and the file watcher (one spare allowed).
    let threads = daemon.threads().len();
    let bound = MAX_CONCURRENT_RENEWALS + 2 + 3;
    assert!(
        threads <= bound,
        "{threads} threads for {CERTIFICATES} certificates; expected at most {bound}"
    );
    daemon.stop();
}

#[test]
fn blocking_threads_run_at_a_lower_priority_than_the_event_loop() {
    let daemon = Daemon::start(8, 2);

    let threads = daemon.threads();
    let (_, event_loop) = threads[0].clone();
    let blocking: Vec<&(String, i32)> = threads
        .iter()
        .filter(|(name, _)| name.starts_with("tokio-r"))
        .collect();
    assert!(
        !blocking.is_empty(),
        "start-up recovery ran on blocking threads: {threads:?}"
    );
    for (name, nice) in blocking {
        assert!(
            *nice >= (event_loop + 10).min(19),
            "{name} runs at nice {nice}, the event loop at {event_loop}: {threads:?}"
        );
    }
    daemon.stop();
}
