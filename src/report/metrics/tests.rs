//! Tests of the metrics: each event's effect on the encoded text, and the text formats.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::UNIX_EPOCH;

use super::*;
use crate::report::format::Format;

/// The encoded text, as a string.
fn encoded(metrics: &Metrics, format: Format) -> String {
    String::from_utf8(metrics.encode(format).to_vec()).expect("the encoding is UTF-8")
}

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Sample lines of a text exposition, keyed by the series as written (name and labels).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
            (series.to_owned(), value.parse().expect("a numeric value"))
        })
        .collect()
}

fn value(metrics: &Metrics, series: &str) -> Option<f64> {
    samples(&encoded(metrics, Format::Classic))
        .get(series)
        .copied()
}

fn state_values(metrics: &Metrics, name: &str) -> Vec<(&'static str, f64)> {
    CertState::ALL
        .iter()
        .map(|state| {
            let series = format!(
                "kyma_certd_certificate_state{{name=\"{name}\",state=\"{}\"}}",
                state.as_str()
            );
            (state.as_str(), value(metrics, &series).unwrap_or(f64::NAN))
        })
        .collect()
}

#[test]
fn a_fresh_registry_has_build_info_and_zero_reloads_but_no_certificates() {
    let metrics = Metrics::new("1.2.3");
    let s = samples(&encoded(&metrics, Format::Classic));
    assert_eq!(s["kyma_certd_build_info{version=\"1.2.3\"}"], 1.0);
    assert_eq!(
        s["kyma_certd_config_reloads_total{result=\"success\"}"],
        0.0
    );
    assert_eq!(
        s["kyma_certd_config_reloads_total{result=\"failure\"}"],
        0.0
    );
    assert!(!s.keys().any(|k| k.contains("name=")));
    assert!(metrics.states().is_empty());
}

#[test]
fn a_certificate_seen_first_starts_missing_with_every_counter_at_zero() {
    let metrics = Metrics::new("1");
    metrics.cert_loaded("orders", t(1_000), t(2_000));
    let s = samples(&encoded(&metrics, Format::Classic));
    assert_eq!(
        s["kyma_certd_certificate_not_before_timestamp_seconds{name=\"orders\"}"],
        1000.0
    );
    assert_eq!(
        s["kyma_certd_certificate_not_after_timestamp_seconds{name=\"orders\"}"],
        2000.0
    );
    assert_eq!(
        s["kyma_certd_certificate_state{name=\"orders\",state=\"missing\"}"],
        1.0
    );
    for result in ["success", "failure"] {
        let series = format!("kyma_certd_renewals_total{{name=\"orders\",result=\"{result}\"}}");
        assert_eq!(s[&series], 0.0);
        for hook in ["signal", "systemd", "command"] {
            let series = format!(
                "kyma_certd_hook_runs_total{{name=\"orders\",hook=\"{hook}\",result=\"{result}\"}}"
            );
            assert_eq!(s[&series], 0.0);
        }
    }
    for reason in FailureReason::ALL {
        let series = format!(
            "kyma_certd_renewal_failures_total{{name=\"orders\",reason=\"{}\"}}",
            reason.as_str()
        );
        assert_eq!(s[&series], 0.0);
    }
    assert_eq!(s["kyma_certd_consecutive_failures{name=\"orders\"}"], 0.0);
    assert_eq!(
        s["kyma_certd_renewal_duration_seconds_count{name=\"orders\"}"],
        0.0
    );
    assert_eq!(metrics.state_of("orders"), Some(CertState::Missing));
}

#[test]
fn every_state_transition_sets_exactly_its_own_gauge() {
    let metrics = Metrics::new("1");
    for current in CertState::ALL
        .into_iter()
        .chain(CertState::ALL.into_iter().rev())
    {
        metrics.set_state("orders", current);
        for (state, v) in state_values(&metrics, "orders") {
            let expected = if state == current.as_str() { 1.0 } else { 0.0 };
            assert_eq!(v, expected, "state {state} while {}", current.as_str());
        }
        assert_eq!(metrics.state_of("orders"), Some(current));
    }
}

#[test]
fn a_failure_counts_once_by_result_and_by_reason_and_grows_the_streak() {
    let metrics = Metrics::new("1");
    metrics.renewal_failed("orders", FailureReason::Tls, Duration::from_millis(300));
    metrics.renewal_failed("orders", FailureReason::Network, Duration::from_secs(31));
    let s = samples(&encoded(&metrics, Format::Classic));
    assert_eq!(
        s["kyma_certd_renewals_total{name=\"orders\",result=\"failure\"}"],
        2.0
    );
    assert_eq!(
        s["kyma_certd_renewals_total{name=\"orders\",result=\"success\"}"],
        0.0
    );
    assert_eq!(
        s["kyma_certd_renewal_failures_total{name=\"orders\",reason=\"tls\"}"],
        1.0
    );
    assert_eq!(
        s["kyma_certd_renewal_failures_total{name=\"orders\",reason=\"network\"}"],
        1.0
    );
    assert_eq!(
        s["kyma_certd_renewal_failures_total{name=\"orders\",reason=\"http\"}"],
        0.0
    );
    assert_eq!(s["kyma_certd_consecutive_failures{name=\"orders\"}"], 2.0);
    assert_eq!(
        s["kyma_certd_renewal_duration_seconds_count{name=\"orders\"}"],
        2.0
    );
    assert_eq!(
        s["kyma_certd_renewal_duration_seconds_sum{name=\"orders\"}"],
        31.3
    );
    assert_eq!(
        s["kyma_certd_renewal_duration_seconds_bucket{le=\"0.5\",name=\"orders\"}"],
        1.0
    );
    assert_eq!(
        s["kyma_certd_renewal_duration_seconds_bucket{le=\"60.0\",name=\"orders\"}"],
        2.0
    );
    assert!(!s.contains_key("kyma_certd_last_success_timestamp_seconds{name=\"orders\"}"));
}

#[test]
fn a_success_counts_once_resets_the_streak_and_records_the_time() {
    let metrics = Metrics::new("1");
    metrics.renewal_failed("orders", FailureReason::Http, Duration::from_secs(1));
    let before = unix_seconds(SystemTime::now());
    metrics.renewal_succeeded("orders", Duration::from_millis(700));
    let after = unix_seconds(SystemTime::now());
    let s = samples(&encoded(&metrics, Format::Classic));
    assert_eq!(
        s["kyma_certd_renewals_total{name=\"orders\",result=\"success\"}"],
        1.0
    );
    assert_eq!(
        s["kyma_certd_renewals_total{name=\"orders\",result=\"failure\"}"],
        1.0
    );
    assert_eq!(s["kyma_certd_consecutive_failures{name=\"orders\"}"], 0.0);
    let last = s["kyma_certd_last_success_timestamp_seconds{name=\"orders\"}"];
    assert!(
        before <= last && last <= after,
        "{before} <= {last} <= {after}"
    );
    assert_eq!(
        s["kyma_certd_renewal_duration_seconds_count{name=\"orders\"}"],
        2.0
    );
}

#[test]
fn a_restored_streak_is_shown_and_grows_from_there() {
    let metrics = Metrics::new("1");
    metrics.restore_failures("orders", 4);
    let s = samples(&encoded(&metrics, Format::Classic));
    assert_eq!(s["kyma_certd_consecutive_failures{name=\"orders\"}"], 4.0);
    metrics.renewal_failed("orders", FailureReason::Http, Duration::from_secs(1));
    let s = samples(&encoded(&metrics, Format::Classic));
    assert_eq!(s["kyma_certd_consecutive_failures{name=\"orders\"}"], 5.0);
}

#[test]
fn next_renewal_is_set_and_removed() {
    let metrics = Metrics::new("1");
    let series = "kyma_certd_certificate_next_renewal_timestamp_seconds{name=\"orders\"}";
    metrics.next_renewal("orders", Some(t(1_750_000_000)));
    assert_eq!(value(&metrics, series), Some(1_750_000_000.0));
    metrics.next_renewal("orders", None);
    assert_eq!(value(&metrics, series), None);
}

#[test]
fn the_enrollment_time_is_shown_once_known_and_an_unchanged_one_is_no_event() {
    let metrics = Metrics::new("1");
    let series = "kyma_certd_certificate_enrolled_timestamp_seconds{name=\"orders\"}";
    metrics.enrolled("orders", None);
    assert_eq!(value(&metrics, series), None);
    metrics.enrolled("orders", Some(t(1_750_000_000)));
    assert_eq!(value(&metrics, series), Some(1_750_000_000.0));
    let generation = metrics.generation.load(Ordering::SeqCst);
    metrics.enrolled("orders", Some(t(1_750_000_000)));
    assert_eq!(metrics.generation.load(Ordering::SeqCst), generation);
}

#[test]
fn unloading_a_certificate_removes_its_validity_but_keeps_its_state_and_counters() {
    let metrics = Metrics::new("1");
    metrics.cert_loaded("orders", t(1_750_000_000), t(1_757_776_000));
    metrics.renewal_succeeded("orders", Duration::from_secs(1));
    metrics.cert_unloaded("orders");
    metrics.set_state("orders", CertState::Missing);
    let s = samples(&encoded(&metrics, Format::Classic));
    assert!(
        !s.keys()
            .any(|k| k.contains("_not_after_") || k.contains("_not_before_")),
        "{s:?}"
    );
    assert_eq!(
        s["kyma_certd_renewals_total{name=\"orders\",result=\"success\"}"],
        1.0
    );
    assert_eq!(
        s["kyma_certd_certificate_state{name=\"orders\",state=\"missing\"}"],
        1.0
    );
}

#[test]
fn hook_runs_and_reloads_count_by_label() {
    let metrics = Metrics::new("1");
    metrics.hook_ran("orders", HookKind::Signal, true);
    metrics.hook_ran("orders", HookKind::Command, false);
    metrics.hook_ran("orders", HookKind::Command, false);
    metrics.config_reload(true);
    metrics.config_reload(false);
    metrics.config_reload(false);
    let s = samples(&encoded(&metrics, Format::Classic));
    let hook = |h: &str, r: &str| {
        s[&format!("kyma_certd_hook_runs_total{{name=\"orders\",hook=\"{h}\",result=\"{r}\"}}")]
    };
    assert_eq!(hook("signal", "success"), 1.0);
    assert_eq!(hook("signal", "failure"), 0.0);
    assert_eq!(hook("command", "failure"), 2.0);
    assert_eq!(hook("systemd", "success"), 0.0);
    assert_eq!(
        s["kyma_certd_config_reloads_total{result=\"success\"}"],
        1.0
    );
    assert_eq!(
        s["kyma_certd_config_reloads_total{result=\"failure\"}"],
        2.0
    );
}

#[test]
fn forgetting_a_certificate_removes_all_its_series_and_only_those() {
    let metrics = Metrics::new("1");
    for name in ["orders", "billing"] {
        metrics.cert_loaded(name, t(1), t(2));
        metrics.next_renewal(name, Some(t(2)));
        metrics.set_state(name, CertState::Valid);
        metrics.renewal_succeeded(name, Duration::from_secs(1));
        metrics.renewal_failed(name, FailureReason::Verify, Duration::from_secs(1));
        metrics.hook_ran(name, HookKind::Systemd, true);
    }
    let before = samples(&encoded(&metrics, Format::Classic));
    let billing = before
        .keys()
        .filter(|k| k.contains("name=\"billing\""))
        .count();

    metrics.forget("orders");

    let text = encoded(&metrics, Format::Classic);
    assert!(!text.contains("name=\"orders\""), "{text}");
    let after = samples(&text);
    assert_eq!(
        after
            .keys()
            .filter(|k| k.contains("name=\"billing\""))
            .count(),
        billing
    );
    assert_eq!(metrics.states(), [("billing".to_owned(), CertState::Valid)]);
}

#[test]
fn an_unchanged_registry_reuses_its_encoding_and_any_event_refreshes_it() {
    let metrics = Metrics::new("1");
    metrics.set_state("orders", CertState::Valid);
    let first = metrics.encode(Format::Classic);
    let again = metrics.encode(Format::Classic);
    assert_eq!(first.as_ptr(), again.as_ptr(), "the cached text is shared");
    metrics.hook_ran("orders", HookKind::Signal, true);
    let after = metrics.encode(Format::Classic);
    let line = "kyma_certd_hook_runs_total{name=\"orders\",hook=\"signal\",result=\"success\"} 1\n";
    assert!(std::str::from_utf8(&after).unwrap().contains(line));
    assert!(!std::str::from_utf8(&first).unwrap().contains(line));
    // The two formats are cached apart.
    assert!(
        std::str::from_utf8(&metrics.encode(Format::OpenMetrics))
            .unwrap()
            .ends_with("# EOF\n")
    );
    assert_eq!(metrics.encode(Format::Classic).as_ptr(), after.as_ptr());
}

#[test]
fn open_metrics_output_ends_with_eof_and_names_counter_families_without_total() {
    let metrics = Metrics::new("1");
    metrics.renewal_succeeded("orders", Duration::from_secs(1));
    let text = encoded(&metrics, Format::OpenMetrics);
    assert!(text.ends_with("# EOF\n"));
    assert!(text.contains("# TYPE kyma_certd_renewals counter\n"));
    assert!(text.contains("kyma_certd_renewals_total{name=\"orders\",result=\"success\"} 1\n"));
}

#[test]
fn classic_output_of_every_counter_family_names_help_and_type_with_total() {
    let metrics = Metrics::new("1");
    metrics.cert_loaded("orders", t(1), t(2));
    let text = encoded(&metrics, Format::Classic);
    for family in [
        "renewals",
        "renewal_failures",
        "hook_runs",
        "config_reloads",
    ] {
        assert!(
            text.contains(&format!("# HELP kyma_certd_{family}_total ")),
            "{family}"
        );
        assert!(text.contains(&format!("# TYPE kyma_certd_{family}_total counter\n")));
    }
    assert!(!text.contains("# EOF"));
}

fn populated() -> Arc<Metrics> {
    let metrics = Metrics::new(env!("CARGO_PKG_VERSION"));
    for (i, name) in ["orders", "billing", "edge-1"].into_iter().enumerate() {
        metrics.cert_loaded(name, t(1_750_000_000), t(1_757_776_000));
        metrics.next_renewal(name, Some(t(1_755_000_000)));
        metrics.set_state(name, CertState::ALL[i]);
        metrics.renewal_succeeded(name, Duration::from_secs(2));
        metrics.renewal_failed(name, FailureReason::ALL[i], Duration::from_millis(80));
        metrics.hook_ran(name, HookKind::ALL[i], i % 2 == 0);
    }
    metrics.config_reload(true);
    metrics.config_reload(false);
    metrics
}

#[test]
fn promtool_accepts_the_classic_output_without_lint_problems() {
    if std::env::var_os("KYMA_CERTD_NO_PROMTOOL").is_some_and(|v| v == "1") {
        return;
    }
    let text = encoded(&populated(), Format::Classic);
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool must be installed (Debian package prometheus), or set KYMA_CERTD_NO_PROMTOOL=1");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .expect("promtool reads its input");
    let out = child.wait_with_output().expect("promtool finishes");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool: {report}\n{text}");
    assert_eq!(report.trim(), "", "lint problems:\n{text}");
}

#[test]
#[ignore = "timing report; run with --ignored --nocapture"]
fn encoding_a_thousand_certificates_is_fast() {
    let metrics = Metrics::new("1");
    for i in 0..1000 {
        let name = format!("cert-{i:04}");
        metrics.cert_loaded(&name, t(1_750_000_000), t(1_757_776_000));
        metrics.next_renewal(&name, Some(t(1_755_000_000)));
        metrics.set_state(&name, CertState::Valid);
        metrics.renewal_succeeded(&name, Duration::from_secs(2));
    }
    for format in [Format::OpenMetrics, Format::Classic] {
        let mut cold = Duration::MAX;
        let mut warm = Duration::MAX;
        let mut size = 0;
        for _ in 0..20 {
            // An event between scrapes forces a fresh encoding.
            metrics.config_reload(true);
            let started = std::time::Instant::now();
            size = metrics.encode(format).len();
            cold = cold.min(started.elapsed());
            let started = std::time::Instant::now();
            size = size.max(metrics.encode(format).len());
            warm = warm.min(started.elapsed());
        }
        println!(
            "{format:?}: 1000 certificates, {size} bytes, best of 20: after an event {cold:?}, unchanged {warm:?}"
        );
    }
}

#[test]
fn ca_changes_start_at_zero_count_each_change_and_go_with_the_certificate() {
    let metrics = Metrics::new("1");
    metrics.set_state("orders", CertState::Valid);
    let series = "kyma_certd_ca_changes_total{name=\"orders\"}";
    assert_eq!(samples(&encoded(&metrics, Format::Classic))[series], 0.0);
    metrics.ca_changed("orders");
    metrics.ca_changed("orders");
    assert_eq!(samples(&encoded(&metrics, Format::Classic))[series], 2.0);
    metrics.forget("orders");
    assert!(!encoded(&metrics, Format::Classic).contains("ca_changes_total{"));
}
