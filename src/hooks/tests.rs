//! Tests of the hook runner against real child processes.

use std::collections::HashMap;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use super::*;

const POLL_LIMIT: Duration = Duration::from_secs(10);

fn env_for(dir: &Path) -> HookEnv {
    HookEnv {
        name: "orders".into(),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        chain: dir.join("chain.pem"),
        ca: dir.join("ca.pem"),
        fingerprint: "ab".repeat(32),
        not_after: "2030-01-02T03:04:05Z".into(),
    }
}

fn command(args: &[&str], timeout: Duration) -> HookConfig {
    HookConfig::Command {
        argv: args.iter().map(|s| s.to_string()).collect(),
        timeout,
    }
}

fn sh(script: &str, arg: &Path, timeout: Duration) -> HookConfig {
    command(&["sh", "-c", script, "sh", arg.to_str().unwrap()], timeout)
}

/// Polls `check` every 20 ms until it holds or [`POLL_LIMIT`] passes.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + POLL_LIMIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A process that no longer runs: unknown to the kernel, or a zombie nobody reaped yet.
fn is_gone(pid: i32) -> bool {
    let Some(pid) = Pid::from_raw(pid) else {
        return true;
    };
    if rustix::process::test_kill_process(pid).is_err() {
        return true;
    }
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero()));
    stat.map(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
    .unwrap_or(true)
}

/// Kills a helper process when a test ends, also when it fails.
struct Helper(Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read_lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

#[tokio::test]
async fn signal_hook_delivers_the_signal_to_the_process_in_the_pid_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hups");
    let pid_file = dir.path().join("app.pid");
    let script = r#"trap 'echo hup >> "$1"' HUP
echo $$ > "$2.tmp" && mv "$2.tmp" "$2"
while :; do sleep 1 & wait $!; done"#;
    let _helper = Helper(
        std::process::Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(&log)
            .arg(&pid_file)
            .spawn()
            .unwrap(),
    );
    eventually("the helper's pid file", || pid_file.exists()).await;

    let hook = HookConfig::Signal {
        signal: HookSignal::Hup,
        pid_file: pid_file.clone(),
    };
    // One run at a time: two signals sent back to back may reach the shell as one.
    for handled in 1..=2 {
        let outcomes = run_hooks("orders", std::slice::from_ref(&hook), &env_for(dir.path())).await;
        assert_eq!(outcomes.len(), 1);
        assert_eq!(outcomes[0].kind, HookKind::Signal);
        assert!(outcomes[0].ok, "{:?}", outcomes[0].error);
        eventually("the HUP handled", || read_lines(&log) >= handled).await;
    }
    assert_eq!(read_lines(&log), 2);
}

#[tokio::test]
async fn signal_hook_with_a_missing_pid_file_fails_and_the_next_hook_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let hooks = [
        HookConfig::Signal {
            signal: HookSignal::Hup,
            pid_file: dir.path().join("absent.pid"),
        },
        sh("touch \"$1\"", &marker, Duration::from_secs(10)),
    ];
    let outcomes = run_hooks("orders", &hooks, &env_for(dir.path())).await;

    assert!(!outcomes[0].ok);
    let error = outcomes[0].error.as_deref().unwrap();
    assert!(error.contains("cannot read pid file"), "{error}");
    assert!(error.contains("absent.pid"), "{error}");
    assert!(outcomes[1].ok, "{:?}", outcomes[1].error);
    assert!(marker.exists());
}

#[tokio::test]
async fn signal_hook_with_a_stale_pid_file_reports_the_process_gone() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let pid_file = dir.path().join("stale.pid");
    std::fs::write(&pid_file, format!("{pid}\n")).unwrap();

    let hook = HookConfig::Signal {
        signal: HookSignal::Term,
        pid_file,
    };
    let outcomes = run_hooks("orders", &[hook], &env_for(dir.path())).await;

    assert!(!outcomes[0].ok);
    let error = outcomes[0].error.as_deref().unwrap();
    assert!(error.contains("does not exist (stale pid file)"), "{error}");
}

/// A pid file anyone may write, or one owned by a user other than root, the daemon's
/// user or the target's, could name any process: the signal is not sent.
#[tokio::test]
async fn signal_hook_refuses_a_pid_file_from_someone_who_may_not_signal_the_process() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let mut target = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid_file = dir.path().join("app.pid");
    std::fs::write(&pid_file, format!("{}\n", target.id())).unwrap();
    let hook = HookConfig::Signal {
        signal: HookSignal::Term,
        pid_file: pid_file.clone(),
    };

    std::fs::set_permissions(&pid_file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let outcomes = run_hooks("orders", std::slice::from_ref(&hook), &env_for(dir.path())).await;
    let error = outcomes[0].error.as_deref().unwrap();
    assert!(error.contains("other users may write it"), "{error}");

    std::fs::set_permissions(&pid_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    if rustix::process::geteuid().is_root() {
        // Owned by a stranger while the process runs as root.
        std::os::unix::fs::chown(&pid_file, Some(12345), None).unwrap();
        let outcomes = run_hooks("orders", std::slice::from_ref(&hook), &env_for(dir.path())).await;
        let error = outcomes[0].error.as_deref().unwrap();
        assert!(error.contains("belongs to uid 12345"), "{error}");
        std::os::unix::fs::chown(&pid_file, Some(0), None).unwrap();
    }
    assert!(
        target.try_wait().unwrap().is_none(),
        "no signal was sent so far"
    );
    // The daemon's own (or root's) pid file is trusted.
    let outcomes = run_hooks("orders", &[hook], &env_for(dir.path())).await;
    assert!(outcomes[0].ok, "{:?}", outcomes[0].error);
    let status = target.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(15)
    );
}

#[tokio::test]
async fn signal_hook_refuses_pid_files_that_do_not_name_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("", "is empty"),
        ("  \n", "is empty"),
        ("nginx", "does not hold"),
        ("0", "does not hold"),
        ("-1", "does not hold"),
        ("+1", "does not hold"),
        ("12 34", "does not hold"),
        ("99999999999", "does not hold"),
        (&"7".repeat(5000), "does not hold"),
    ];
    for (content, expected) in cases {
        let pid_file = dir.path().join("bad.pid");
        std::fs::write(&pid_file, content).unwrap();
        let hook = HookConfig::Signal {
            signal: HookSignal::Hup,
            pid_file,
        };
        let outcomes = run_hooks("orders", &[hook], &env_for(dir.path())).await;
        let error = outcomes[0].error.as_deref().unwrap_or("");
        assert!(!outcomes[0].ok, "{content:?} was accepted");
        assert!(error.contains(expected), "{content:?}: {error}");
    }
}

#[tokio::test]
async fn command_hook_receives_the_certificate_environment_and_the_inherited_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env.txt");
    let env = env_for(dir.path());
    let hook = sh("env > \"$1\"", &out, Duration::from_secs(10));

    let outcomes = run_hooks("orders", &[hook], &env).await;
    assert!(outcomes[0].ok, "{:?}", outcomes[0].error);

    let dumped = std::fs::read_to_string(&out).unwrap();
    let vars: HashMap<&str, &str> = dumped.lines().filter_map(|l| l.split_once('=')).collect();
    for (key, value) in env.vars() {
        assert_eq!(vars.get(key).copied(), value.to_str(), "{key}");
    }
    assert_eq!(vars["KYMA_CERTD_NAME"], "orders");
    assert_eq!(vars["KYMA_CERTD_NOT_AFTER"], "2030-01-02T03:04:05Z");
    assert!(
        vars.contains_key("PATH"),
        "the inherited environment is kept"
    );
}

#[tokio::test]
async fn command_hook_gets_an_empty_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let hook = command(&["sh", "-c", "cat; echo done"], Duration::from_secs(10));
    let outcomes = run_hooks("orders", &[hook], &env_for(dir.path())).await;
    assert!(outcomes[0].ok, "{:?}", outcomes[0].error);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn hook_commands_do_not_inherit_the_service_managers_variables() {
    // The variables are set on the command, not in this process: tests never change the
    // process environment. The hook's own command sees them removed all the same.
    let mut command = tokio::process::Command::new("env");
    for var in SERVICE_MANAGER_VARS {
        command.env(var, "set-by-systemd");
    }
    command.env("KEPT", "yes");
    let output = without_service_manager_env(&mut command)
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let dumped = String::from_utf8(output.stdout).unwrap();
    let names: Vec<&str> = dumped
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k)
        .collect();
    for var in SERVICE_MANAGER_VARS {
        assert!(!names.contains(&var), "{var} reached the hook: {dumped}");
    }
    assert!(
        names.contains(&"KEPT"),
        "other variables are kept: {dumped}"
    );
}

#[tokio::test]
async fn command_hook_that_hangs_is_killed_at_its_timeout_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let timeout = Duration::from_secs(1);
    let hook = sh(
        "sleep 30 & echo $$ $! > \"$1.tmp\" && mv \"$1.tmp\" \"$1\"; sleep 30",
        &pids,
        timeout,
    );

    let started = Instant::now();
    let outcomes = run_hooks("orders", &[hook], &env_for(dir.path())).await;
    let elapsed = started.elapsed();

    assert!(!outcomes[0].ok);
    let error = outcomes[0].error.as_deref().unwrap();
    assert!(
        error.contains("did not finish within 1s and was killed"),
        "{error}"
    );
    assert!(
        elapsed < timeout + Duration::from_secs(2),
        "took {elapsed:?}"
    );
    let pids: Vec<i32> = std::fs::read_to_string(&pids)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    // The hook itself was reaped by the runner: gone at once.
    assert!(is_gone(pids[0]), "the hook process survived");
    eventually("the hook's child to die", || is_gone(pids[1])).await;
}

#[tokio::test]
async fn an_abandoned_command_hook_takes_its_children_along() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let hook = sh(
        "sleep 30 & echo $$ $! > \"$1.tmp\" && mv \"$1.tmp\" \"$1\"; wait",
        &pids,
        Duration::from_secs(30),
    );
    let env = env_for(dir.path());
    let mut running = Box::pin(run_hooks("orders", std::slice::from_ref(&hook), &env));
    tokio::select! {
        _ = &mut running => panic!("the hook ended on its own"),
        () = eventually("the hook to start", || pids.exists()) => {}
    }
    // Dropped while it runs, as when the daemon stops.
    drop(running);
    let pids: Vec<i32> = std::fs::read_to_string(&pids)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    eventually("the hook to die", || is_gone(pids[0])).await;
    eventually("the hook's child to die", || is_gone(pids[1])).await;
}

#[tokio::test]
async fn command_hook_with_a_non_zero_exit_fails_with_the_status() {
    let dir = tempfile::tempdir().unwrap();
    let hook = command(
        &["sh", "-c", "echo oops >&2; exit 3"],
        Duration::from_secs(10),
    );
    let outcomes = run_hooks("orders", &[hook], &env_for(dir.path())).await;
    assert!(!outcomes[0].ok);
    assert_eq!(
        outcomes[0].error.as_deref(),
        Some("sh exited with status 3")
    );
}

#[tokio::test]
async fn command_hook_killed_by_a_signal_fails_with_the_signal() {
    let dir = tempfile::tempdir().unwrap();
    let hook = command(&["sh", "-c", "kill -TERM $$"], Duration::from_secs(10));
    let outcomes = run_hooks("orders", &[hook], &env_for(dir.path())).await;
    assert_eq!(
        outcomes[0].error.as_deref(),
        Some("sh was killed by signal 15")
    );
}

#[tokio::test]
async fn command_hook_with_a_missing_program_or_empty_argv_fails() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = [
        command(&["./no-such-program-here"], Duration::from_secs(10)),
        command(&[], Duration::from_secs(10)),
    ];
    let outcomes = run_hooks("orders", &hooks, &env_for(dir.path())).await;
    let first = outcomes[0].error.as_deref().unwrap();
    assert!(
        first.starts_with("cannot start ./no-such-program-here: "),
        "{first}"
    );
    assert_eq!(outcomes[1].error.as_deref(), Some("the command is empty"));
}

#[tokio::test]
async fn command_output_is_bounded_and_fully_drained() {
    let dir = tempfile::tempdir().unwrap();
    let argv: Vec<String> = [
        "sh",
        "-c",
        "yes 0123456789abcdef | head -c 10000000; printf 'x\\ny' >&2",
    ]
    .map(String::from)
    .to_vec();
    let env = env_for(dir.path());
    let started = Instant::now();
    let report = run_command(
        "orders",
        HookKind::Command,
        &argv,
        &env.vars(),
        Duration::from_secs(60),
    )
    .await
    .unwrap();

    assert!(report.status.success());
    assert_eq!(report.stdout.kept, OUTPUT_LIMIT);
    assert_eq!(
        report.stdout.kept as u64 + report.stdout.dropped,
        10_000_000
    );
    // 17-byte lines: 3855 complete ones and the cut-off start of the next.
    assert_eq!(report.stdout.lines, 3856);
    assert_eq!(
        report.stderr,
        Captured {
            kept: 3,
            dropped: 0,
            lines: 2
        }
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn capture_logs_lines_and_a_trailing_partial_line() {
    let input: &[u8] = b"one\r\ntwo\n\nthree";
    let captured = capture(input, "orders", HookKind::Command, Stream::Stdout).await;
    assert_eq!(
        captured,
        Captured {
            kept: input.len(),
            dropped: 0,
            lines: 4
        }
    );
}

#[test]
fn systemd_hook_asks_systemctl_to_reload_or_restart_the_unit() {
    assert_eq!(
        systemctl_argv("orders.service"),
        [
            "systemctl",
            "--no-ask-password",
            "try-reload-or-restart",
            "--",
            "orders.service"
        ]
    );
}

#[test]
fn hook_kinds_have_the_metric_labels() {
    let labels: Vec<_> = HookKind::ALL.iter().map(|k| k.as_label()).collect();
    assert_eq!(labels, ["signal", "systemd", "command"]);
    let unit = HookConfig::SystemdUnit {
        unit: "x.service".into(),
        timeout: Duration::from_secs(1),
    };
    assert_eq!(HookKind::of(&unit), HookKind::Systemd);
}
