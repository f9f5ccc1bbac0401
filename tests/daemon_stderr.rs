//! A daemon whose standard error goes away (a log collector that stops reading, a closed
//! pipe) keeps running: logging fails quietly, it never takes the process down.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::world::{Settings, World};

#[test]
fn daemon_keeps_running_after_its_stderr_is_closed() {
    let world = World::with(Settings::one_shot(), Duration::from_secs(3600));
    world.write_config(&[world.compass("orders")]);
    std::fs::create_dir_all(world.cert_dir("orders")).unwrap();
    // The test holds the read end of the pipe itself, to close it.
    let mut command = world.daemon().env("RUST_LOG", "info").command();
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("kyma-certd run starts");
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
