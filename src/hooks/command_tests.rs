//! Tests of the command and systemd hooks against real child processes: their
//! environment, their timeout, their process group and their output.

use std::collections::HashMap;
use std::time::Instant;

use rustix::process::Pid;

use super::*;
use crate::hooks::run_hooks;
use crate::hooks::testutil::{command, env_for, eventually, sh};

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
