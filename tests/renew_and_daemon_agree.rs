//! `kyma-certd renew`, `kyma-certd status` and the daemon decide the same way: one table
//! of situations (the certificate on disk and what `state.json` records), each set up
//! twice, once for the one-shot command and once for the daemon, and every column of
//! the table checked against both.

#[path = "support/in_process.rs"]
mod in_process;

use std::path::Path;
use std::time::{Duration, SystemTime};

use in_process::{InProcessDaemon, enroll, fingerprint_in, kyma_certd, wait_for};
use kyma_certd::clock::Clock;
use kyma_certd::store::{RefusalRecord, Revocation, StateFile, Store};
use kyma_connector_sim::{SimConfig, Simulator};

const HOUR: Duration = Duration::from_secs(3600);

/// One situation and what should come of it.
struct Situation {
    name: &'static str,
    /// How long the simulator makes the certificate valid; `None`: none on disk.
    validity: Option<Duration>,
    /// What `state.json` records, given the certificate's fingerprint and now.
    ledger: fn(&str, SystemTime) -> StateFile,
    /// Whether a renewal is attempted now.
    attempted: bool,
    /// The state `status` and the daemon report (before any attempt).
    state: &'static str,
    /// The exit code of `renew` without `--force`.
    exit: i32,
}

fn nothing(_: &str, _: SystemTime) -> StateFile {
    StateFile::default()
}

fn failures(fingerprint: &str, n: u32, last: SystemTime) -> StateFile {
    StateFile {
        attempted: Some(fingerprint.to_owned()),
        consecutive_failures: n,
        last_attempt: Some(last),
        last_error: Some("connection refused".into()),
        ..StateFile::default()
    }
}

fn table() -> Vec<Situation> {
    let long = Some(HOUR);
    vec![
        Situation {
            name: "fresh",
            validity: long,
            ledger: nothing,
            attempted: false,
            state: "valid",
            exit: 0,
        },
        Situation {
            name: "due",
            validity: Some(Duration::from_secs(8)),
            ledger: nothing,
            attempted: true,
            state: "valid",
            exit: 0,
        },
        Situation {
            name: "backing-off",
            validity: long,
            ledger: |fp, now| failures(fp, 3, now),
            attempted: false,
            state: "backoff",
            exit: 0,
        },
        Situation {
            name: "backoff-over",
            validity: long,
            ledger: |fp, now| failures(fp, 1, now - 2 * HOUR),
            attempted: true,
            state: "backoff",
            exit: 0,
        },
        Situation {
            name: "refused",
            validity: long,
            ledger: |fp, now| StateFile {
                refused: Some(RefusalRecord {
                    at: now,
                    fingerprint: fp.to_owned(),
                    reason: "http 403 not in the connector's error format".into(),
                }),
                ..failures(fp, 1, now)
            },
            attempted: false,
            state: "refused",
            exit: 0,
        },
        Situation {
            name: "revoked",
            validity: long,
            ledger: |fp, now| StateFile {
                revoked: Some(Revocation {
                    at: now - Duration::from_secs(600),
                    fingerprint: fp.to_owned(),
                }),
                ..StateFile::default()
            },
            attempted: false,
            state: "revoked",
            exit: 3,
        },
        Situation {
            name: "revoked-probe-due",
            validity: long,
            ledger: |fp, now| StateFile {
                revoked: Some(Revocation {
                    at: now - 2 * HOUR,
                    fingerprint: fp.to_owned(),
                }),
                ..failures(fp, 1, now - 2 * HOUR)
            },
            attempted: true,
            state: "revoked",
            exit: 0,
        },
        Situation {
            // A probe of the previous certificate raced an `enroll`: its outcome is the
            // old certificate's, not this one's.
            name: "another-certificate",
            validity: long,
            ledger: |_, now| StateFile {
                revoked: Some(Revocation {
                    at: now,
                    fingerprint: "0".repeat(64),
                }),
                ..failures(&"0".repeat(64), 9, now)
            },
            attempted: false,
            state: "valid",
            exit: 0,
        },
        Situation {
            // Recorded while the clock was five days ahead: counts as now.
            name: "recorded-ahead",
            validity: long,
            ledger: |fp, now| failures(fp, 1, now + 120 * HOUR),
            attempted: false,
            state: "backoff",
            exit: 0,
        },
        Situation {
            name: "expired",
            validity: Some(Duration::from_secs(2)),
            ledger: nothing,
            attempted: false,
            state: "expired",
            exit: 3,
        },
        Situation {
            name: "missing",
            validity: None,
            ledger: nothing,
            attempted: false,
            state: "missing",
            exit: 3,
        },
    ]
}

const SETTINGS: &str =
    "renew_at = \"50%\"\njitter = \"0%\"\nretry_min = \"10m\"\nretry_max = \"1h\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_status_and_the_daemon_decide_every_situation_alike() {
    let sim = Simulator::start(SimConfig {
        validity: HOUR,
        accept_ecdsa: true,
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let table = table();
    let (one_shot, daemon_config) = (root.join("one-shot.toml"), root.join("daemon.toml"));
    let mut texts = (String::new(), in_process::METRICS_TOML.to_owned());
    for s in &table {
        let (cli, daemon) = (format!("{}-cli", s.name), format!("{}-daemon", s.name));
        texts.0 += &in_process::certificate_toml(&sim, root, &cli, SETTINGS);
        texts.1 += &in_process::certificate_toml(&sim, root, &daemon, SETTINGS);
    }
    std::fs::write(&one_shot, texts.0).unwrap();
    std::fs::write(&daemon_config, texts.1).unwrap();

    // Enrolled as the table says; the short-lived ones last, so that they are due (or
    // expired) together.
    let mut order: Vec<&Situation> = table.iter().filter(|s| s.validity.is_some()).collect();
    order.sort_by_key(|s| std::cmp::Reverse(s.validity));
    for s in &order {
        sim.set_validity(s.validity.unwrap()).unwrap();
        enroll(&sim, &one_shot, &format!("{}-cli", s.name)).await;
        enroll(&sim, &daemon_config, &format!("{}-daemon", s.name)).await;
    }
    // "due" passes its renewal time (4 s), "expired" its notAfter (2 s).
    tokio::time::sleep(Duration::from_secs(5)).await;

    let now = SystemTime::now();
    for s in &table {
        for (config, name) in [
            (&one_shot, format!("{}-cli", s.name)),
            (&daemon_config, format!("{}-daemon", s.name)),
        ] {
            let cfg = certificate(config, &name);
            let fingerprint = fingerprint_in(&cfg.dir).unwrap_or_default();
            let mut ledger = (s.ledger)(&fingerprint, now);
            if s.validity.is_none() {
                ledger.enrolled_at = Some(now - HOUR);
            }
            std::fs::create_dir_all(&cfg.dir).unwrap();
            Store::new(&cfg).write_state(&ledger).unwrap();
        }
    }
    let before: Vec<(Option<String>, Option<String>)> = table
        .iter()
        .map(|s| {
            (
                fingerprint_in(&root.join(format!("{}-cli", s.name))),
                fingerprint_in(&root.join(format!("{}-daemon", s.name))),
            )
        })
        .collect();

    // The one-shot commands: status, then renew, for each situation.
    let mut one_shot_said = Vec::new();
    for s in &table {
        let name = format!("{}-cli", s.name);
        let status = kyma_certd(&one_shot, &["status", "--json", "--name", &name]).await;
        let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        let state = status[0]["state"].as_str().unwrap().to_owned();
        let renew = kyma_certd(&one_shot, &["renew", "--name", &name]).await;
        one_shot_said.push((state, renew.status.code().unwrap(), renew));
    }

    // The daemon over the same situations; its states are read before it acts, from
    // what it reports at once.
    let daemon = InProcessDaemon::start(&daemon_config, Clock::system()).await;
    let attempts = table.iter().filter(|s| s.attempted).count();
    wait_for("the daemon's attempts", Duration::from_secs(10), || async {
        let done = table.iter().zip(&before).filter(|(s, (_, was))| {
            s.attempted && fingerprint_in(&root.join(format!("{}-daemon", s.name))) != *was
        });
        (done.count() == attempts).then_some(())
    })
    .await;
    // Time for an attempt that should not happen to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut daemon_states = Vec::new();
    for s in &table {
        daemon_states.push(daemon.state(&format!("{}-daemon", s.name)).await);
    }
    daemon.stop().await;

    let mut disagreements = Vec::new();
    for (((s, (state, exit, renew)), (cli_was, daemon_was)), daemon_state) in table
        .iter()
        .zip(&one_shot_said)
        .zip(&before)
        .zip(&daemon_states)
    {
        let cli_attempted = fingerprint_in(&root.join(format!("{}-cli", s.name))) != *cli_was;
        let daemon_attempted =
            fingerprint_in(&root.join(format!("{}-daemon", s.name))) != *daemon_was;
        // After an attempt the daemon says "valid"; before one, what status said.
        let daemon_expected = if s.attempted { "valid" } else { s.state };
        let row = format!(
            "{:<20} attempted: expected {:<5} renew {:<5} daemon {:<5} | state: expected {:<8} status {:<8} daemon {:<8} | renew exit: expected {} got {}",
            s.name,
            s.attempted,
            cli_attempted,
            daemon_attempted,
            s.state,
            state,
            daemon_state.as_deref().unwrap_or("-"),
            s.exit,
            exit
        );
        if cli_attempted != s.attempted
            || daemon_attempted != s.attempted
            || state != s.state
            || daemon_state.as_deref() != Some(daemon_expected)
            || *exit != s.exit
        {
            disagreements.push(format!(
                "{row}\n    renew said: {}{}",
                String::from_utf8_lossy(&renew.stdout),
                String::from_utf8_lossy(&renew.stderr)
            ));
        }
    }
    assert!(disagreements.is_empty(), "\n{}", disagreements.join("\n"));
    sim.shutdown().await;
}

fn certificate(config: &Path, name: &str) -> kyma_certd::config::CertificateConfig {
    kyma_certd::config::load(config)
        .expect("the configuration loads")
        .certificates
        .into_iter()
        .find(|c| c.name == name)
        .expect("the certificate is configured")
}
