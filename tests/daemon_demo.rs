//! `kyma-certd demo`: the built-in simulator and the daemon in a temporary folder, for
//! both protocols. What a new user sees must be there: the enrollment, the schedule,
//! renewals old → new, the hook, a metrics URL that answers; then a clean exit that
//! leaves nothing behind.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::http::http_get;
use support::invoke::Invocation;
use support::wait::{eventually, try_wait_for};

fn demo(protocol: &str) {
    let started = Instant::now();
    // The test reads the narration as it comes.
    let mut child = Invocation::new(&[
        "demo",
        "--duration",
        "40s",
        "--validity",
        "20s",
        "--protocol",
        protocol,
    ])
    .command()
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start the demo");
    let output = Arc::new(Mutex::new(String::new()));
    let readers: Vec<_> = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|stream| {
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        })
    })
    .collect();
    let text = || output.lock().unwrap().clone();

    // The metrics URL it prints answers while the demo runs.
    let mut metrics_url = None;
    eventually(Duration::from_secs(20), || {
        metrics_url = text()
            .lines()
            .find_map(|l| l.strip_prefix("metrics: curl http://"))
            .and_then(|rest| rest.split('/').next())
            .and_then(|addr| addr.parse::<std::net::SocketAddr>().ok());
        metrics_url.is_some()
    });
    let addr = metrics_url.unwrap_or_else(|| panic!("no metrics URL printed:\n{}", text()));
    let first = http_get(addr, "/metrics", &[]);
    assert_eq!(first.status, 200);
    assert!(
        first.body.contains("kyma_certd_build_info"),
        "{}",
        first.body
    );
    let valid = eventually(Duration::from_secs(5), || {
        http_get(addr, "/metrics", &[])
            .body
            .contains("kyma_certd_certificate_state{name=\"demo\",state=\"valid\"} 1")
    });
    assert!(valid, "{}", http_get(addr, "/metrics", &[]).body);

    let status = child.wait().expect("wait for the demo");
    let took = started.elapsed();
    for reader in readers {
        reader.join().unwrap();
    }
    let out = text();
    assert!(status.success(), "demo exited with {status}:\n{out}");
    assert!(
        took >= Duration::from_secs(40) && took < Duration::from_secs(50),
        "the demo ran {took:?}"
    );
    eprintln!("demo --protocol {protocol}: {took:?}");

    assert!(
        out.contains(&format!("connector simulator ({protocol})")),
        "{out}"
    );
    assert!(out.contains("enrolled with a one-time token"), "{out}");
    assert!(out.contains("next renewal in"), "{out}");
    // One readable line per renewal: short fingerprints, a time of day.
    let renewed: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(" renewed ") && l.contains(" -> "))
        .collect();
    assert!(
        renewed.len() >= 2,
        "fewer than two renewals in 40 s:\n{out}"
    );
    for line in &renewed {
        assert!(is_renewal_line(line), "not a one-line renewal: {line:?}");
    }
    // Each hook run is one line, with what the hook printed.
    let hook_runs = out
        .lines()
        .filter(|l| l.contains(" hook ran (command): the application would reload now: demo is "))
        .count();
    assert!(hook_runs >= renewed.len(), "{out}");
    assert!(
        out.contains(&format!(
            "demo finished: {} renewal(s) with hook runs",
            renewed.len()
        )),
        "{out}"
    );
    // The full log is a flag away, not in the way: no log records, no long fingerprints.
    assert!(!out.contains(" INFO "), "the full log is shown:\n{out}");
    assert!(
        !out.split(|c: char| !c.is_ascii_hexdigit())
            .any(|w| w.len() > 8),
        "a long fingerprint in the narration:\n{out}"
    );
    assert!(!out.contains("-----BEGIN"), "a PEM body in the output");
    assert!(!out.contains("token="), "a token in the output");

    let folder: PathBuf = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("working folder:"))
        .map(|p| PathBuf::from(p.trim()))
        .unwrap_or_else(|| panic!("no working folder printed:\n{out}"));
    assert!(
        folder.is_absolute() && !folder.exists(),
        "{} was left behind",
        folder.display()
    );
}

/// `HH:MM:SS renewed 0123abcd -> 4567cdef, valid until HH:MM:SS`
fn is_renewal_line(line: &str) -> bool {
    let words: Vec<&str> = line.split(' ').collect();
    let clock = |w: &str| {
        w.len() == 8
            && w.split(':')
                .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()))
    };
    let short = |w: &str| w.len() == 8 && w.bytes().all(|b| b.is_ascii_hexdigit());
    matches!(
        words.as_slice(),
        [at, "renewed", old, "->", new, "valid", "until", until]
            if clock(at) && short(old) && new.strip_suffix(',').is_some_and(short) && clock(until)
    )
}

#[test]
fn demo_with_compass_shows_enrollment_renewals_hooks_and_metrics_then_cleans_up() {
    demo("compass");
}

#[test]
fn demo_with_kyma_rest_shows_enrollment_renewals_hooks_and_metrics_then_cleans_up() {
    demo("kyma-rest");
}

/// `--verbose` shows the daemon's full log instead of the narration.
#[test]
fn demo_verbose_shows_the_full_log() {
    let output =
        Invocation::new(&["demo", "--verbose", "--duration", "5s", "--validity", "20s"]).run();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let record = stderr
        .lines()
        .find(|l| l.contains(" INFO ") && l.contains("next renewal in"))
        .unwrap_or_else(|| panic!("no full log record of the schedule:\n{stderr}"));
    assert!(record.contains("next_renewal="), "{record}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("one line per event below"), "{stdout}");
}

/// A terminal that closes sends SIGHUP and takes stdout with it: the demo must stop, and
/// remove its folder and its simulator, instead of running on in the background.
#[test]
fn demo_stops_and_removes_its_folder_when_its_terminal_closes() {
    let mut child = Invocation::new(&["demo", "--validity", "20s"])
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the demo");
    // The narration up to the metrics line (the daemon runs then); the reader thread ends
    // there and closes the pipe, as a vanished terminal would.
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let running = line.starts_with("metrics: curl");
            seen.push(line);
            if running {
                break;
            }
        }
        let _ = lines_tx.send(seen);
    });
    let narration = lines_rx.recv_timeout(Duration::from_secs(30));
    let Ok(narration) = narration else {
        let _ = child.kill();
        panic!("the demo printed no metrics line within 30 s");
    };
    let folder: PathBuf = narration
        .iter()
        .find_map(|l| l.trim().strip_prefix("working folder:"))
        .map(|p| PathBuf::from(p.trim()))
        .unwrap_or_else(|| panic!("no working folder printed: {narration:?}"));
    assert!(
        folder.is_dir(),
        "{} does not exist while running",
        folder.display()
    );

    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).expect("send SIGHUP");
    let status = try_wait_for(Duration::from_secs(20), || child.try_wait().unwrap());
    let Some(status) = status else {
        let _ = child.kill();
        panic!("the demo still runs 20 s after SIGHUP");
    };
    assert!(
        status.success(),
        "the demo exited with {status} after SIGHUP"
    );
    assert!(!folder.exists(), "{} was left behind", folder.display());
}
