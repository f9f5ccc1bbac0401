//! Tests of the hook runner as a whole: hooks run in order, a failing one does not stop
//! the next, and each kind has its metric label.

use std::time::Duration;

use super::*;
use testutil::{env_for, sh};

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
