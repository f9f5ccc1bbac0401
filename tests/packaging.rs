//! The packaging checks as part of `cargo test`: the systemd unit's security score and
//! `systemd-analyze verify`, the Prometheus alert rules and their promtool unit tests, the
//! Grafana dashboard's queries, and the Kubernetes example against the real binary's
//! `check-config`.

use std::path::Path;
use std::process::Command;

fn run(script: &str, args: &[&str]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join(script))
        .args(args)
        .current_dir(root)
        .output()
        .expect("bash runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script} failed:\n{text}");
    text
}

#[test]
fn the_systemd_unit_verifies_and_scores_at_most_two() {
    let text = run("systemd/check.sh", &[]);
    println!("{text}");
    assert!(
        text.to_lowercase().contains("exposure"),
        "prints the score: {text}"
    );
}

#[test]
fn the_alert_rules_check_and_their_unit_tests_pass() {
    let text = run("packaging/prometheus/check.sh", &[]);
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn the_grafana_dashboard_queries_parse() {
    run("packaging/grafana/check.sh", &[]);
}

#[test]
fn the_kubernetes_example_config_passes_check_config() {
    run(
        "packaging/kubernetes/check.sh",
        &[env!("CARGO_BIN_EXE_kyma-certd")],
    );
}
