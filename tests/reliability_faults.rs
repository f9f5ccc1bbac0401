//! Every fault the simulator can inject, met by the running daemon: it backs off, keeps
//! the old files byte-identical, counts the right failure reason, and renews as soon as
//! the fault clears. Plus: stalling and endless answers end at the timeout without
//! growing the daemon's memory, and a much longer lifetime is accepted with a warning.
//! Each fault gets its own simulator (faults are per simulator) and certificate, all in
//! one daemon, so they run side by side.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kyma_connector_sim::{Fault, FaultScope};
use support::results;
use support::running::Daemon;
use support::scrape::Scrape;
use support::secrets;
use support::sim::Sim;
use support::wait::{try_wait_for, wait_for};
use support::world::{CertSpec, Proto, Settings, World};

/// Per request; the stalls and the latency go past it.
const TIMEOUT: Duration = Duration::from_secs(2);

struct Case {
    label: &'static str,
    fault: Fault,
    /// The `reason` label the failures must carry.
    reason: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            label: "latency",
            fault: Fault::Latency { delay: TIMEOUT * 2 },
            reason: "network",
        },
        Case {
            label: "internal-error",
            fault: Fault::InternalError,
            reason: "http",
        },
        Case {
            label: "unavailable",
            fault: Fault::Unavailable,
            reason: "http",
        },
        Case {
            label: "malformed-json",
            fault: Fault::MalformedJson,
            reason: "protocol",
        },
        Case {
            label: "invalid-base64",
            fault: Fault::InvalidBase64,
            reason: "protocol",
        },
        Case {
            label: "foreign-key",
            fault: Fault::ForeignKey,
            reason: "verify",
        },
        Case {
            label: "wrong-subject",
            fault: Fault::WrongSubject,
            reason: "verify",
        },
        Case {
            label: "expired",
            fault: Fault::ExpiredCertificate,
            reason: "verify",
        },
        Case {
            label: "unrelated-ca",
            fault: Fault::UnrelatedCa,
            reason: "verify",
        },
        Case {
            label: "stall",
            fault: Fault::Stall {
                duration: Duration::from_secs(3600),
            },
            reason: "network",
        },
        Case {
            label: "oversized",
            fault: Fault::OversizedBody { bytes: 64 << 20 },
            reason: "http",
        },
        Case {
            label: "dropped-handshake",
            fault: Fault::DropHandshake,
            reason: "network",
        },
    ]
}

/// A certificate due 3% into its life (3.6 s of two minutes), and as often after each
/// renewal.
fn short_lived(world: &World, name: &str, sim: &Sim, protocol: Proto) -> CertSpec {
    let cert = world.cert_at(name, protocol, sim).with("renew_at = \"3%\"");
    match protocol {
        Proto::Compass => cert,
        Proto::KymaRest => cert.files_layout(),
    }
}

fn scrape(daemon: &Daemon) -> Option<Scrape> {
    let (status, body) = daemon.try_get("/metrics")?;
    (status == 200).then(|| Scrape::parse(&body))
}

#[test]
fn daemon_backs_off_keeps_old_files_and_recovers_from_every_simulator_fault() {
    let mut world = World::with(Settings::stress(), Duration::from_secs(120));
    let mut cases_run = Vec::new();
    for case in cases() {
        for protocol in [Proto::Compass, Proto::KymaRest] {
            let sim = Sim::ecdsa(Duration::from_secs(120));
            let name = format!(
                "{}-{}",
                case.label,
                match protocol {
                    Proto::Compass => "compass",
                    Proto::KymaRest => "rest",
                }
            );
            let cert = short_lived(&world, &name, &sim, protocol);
            cases_run.push((case.label, case.fault.clone(), case.reason, sim, cert));
        }
    }
    let certs: Vec<CertSpec> = cases_run.iter().map(|c| c.4.clone()).collect();
    world.settings.daemon.set("log_level = \"trace\"");
    world.write_config(&certs);
    let mut secrets = secrets::Secrets::new();
    let mut before = BTreeMap::new();
    for (_, fault, _, sim, cert) in &cases_run {
        let (enroll, token) = world.enroll_command(&cert.name);
        enroll.run().ok();
        before.insert(
            cert.name.clone(),
            (cert.snapshot(), cert.consistent_pair().unwrap()),
        );
        secrets.add("a one-time token", &token);
        sim.set_fault(fault.clone(), FaultScope::UntilCleared);
    }

    let mut daemon = world.daemon().label("daemon").serving();
    let daemon_started = Instant::now();
    let mut last = Scrape::default();
    let failing = try_wait_for(Duration::from_secs(90), || {
        last = scrape(&daemon)?;
        cases_run
            .iter()
            .all(|(_, _, _, _, cert)| {
                last.failures(&cert.name) >= 2.0
                    && matches!(
                        last.state(&cert.name).as_deref(),
                        Some("backoff" | "renewing")
                    )
            })
            .then(|| last.clone())
    })
    .unwrap_or_else(|| {
        let lagging: Vec<String> = cases_run
            .iter()
            .map(|(_, _, _, _, c)| {
                format!(
                    "{}: {} failures, state {:?}, reasons {:?}",
                    c.name,
                    last.failures(&c.name),
                    last.state(&c.name),
                    last.failure_reasons(&c.name)
                )
            })
            .collect();
        panic!(
            "not every certificate failed twice:\n{}\n{}",
            lagging.join("\n"),
            daemon
                .log_text()
                .lines()
                .filter(|l| !l.contains("TRACE"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let faulted_for = daemon_started.elapsed();
    let mut failed_attempts = 0.0;
    for (label, _, reason, _, cert) in &cases_run {
        let reasons = failing.failure_reasons(&cert.name);
        assert_eq!(
            reasons.keys().collect::<Vec<_>>(),
            [reason],
            "{}: fault {label} was counted under {reasons:?}",
            cert.name
        );
        failed_attempts += failing.failures(&cert.name);
        assert!(
            failing.sum("kyma_certd_consecutive_failures", &[("name", &cert.name)]) >= 2.0,
            "{}",
            cert.name
        );
        let (files, fingerprint) = &before[&cert.name];
        assert!(
            cert.snapshot() == *files,
            "{}: the files changed during fault {label}",
            cert.name
        );
        assert_eq!(&cert.consistent_pair().unwrap(), fingerprint);
    }
    assert!(daemon.alive(), "the daemon died under faults");

    let cleared = Instant::now();
    for (_, _, _, sim, _) in &cases_run {
        sim.clear_fault();
    }
    wait_for(
        "a renewal of every certificate after the faults cleared",
        Duration::from_secs(60),
        || {
            let scrape = scrape(&daemon)?;
            cases_run
                .iter()
                .all(|(_, _, _, _, cert)| scrape.successes(&cert.name) >= 1.0)
                .then_some(())
        },
    );
    let recovered_in = cleared.elapsed();
    for (label, _, _, sim, cert) in &cases_run {
        let fingerprint = cert.consistent_pair().unwrap();
        assert_ne!(
            fingerprint, before[&cert.name].1,
            "{}: not renewed after {label} cleared",
            cert.name
        );
        assert!(sim.issued_fingerprints().contains(&fingerprint));
        secrets.add_issued(sim);
    }

    // Nothing secret anywhere the daemon or `status` shows, at trace level, after every fault.
    secrets.add_keys_under(world.root());
    secrets.assert_clean("the daemon's trace log", &daemon.log_text());
    let (_, metrics) = daemon.try_get("/metrics").unwrap();
    secrets.assert_clean("/metrics", &metrics);
    let (_, ready) = daemon.try_get("/readyz").unwrap();
    secrets.assert_clean("/readyz", &ready);
    for cert in &certs {
        secrets.assert_clean("state.json", &cert.state_json().unwrap_or_default());
    }
    for args in [&["status"][..], &["status", "--json"]] {
        let output = world.command(args).run();
        secrets.assert_clean(&format!("`{}`", args.join(" ")), &output.text());
    }
    let log = daemon.log_text();
    let status = daemon.stop();
    assert!(status.success(), "the daemon stopped with {status}");
    for (label, _, _, _, cert) in &cases_run {
        let line = log
            .lines()
            .find(|l| l.contains("renewal failed") && l.contains(&format!("cert={}", cert.name)))
            .unwrap_or_else(|| panic!("{}: no log line for the failure", cert.name));
        eprintln!("{label}: {}", line.split("error=").nth(1).unwrap_or(line));
    }

    results::record(
        "3-faults",
        "every simulator fault (latency past the timeout, 500, 503, malformed JSON, invalid base64, foreign key, wrong subject, expired certificate, unrelated CA, stall, oversized body, dropped handshake) against a running daemon, compass and kyma-rest",
        "state backoff (or renewing again), at least two failed attempts each, every failure under the expected reason (network, http, protocol or verify), old files byte-identical; a renewal with a new certificate from the simulator once the fault clears; no secret in the trace log, /metrics, /readyz, state.json, `status` or `status --json`",
        &[
            ("faults tried", format!("{} × 2 protocols", cases().len())),
            ("failed attempts", failed_attempts.to_string()),
            (
                "all failing, from the daemon start",
                format!("{:.1} s", faulted_for.as_secs_f64()),
            ),
            (
                "all renewed after clearing",
                format!("{:.1} s", recovered_in.as_secs_f64()),
            ),
            (
                "texts scanned for secrets",
                format!("{} ({} KiB)", secrets.scanned, secrets.scanned_bytes / 1024),
            ),
        ],
    );
}

#[test]
fn stalled_and_endless_answers_end_at_the_timeout_and_keep_memory_flat() {
    let world = World::with(Settings::stress(), Duration::from_secs(120));
    let stall = Sim::ecdsa(Duration::from_secs(120));
    let endless = Sim::ecdsa(Duration::from_secs(120));
    let certs = [
        short_lived(&world, "stall", &stall, Proto::Compass),
        short_lived(&world, "endless", &endless, Proto::KymaRest),
    ];
    world.write_config(&certs);
    world.enroll("stall");
    world.enroll("endless");
    let mut daemon = world.daemon().label("daemon").serving();
    // Warm up: a successful renewal of each, so the allocator has seen a whole flow.
    wait_for("a first renewal of each", Duration::from_secs(30), || {
        let scrape = scrape(&daemon)?;
        certs
            .iter()
            .all(|c| scrape.successes(&c.name) >= 1.0)
            .then_some(())
    });
    let (rss_before, hwm_before) = daemon.memory_kib();
    let warm = scrape(&daemon).unwrap();
    let count =
        |s: &Scrape, le: &str| s.sum("kyma_certd_renewal_duration_seconds_bucket", &[("le", le)]);
    let warm_total = count(&warm, "+Inf");

    stall.set_fault(
        Fault::Stall {
            duration: Duration::from_secs(3600),
        },
        FaultScope::UntilCleared,
    );
    endless.set_fault(
        Fault::OversizedBody { bytes: u64::MAX },
        FaultScope::UntilCleared,
    );
    let faulted = Instant::now();
    let scrape_after = wait_for(
        "four failed attempts of each",
        Duration::from_secs(60),
        || {
            let scrape = scrape(&daemon)?;
            certs
                .iter()
                .all(|c| scrape.failures(&c.name) >= 4.0)
                .then_some(scrape)
        },
    );
    let elapsed = faulted.elapsed();
    let (rss_after, hwm_after) = daemon.memory_kib();
    assert!(daemon.alive());
    assert_eq!(
        scrape_after
            .failure_reasons("stall")
            .keys()
            .collect::<Vec<_>>(),
        ["network"]
    );
    assert_eq!(
        scrape_after
            .failure_reasons("endless")
            .keys()
            .collect::<Vec<_>>(),
        ["http"]
    );
    // Every attempt, faulted or not, ended within the timeout plus scheduling slack.
    let attempts = count(&scrape_after, "+Inf") - warm_total;
    let within_timeout = count(&scrape_after, "2.5") - count(&warm, "2.5");
    let within_slack = count(&scrape_after, "5.0") - count(&warm, "5.0");
    assert_eq!(
        within_slack, attempts,
        "some attempts took more than 5 s with a 2 s timeout"
    );
    let growth = hwm_after.saturating_sub(hwm_before);
    assert!(
        growth <= 8 * 1024,
        "peak memory grew by {growth} KiB (VmHWM {hwm_before} -> {hwm_after} KiB)"
    );
    assert!(
        rss_after <= rss_before + 8 * 1024,
        "resident memory grew from {rss_before} to {rss_after} KiB"
    );

    stall.clear_fault();
    endless.clear_fault();
    let successes: Vec<f64> = certs
        .iter()
        .map(|c| scrape_after.successes(&c.name))
        .collect();
    wait_for(
        "renewals after the faults cleared",
        Duration::from_secs(30),
        || {
            let scrape = scrape(&daemon)?;
            certs
                .iter()
                .zip(&successes)
                .all(|(c, before)| scrape.successes(&c.name) > *before)
                .then_some(())
        },
    );
    drop(daemon);

    results::record(
        "4a-stall-endless",
        "a connector that stalls after the headers (compass) and one that streams an endless body (kyma-rest), 2 s timeout, in the daemon",
        "failures under `network` and `http`; every attempt within 5 s; VmHWM and VmRSS grow by at most 8 MiB; renewals resume when the faults clear",
        &[
            ("failed attempts", format!("{attempts}")),
            (
                "attempts within 2.5 s",
                format!("{within_timeout} of {attempts}"),
            ),
            ("fault phase", format!("{:.1} s", elapsed.as_secs_f64())),
            (
                "VmHWM",
                format!("{hwm_before} -> {hwm_after} KiB (+{growth})"),
            ),
            ("VmRSS", format!("{rss_before} -> {rss_after} KiB")),
        ],
    );
}

#[test]
fn much_longer_lifetime_is_accepted_with_a_warning() {
    let world = World::with(Settings::stress(), Duration::from_secs(30));
    let cert = short_lived(&world, "orders", &world.sim, Proto::Compass);
    world.write_config(std::slice::from_ref(&cert));
    world.enroll(&cert.name);
    let before = cert.consistent_pair().unwrap();
    world
        .sim
        .set_validity(Duration::from_secs(30 * 86_400))
        .unwrap();
    let daemon = world.daemon().label("daemon").serving();
    wait_for("the renewal", Duration::from_secs(30), || {
        (scrape(&daemon)?.successes("orders") >= 1.0).then_some(())
    });
    let after = cert.consistent_pair().unwrap();
    assert_ne!(after, before);
    let issued = world.sim.issued_certificate(&after).unwrap();
    assert_eq!(
        issued.not_after.duration_since(issued.not_before).unwrap(),
        Duration::from_secs(30 * 86_400)
    );
    let log = wait_for("the warning", Duration::from_secs(10), || {
        let log = daemon.log_text();
        log.contains("certificate accepted, with a warning")
            .then_some(log)
    });
    let line = log
        .lines()
        .find(|l| l.contains("certificate accepted, with a warning"))
        .unwrap();
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("orders"),
        "the line names the certificate: {line}"
    );
    assert!(line.contains("30days") && line.contains("30s"), "{line}");

    results::record(
        "4b-longer-lifetime",
        "a renewal answered with a certificate living 30 days after one of 30 seconds",
        "accepted and swapped in, with one WARN line naming the certificate and both lifetimes",
        &[(
            "warning",
            line.split("WARN").nth(1).unwrap_or(line).trim().to_owned(),
        )],
    );
}
