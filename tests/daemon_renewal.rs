//! `kyma-certd run` renewing on its own: the schedule, the dependents it notifies, and
//! the bound on concurrent renewals (the connector down: `daemon_outage.rs`). The real
//! binary against the in-process simulator over TLS on 127.0.0.1, with certificates that
//! live 20 seconds.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use kyma_certd::pki::x509::CertInfo;
use kyma_connector_sim::{Fault, FaultScope};
use support::disk::{OnDisk, fingerprint_on_disk};
use support::pem::unix;
use support::running::{Daemon, Dependent};
use support::wait::{eventually, wait_for};
use support::world::{CertSpec, World, toml_argv, toml_path, toml_str};

const LIFETIME: Duration = Duration::from_secs(20);

#[test]
fn renews_twice_in_45_seconds_at_the_scheduled_points_and_signals_the_dependent_once_each() {
    let world = World::new(LIFETIME);
    let dependent = Dependent::start(world.root());
    let cert = world.compass("orders").hook(&[
        "signal = \"HUP\"".to_owned(),
        format!("pid_file = {}", toml_path(&dependent.pid_file)),
    ]);
    world.write_config(&[cert]);
    world.enroll("orders");
    let mut daemon = world.daemon().ready();

    // The schedule each certificate had while it was current, keyed by its notBefore.
    let mut scheduled: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    let deadline = daemon.started + Duration::from_secs(45);
    while world.sim.renewals().len() < 2 && Instant::now() < deadline {
        let scrape = daemon.metrics();
        let labels = [("name", "orders")];
        let not_before = scrape.get(
            "kyma_certd_certificate_not_before_timestamp_seconds",
            &labels,
        );
        let next = scrape.get(
            "kyma_certd_certificate_next_renewal_timestamp_seconds",
            &labels,
        );
        if let (Some(nb), Some(next), Some("valid")) =
            (not_before, next, scrape.state("orders").as_deref())
        {
            // Milliseconds, so the set can hold them.
            scheduled
                .entry(nb as u64)
                .or_default()
                .insert((next * 1000.0).round() as u64);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let issued = world.sim.issued_certificates();
    assert!(
        issued.iter().filter(|c| c.renewal).count() >= 2,
        "fewer than two renewals within 45 s: {issued:#?}\n{}",
        daemon.log_text()
    );

    let attempts: Vec<f64> = daemon
        .log()
        .iter()
        .filter(|l| l.message() == "renewing")
        .map(|l| unix(l.timestamp()))
        .collect();
    for (index, pair) in issued.windows(2).enumerate() {
        let (old, new) = (&pair[0], &pair[1]);
        let old_nb = unix(old.not_before) as u64;
        let schedules = scheduled.get(&old_nb).unwrap_or_else(|| {
            panic!("no schedule seen for the certificate from {old_nb}: {scheduled:?}")
        });
        assert_eq!(schedules.len(), 1, "the schedule moved: {schedules:?}");
        let at = *schedules.iter().next().unwrap() as f64 / 1000.0;
        // renew_at 70%, jitter up to 5% of the lifetime.
        let (earliest, latest) = (old_nb as f64 + 13.0, old_nb as f64 + 14.0);
        assert!(
            (earliest - 0.001..=latest + 0.001).contains(&at),
            "scheduled at {at}, expected within [{earliest}, {latest}]"
        );
        let renewed_at = unix(new.not_before);
        let started = attempts[index];
        eprintln!(
            "renewal of the certificate from {old_nb}: scheduled {at:.3}, started {started:.3} ({:+.3} s), issued {renewed_at:.0}",
            started - at
        );
        assert!(
            (started - at).abs() <= 2.0,
            "started at {started}, scheduled at {at}"
        );
        assert!(
            (renewed_at - at).abs() <= 2.0,
            "renewed at {renewed_at} (notBefore), scheduled at {at}"
        );
    }

    let renewals = world.sim.renewals().len();
    let signalled = eventually(Duration::from_secs(5), || dependent.hups() == renewals);
    assert!(
        signalled,
        "{} SIGHUPs for {renewals} renewals\n{}",
        dependent.hups(),
        daemon.log_text()
    );
    // No late duplicates.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(dependent.hups(), world.sim.renewals().len());
    let scrape = daemon.metrics();
    let hook_ok = scrape.get(
        "kyma_certd_hook_runs_total",
        &[
            ("name", "orders"),
            ("hook", "signal"),
            ("result", "success"),
        ],
    );
    assert_eq!(hook_ok, Some(renewals as f64), "{}", scrape.text);
    let latest = world.sim.renewals().last().unwrap().fingerprint.clone();
    assert_eq!(fingerprint_on_disk(&world.cert_dir("orders")), Some(latest));
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}

/// Parses `KEY=value` lines.
fn env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn command_hooks_get_the_new_files_in_their_environment_and_a_hanging_or_failing_hook_keeps_the_certificate()
 {
    let world = World::new(LIFETIME);
    let out = world.path("hook-out");
    std::fs::create_dir(&out).unwrap();
    let dump = r#"cat "$KYMA_CERTD_CERT" > "$0/$KYMA_CERTD_FINGERPRINT.pem" && env | grep '^KYMA_CERTD_' > "$0/env.tmp" && mv "$0/env.tmp" "$0/$KYMA_CERTD_FINGERPRINT.env""#;
    let hang = r#"echo $$ > "$0/hang.pid"; exec sleep 60"#;
    let cert = world
        .compass("orders")
        .with("renew_at = \"30%\"")
        .hook(&[format!(
            "command = {}",
            toml_argv(&["sh", "-c", dump, out.to_str().unwrap()])
        )])
        .hook(&[
            format!(
                "command = {}",
                toml_argv(&["sh", "-c", hang, out.to_str().unwrap()])
            ),
            "timeout = \"1s\"".to_owned(),
        ])
        .hook(&[format!("command = {}", toml_argv(&["sh", "-c", "exit 3"]))]);
    world.write_config(&[cert]);
    world.enroll("orders");
    let mut daemon = world.daemon().ready();

    let dir = world.cert_dir("orders");
    let command_runs = |daemon: &mut Daemon, result: &str| {
        daemon
            .metrics()
            .get(
                "kyma_certd_hook_runs_total",
                &[("name", "orders"), ("hook", "command"), ("result", result)],
            )
            .unwrap_or(-1.0)
    };
    wait_for(
        "three hook runs after the first renewal",
        Duration::from_secs(20),
        || {
            (command_runs(&mut daemon, "success") == 1.0
                && command_runs(&mut daemon, "failure") == 2.0)
                .then_some(())
        },
    );
    let renewed = world.sim.renewals();
    assert_eq!(renewed.len(), 1, "{renewed:#?}");
    let fingerprint = renewed[0].fingerprint.clone();

    // The environment names the files on disk, and they hold the new certificate.
    let env = env_file(&std::fs::read_to_string(out.join(format!("{fingerprint}.env"))).unwrap());
    assert_eq!(env["KYMA_CERTD_NAME"], "orders");
    assert_eq!(
        env["KYMA_CERTD_CERT"],
        dir.join("cert.pem").to_str().unwrap()
    );
    assert_eq!(env["KYMA_CERTD_KEY"], dir.join("key.pem").to_str().unwrap());
    assert_eq!(
        env["KYMA_CERTD_CHAIN"],
        dir.join("chain.pem").to_str().unwrap()
    );
    assert_eq!(env["KYMA_CERTD_CA"], dir.join("ca.pem").to_str().unwrap());
    assert_eq!(env["KYMA_CERTD_FINGERPRINT"], fingerprint);
    let seen_by_hook = CertInfo::from_pem(
        &std::fs::read_to_string(out.join(format!("{fingerprint}.pem"))).unwrap(),
    )
    .unwrap();
    assert_eq!(
        seen_by_hook.fingerprint_sha256, fingerprint,
        "the hook read the new certificate"
    );
    let not_after = humantime::parse_rfc3339(&env["KYMA_CERTD_NOT_AFTER"]).unwrap();
    assert_eq!(not_after, seen_by_hook.not_after);
    let files = OnDisk::read(&dir);
    assert!(
        files.key_matches(),
        "KYMA_CERTD_KEY belongs to KYMA_CERTD_CERT"
    );
    assert_eq!(
        std::fs::read_to_string(&env["KYMA_CERTD_CA"]).unwrap(),
        world.sim.client_ca_pem(),
        "KYMA_CERTD_CA holds the connector's CA"
    );
    assert!(
        String::from_utf8(files.chain.clone())
            .unwrap()
            .starts_with(std::str::from_utf8(&files.cert).unwrap().trim_end())
    );

    // The hanging hook was killed at its timeout, with what it started.
    let hang_pid = std::fs::read_to_string(out.join("hang.pid")).unwrap();
    let proc_entry = std::path::PathBuf::from(format!("/proc/{}", hang_pid.trim()));
    assert!(
        eventually(Duration::from_secs(2), || !proc_entry.exists()),
        "the hanging hook (pid {hang_pid}) is still running"
    );
    let timed_out = daemon.wait_for_line("about the hook timeout", Duration::from_secs(1), |l| {
        l.field("error")
            .as_str()
            .is_some_and(|e| e.contains("did not finish within") && e.contains("killed"))
    });
    assert_eq!(timed_out.level(), "WARN");
    let failed = daemon.wait_for_line("about the failing hook", Duration::from_secs(1), |l| {
        l.field("error")
            .as_str()
            .is_some_and(|e| e.contains("exited with status 3"))
    });
    assert_eq!(failed.level(), "WARN");
    let warnings = daemon
        .log()
        .into_iter()
        .filter(|l| l.level() == "WARN")
        .count();
    assert_eq!(
        warnings,
        2,
        "one warning per failed hook\n{}",
        daemon.log_text()
    );

    // Hook failures never cost the renewed certificate nor cause a retry.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(fingerprint_on_disk(&dir), Some(fingerprint.clone()));
    assert_eq!(
        world.sim.renewals().len(),
        1,
        "a failed hook caused another renewal"
    );
    let scrape = daemon.metrics();
    assert_eq!(scrape.state("orders").as_deref(), Some("valid"));
    assert_eq!(
        scrape.get(
            "kyma_certd_renewals_total",
            &[("name", "orders"), ("result", "success")]
        ),
        Some(1.0)
    );

    // And the next renewal comes as scheduled, hooks and all.
    wait_for(
        "the second renewal's hooks",
        Duration::from_secs(15),
        || {
            // The failing hooks are retried with backoff in between (durable
            // notifications); the one that succeeded runs once per certificate.
            (command_runs(&mut daemon, "success") == 2.0
                && command_runs(&mut daemon, "failure") >= 4.0)
                .then_some(())
        },
    );
    let second = world.sim.renewals()[1].fingerprint.clone();
    assert_eq!(fingerprint_on_disk(&dir), Some(second.clone()));
    assert!(out.join(format!("{second}.env")).exists());
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}

#[test]
fn many_certificates_renew_at_most_two_at_a_time_and_broken_ones_do_not_hold_up_the_rest() {
    let mut world = World::new(LIFETIME);
    world.settings.daemon.set("max_concurrent_renewals = 2");
    let good: Vec<String> = (1..=6).map(|i| format!("c{i}")).collect();
    let broken = ["unreachable", "untrusted"];
    // A slow hook: a certificate whose hook runs holds no permit and is not "renewing".
    let spec = |name: &str| {
        world
            .compass(name)
            .with("renew_at = \"30%\"")
            .hook(&[format!("command = {}", toml_argv(&["sleep", "1"]))])
    };
    let mut certs: Vec<CertSpec> = broken
        .iter()
        .copied()
        .chain(good.iter().map(String::as_str))
        .map(spec)
        .collect();
    world.write_config(&certs);
    // The broken ones first, so their failures come first and keep coming.
    for cert in &certs {
        world.enroll(&cert.name);
    }
    let enrolled: BTreeMap<String, String> = certs
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                fingerprint_on_disk(&world.cert_dir(&c.name)).unwrap(),
            )
        })
        .collect();
    // Now break them: a connector URL where nothing listens, and a CA that does not
    // sign the connector's certificate.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    certs[0] = spec("unreachable").with(format!(
        "renewal_url = {}",
        toml_str(format!("https://{closed_port}/connector/graphql"))
    ));
    certs[1] = spec("untrusted").with(format!(
        "server_ca_file = {}",
        toml_path(&world.sim.client_ca_path())
    ));
    world.write_config(&certs);
    // Each good renewal takes two slow round trips, so the bound is exercised.
    world.sim.set_fault(
        Fault::Latency {
            delay: Duration::from_millis(400),
        },
        FaultScope::UntilCleared,
    );
    let mut daemon = world.daemon().ready();

    let mut most_renewing_scraped = 0;
    let all_renewed = eventually(Duration::from_secs(20), || {
        let scrape = daemon.metrics();
        let renewing = certs
            .iter()
            .filter(|c| scrape.state(&c.name).as_deref() == Some("renewing"))
            .count();
        most_renewing_scraped = most_renewing_scraped.max(renewing);
        good.iter().all(|n| {
            fingerprint_on_disk(&world.cert_dir(n)).as_deref() != Some(enrolled[n].as_str())
        })
    });
    assert!(
        all_renewed,
        "not every good certificate was renewed\n{}",
        daemon.log_text()
    );
    world.sim.clear_fault();

    // In flight at once, from the log order: "renewing" is logged once a permit is held,
    // and the attempt's outcome before it is given back (one event-loop thread).
    let mut in_flight = 0i32;
    let mut most = 0;
    let mut started: BTreeMap<String, SystemTime> = BTreeMap::new();
    let mut took: Vec<Duration> = Vec::new();
    for line in daemon.log() {
        let Some(cert) = line.cert() else { continue };
        let message = line.message();
        if message == "renewing" {
            in_flight += 1;
            most = most.max(in_flight);
            started.insert(cert.to_owned(), line.timestamp());
        } else if message.starts_with("renewed ") || message.starts_with("renewal failed") {
            in_flight -= 1;
            if message.starts_with("renewed ") {
                took.push(line.timestamp().duration_since(started[cert]).unwrap());
            }
        }
    }
    assert!(
        most <= 2,
        "{most} renewals in flight at once\n{}",
        daemon.log_text()
    );
    assert!(
        (1..=2).contains(&most_renewing_scraped),
        "{most_renewing_scraped} certificates in state renewing in one scrape"
    );
    assert_eq!(
        most, 2,
        "the bound was never reached, the test proves nothing"
    );

    // The good ones renewed within their schedule plus queueing behind each other only.
    let slowest = took.iter().max().copied().unwrap();
    let scrape = daemon.metrics();
    for name in &good {
        let renewed = daemon
            .log()
            .into_iter()
            .find(|l| l.cert() == Some(name) && l.message().starts_with("renewed "))
            .unwrap();
        let scheduled = daemon
            .log()
            .into_iter()
            .find(|l| l.cert() == Some(name) && l.message().starts_with("next renewal in"))
            .unwrap();
        let due =
            humantime::parse_rfc3339(scheduled.field("next_renewal").as_str().unwrap()).unwrap();
        let late = renewed.timestamp().duration_since(due).unwrap_or_default();
        let allowance = Duration::from_secs(2) + slowest * (good.len() as u32 / 2);
        assert!(
            late <= allowance,
            "{name} renewed {late:?} after it was due (allowed {allowance:?})"
        );
        assert_eq!(scrape.state(name).as_deref(), Some("valid"), "{name}");
    }
    // Meanwhile the broken ones kept failing, each with its own reason, in backoff.
    for (name, reason) in [("unreachable", "network"), ("untrusted", "tls")] {
        let failures = |daemon: &mut Daemon| {
            daemon
                .metrics()
                .get(
                    "kyma_certd_renewal_failures_total",
                    &[("name", name), ("reason", reason)],
                )
                .unwrap()
        };
        let retried = eventually(Duration::from_secs(5), || failures(&mut daemon) >= 2.0);
        assert!(
            retried,
            "{name}: {} {reason} failures",
            failures(&mut daemon)
        );
        assert_eq!(
            daemon.metrics().state(name).as_deref(),
            Some("backoff"),
            "{name}"
        );
        assert_eq!(
            fingerprint_on_disk(&world.cert_dir(name)).as_deref(),
            Some(enrolled[name].as_str())
        );
    }
    eprintln!(
        "{} certificates: at most {most} renewals in flight, slowest good renewal {slowest:?}",
        good.len() + broken.len()
    );
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}
