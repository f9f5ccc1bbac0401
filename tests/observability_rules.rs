//! The alert rules in `packaging/prometheus/`: `check.sh` (promtool check and unit tests,
//! annotations, runbook anchors, metric names) runs under `cargo test`, and a unit test
//! generated here proves that the expiring-soon alert fires for a certificate with little
//! time left and stays quiet for a fresh one.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::invoke::describe;
use support::tools::prometheus_installed;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn alerts_file() -> PathBuf {
    repo().join("packaging/prometheus/alerts.yml")
}

#[test]
fn alert_rules_pass_check_sh_with_their_unit_tests() {
    if !prometheus_installed("promtool") {
        return;
    }
    let out = Command::new("bash")
        .arg(repo().join("packaging/prometheus/check.sh"))
        .output()
        .expect("bash runs check.sh");
    assert!(out.status.success(), "check.sh failed: {}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Unit Testing:  alerts.test.yml\n  SUCCESS"),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with("PASS"), "{stdout}");
}

#[test]
fn the_hand_written_unit_tests_include_a_firing_expiring_soon_case() {
    let tests = std::fs::read_to_string(repo().join("packaging/prometheus/alerts.test.yml"))
        .expect("alerts.test.yml");
    let firing = tests
        .split("alertname: KymaCertdCertificateExpiringSoon")
        .skip(1)
        .any(|case| {
            let case = case.split("- eval_time:").next().unwrap_or_default();
            case.contains("exp_alerts:\n") && case.contains("severity: warning")
        });
    assert!(
        firing,
        "alerts.test.yml has no case where the expiring alert fires"
    );
}

const DAY: i64 = 86_400;
const LABELS: &str = r#"job="kyma-certd",instance="host:9467""#;

/// A promtool unit test file for `alerts.yml`: two 92-day certificates, `soon` with two
/// days left at minute 20 and `fresh` with sixty; `expected` is the alert list expected
/// at minute 20.
fn expiring_test(expected: &str) -> String {
    let lifetime = 92 * DAY;
    let mut series = String::new();
    for (name, not_after) in [("soon", 2 * DAY + 20 * 60), ("fresh", 60 * DAY)] {
        let not_before = not_after - lifetime;
        series.push_str(&format!(
            "      - series: 'kyma_certd_certificate_not_before_timestamp_seconds{{{LABELS},name=\"{name}\"}}'\n        values: \"{not_before}x40\"\n\
             \x20     - series: 'kyma_certd_certificate_not_after_timestamp_seconds{{{LABELS},name=\"{name}\"}}'\n        values: \"{not_after}x40\"\n"
        ));
    }
    format!(
        "rule_files:\n  - {rules}\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n{series}    alert_rule_test:\n\
         \x20     - eval_time: 10m\n        alertname: KymaCertdCertificateExpiringSoon\n        exp_alerts: []\n\
         \x20     - eval_time: 20m\n        alertname: KymaCertdCertificateExpiringSoon\n        exp_alerts:{expected}\n",
        rules = alerts_file().display()
    )
}

const SOON_FIRES: &str = r#"
          - exp_labels:
              severity: warning
              job: kyma-certd
              instance: host:9467
              name: soon
            exp_annotations:
              summary: "Certificate soon expires in 2d 0h 0m 0s"
              description: "The client certificate soon on host:9467 expires in 2d 0h 0m 0s and has not been renewed. Once it expires, only a new one-time token can replace it."
              runbook_url: "https://github.com/kyma-certd/kyma-certd/blob/main/docs/operations.md#certificate-expiring-soon""#;

fn promtool_test(dir: &Path, file: &str, text: &str) -> Output {
    let path = dir.join(file);
    std::fs::write(&path, text).expect("test file");
    Command::new("promtool")
        .args(["test", "rules"])
        .arg(&path)
        .output()
        .expect("promtool runs")
}

#[test]
fn expiring_soon_alert_fires_for_a_certificate_with_two_days_left_and_not_for_a_fresh_one() {
    if !prometheus_installed("promtool") {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    let out = promtool_test(dir.path(), "fires.test.yml", &expiring_test(SOON_FIRES));
    assert!(
        out.status.success(),
        "the alert must fire for `soon` only: {}",
        describe(&out)
    );

    // The check has teeth: expecting silence, or the fresh certificate too, fails.
    let out = promtool_test(dir.path(), "silent.test.yml", &expiring_test(" []"));
    assert!(!out.status.success(), "{}", describe(&out));
    let both = SOON_FIRES.to_owned() + &SOON_FIRES.replace("name: soon", "name: fresh");
    let out = promtool_test(dir.path(), "both.test.yml", &expiring_test(&both));
    assert!(!out.status.success(), "{}", describe(&out));
}
