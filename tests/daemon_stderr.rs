//! A daemon whose standard error goes away (a log collector that stops reading, a closed
//! pipe) keeps running: logging fails quietly, it never takes the process down.

#[path = "support/bin.rs"]
mod bin;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

#[test]
fn daemon_keeps_running_after_its_stderr_is_closed() {
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path().join("orders");
    std::fs::create_dir(&dir).unwrap();
    let config_path = folder.path().join("config.toml");
    std::fs::write(
        &config_path,
        format!(
            "[metrics]\nlisten = \"\"\n\n[[certificate]]\nname = \"orders\"\nprotocol = \"compass\"\ndir = {:?}\n",
            dir.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut child = bin::run_with_piped_log(&config_path);
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();

    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains(" ready") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the daemon logs `ready`"
        );
    }
    drop(stderr);

    // Each SIGHUP logs a few lines into the closed pipe.
    for _ in 0..3 {
        rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the daemon exited with {status} after logging into a closed pipe");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "the daemon exited with {status} after SIGTERM"
    );
}
