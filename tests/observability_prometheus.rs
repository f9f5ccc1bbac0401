//! The metrics endpoint as Prometheus sees it: `promtool check metrics` on a real scrape of
//! a running daemon, and a real Prometheus server scraping it every second and answering
//! queries with the values the files on disk hold.
//!
//! Both need Debian's `prometheus` package; without it they fail with a clear message
//! unless `KYMA_CERTD_NO_PROMETHEUS=1`.

mod support;

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::http::exchange;
use support::http::http_get;
use support::pem::validity_of;
use support::running::Daemon;
use support::scrape::Scrape;
use support::tools::prometheus_installed;
use support::wait::wait_for;
use support::world::{Settings, World};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "promtool";

/// Every family the daemon exposes, as stored series names (kept in step with the alert
/// and dashboard checks).
fn exposed_series() -> Vec<String> {
    let list = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/prometheus/metrics.txt"),
    )
    .expect("packaging/prometheus/metrics.txt");
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// A daemon with one enrolled compass certificate `orders` (an hour-long certificate, so
/// nothing happens unless the test asks), a command hook, and one renewal done.
fn renewed_daemon() -> (World, Daemon) {
    let world = World::with(Settings::quiet(), Duration::from_secs(3600));
    world.write_config(&[world
        .compass("orders")
        .hook(&["command = [\"true\"]".to_owned()])]);
    world.enroll("orders");
    let daemon = world.daemon().serving();
    daemon.wait_state("orders", "valid", Duration::from_secs(20));
    daemon.renew_now();
    daemon.wait_scrape(Duration::from_secs(30), "one renewal and its hook", |s| {
        s.renewals("orders", "success") == 1.0
            && s.get(
                "kyma_certd_hook_runs_total",
                &[
                    ("name", "orders"),
                    ("hook", "command"),
                    ("result", "success"),
                ],
            ) == Some(1.0)
    });
    (world, daemon)
}

#[test]
fn promtool_finds_nothing_to_lint_in_a_real_classic_scrape_after_enroll_and_renewal() {
    if !prometheus_installed(PROMTOOL) {
        return;
    }
    let (_world, daemon) = renewed_daemon();

    // No Accept header: the classic text format, which is what promtool lints.
    let response = daemon.response("/metrics");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let scrape = Scrape::parse(&response.body);
    for series in exposed_series() {
        assert!(
            scrape.samples.iter().any(|s| s.name == series),
            "{series} has no sample after an enroll and a renewal:\n{}",
            response.body
        );
    }

    let mut promtool = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(response.body.as_bytes())
        .expect("feed promtool");
    let out = promtool.wait_with_output().expect("promtool finishes");
    let lint = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && lint.trim().is_empty(),
        "promtool check metrics ({}):\n{lint}\n--- scrape\n{}",
        out.status,
        response.body
    );

    // A client that asks for OpenMetrics gets it, terminated by `# EOF`.
    let open = http_get(
        daemon.metrics_addr(),
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )],
    );
    assert_eq!(
        open.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(open.body.ends_with("# EOF\n"), "{}", open.body);
}

/// `/usr/bin/prometheus` on a free loopback port with its own storage; killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log: std::path::PathBuf,
}

impl Prometheus {
    fn start(dir: &Path, target: SocketAddr) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: kyma-certd\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .expect("prometheus.yml");
        // A port the OS just handed out and released; good enough on loopback.
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let log = dir.join("prometheus.log");
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--web.console.templates=")
            .arg("--web.console.libraries=")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("prometheus starts");
        let mut prometheus = Prometheus { child, addr, log };
        wait_for("prometheus to be ready", Duration::from_secs(60), || {
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!(
                    "prometheus exited ({status}):\n{}",
                    std::fs::read_to_string(&prometheus.log).unwrap_or_default()
                );
            }
            exchange(
                prometheus.addr,
                format!("GET /-/ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
                Duration::from_secs(2),
            )
            .ok()
            .filter(|r| r.status == 200)
        });
        prometheus
    }

    /// The instant vector `expr` evaluates to now: (labels, value) pairs.
    fn query(&self, expr: &str) -> Vec<(serde_json::Value, f64)> {
        let encoded: String = url::form_urlencoded::byte_serialize(expr.as_bytes()).collect();
        let response = http_get(self.addr, &format!("/api/v1/query?query={encoded}"), &[]);
        assert_eq!(response.status, 200, "{expr}: {}", response.body);
        let json = response.json();
        assert_eq!(json["status"], "success", "{expr}: {}", response.body);
        json["data"]["result"]
            .as_array()
            .expect("a vector result")
            .iter()
            .map(|r| {
                let value = r["value"][1].as_str().expect("a sample value");
                (r["metric"].clone(), value.parse().expect("a number"))
            })
            .collect()
    }

    /// Polls `expr` until it has exactly one sample accepted by `check`; returns its value.
    fn wait_value(&self, expr: &str, check: impl Fn(f64) -> bool) -> f64 {
        let mut last = Vec::new();
        let found = {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                let result = self.query(expr);
                if let [(_, value)] = result.as_slice()
                    && check(*value)
                {
                    break Some(*value);
                }
                last = result;
                if std::time::Instant::now() >= deadline {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        };
        found.unwrap_or_else(|| {
            panic!(
                "prometheus never gave the expected {expr}; last: {last:?}\n--- prometheus log\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            )
        })
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_the_daemon_and_sees_the_values_on_disk() {
    if !prometheus_installed(PROMETHEUS) {
        return;
    }
    let world = World::with(Settings::quiet(), Duration::from_secs(3600));
    world.write_config(&[world.compass("orders")]);
    world.enroll("orders");
    let daemon = world.daemon().serving();
    daemon.wait_state("orders", "valid", Duration::from_secs(20));
    let prometheus = Prometheus::start(world.root(), daemon.metrics_addr());

    assert_eq!(
        prometheus.wait_value(r#"up{job="kyma-certd"}"#, |v| v == 1.0),
        1.0
    );
    let success = r#"kyma_certd_renewals_total{job="kyma-certd",name="orders",result="success"}"#;
    prometheus.wait_value(success, |v| v == 0.0);
    let (_, enrolled_not_after) = validity_of(&world.cert_pem("orders"));
    let not_after = r#"kyma_certd_certificate_not_after_timestamp_seconds{name="orders"}"#;
    prometheus.wait_value(not_after, |v| v == enrolled_not_after as f64);

    daemon.renew_now();
    daemon.wait_scrape(Duration::from_secs(30), "the renewal", |s| {
        s.renewals("orders", "success") == 1.0
    });
    // The counter moved in Prometheus, and the gauges follow the new certificate on disk.
    prometheus.wait_value(success, |v| v == 1.0);
    let (not_before, renewed_not_after) = validity_of(&world.cert_pem("orders"));
    assert_eq!(
        prometheus.wait_value(not_after, |v| v == renewed_not_after as f64),
        renewed_not_after as f64,
        "the not-after gauge equals the on-disk notAfter"
    );
    assert_eq!(
        prometheus.wait_value(
            r#"kyma_certd_certificate_not_before_timestamp_seconds{name="orders"}"#,
            |v| v == not_before as f64
        ),
        not_before as f64
    );
    assert_eq!(
        prometheus.wait_value(
            r#"kyma_certd_certificate_state{name="orders",state="valid"}"#,
            |v| v == 1.0
        ),
        1.0
    );
    assert_eq!(
        prometheus.wait_value(r#"sum(kyma_certd_certificate_state{name="orders"})"#, |v| v
            == 1.0),
        1.0,
        "exactly one state is set"
    );
    // Prometheus asked for OpenMetrics and parsed it: it knows the counter family by its
    // OpenMetrics name, without `_total` (the classic format would name it with).
    let metadata = http_get(
        prometheus.addr,
        "/api/v1/targets/metadata?match_target=%7Bjob%3D%22kyma-certd%22%7D",
        &[],
    )
    .json();
    let families: Vec<(&str, &str)> = metadata["data"]
        .as_array()
        .expect("target metadata")
        .iter()
        .map(|m| {
            (
                m["metric"].as_str().unwrap_or(""),
                m["type"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(
        families.contains(&("kyma_certd_renewals", "counter"))
            && families.contains(&("kyma_certd_renewal_duration_seconds", "histogram"))
            && families.contains(&("kyma_certd_certificate_state", "gauge")),
        "{families:?}"
    );
    // The alert expressions work on what was scraped: nothing is about to expire.
    assert!(
        prometheus
            .query(
                r#"kyma_certd_certificate_not_after_timestamp_seconds - time() < 7 * 86400 and kyma_certd_certificate_not_after_timestamp_seconds - time() < 0.2 * (kyma_certd_certificate_not_after_timestamp_seconds - kyma_certd_certificate_not_before_timestamp_seconds)"#
            )
            .is_empty()
    );
    drop(prometheus);
}
