//! `kyma-certd renew`, `kyma-certd status` and the daemon decide the same way: one table
//! of situations (the certificate on disk and what `state.json` records), each set up
//! twice, once for the one-shot command and once for the daemon, and every column of
//! the table checked against both.

mod support;

use std::time::{Duration, SystemTime};

use kyma_certd::clock::Clock;
use kyma_certd::store::{RefusalRecord, Revocation, StateFile, Store};
use support::disk::fingerprint_on_disk;
use support::in_process::{InProcessDaemon, eventually};
use support::world::World;

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

/// The certificate names of a situation: one for the one-shot commands, one for the
/// daemon; both in one configuration, the daemon started after the commands ran.
fn names(s: &Situation) -> [String; 2] {
    [format!("{}-cli", s.name), format!("{}-daemon", s.name)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_status_and_the_daemon_decide_every_situation_alike() {
    let mut world = World::new(HOUR);
    for line in [
        "renew_at = \"50%\"",
        "jitter = \"0%\"",
        "retry_min = \"10m\"",
        "retry_max = \"1h\"",
    ] {
        world.settings.defaults.set(line);
    }
    let table = table();
    let specs: Vec<_> = table
        .iter()
        .flat_map(names)
        .map(|name| world.compass(&name))
        .collect();
    world.write_config(&specs);

    // Enrolled as the table says; the short-lived ones last, so that they are due (or
    // expired) together.
    let mut order: Vec<&Situation> = table.iter().filter(|s| s.validity.is_some()).collect();
    order.sort_by_key(|s| std::cmp::Reverse(s.validity));
    for s in &order {
        world.sim.set_validity(s.validity.unwrap()).unwrap();
        for name in names(s) {
            world.enroll(&name);
        }
    }
    // Renewals get hour-long certificates again: a renewed certificate is then plainly
    // valid, whatever the short-lived ones were.
    world.sim.set_validity(HOUR).unwrap();
    // "due" passes its renewal time (4 s), "expired" its notAfter (2 s).
    tokio::time::sleep(Duration::from_secs(5)).await;

    let now = SystemTime::now();
    let config = kyma_certd::config::load(world.config_path()).expect("the configuration loads");
    for s in &table {
        for name in names(s) {
            let cfg = config.certificates.iter().find(|c| c.name == name).unwrap();
            let fingerprint = fingerprint_on_disk(&cfg.dir).unwrap_or_default();
            let mut ledger = (s.ledger)(&fingerprint, now);
            if s.validity.is_none() {
                ledger.enrolled_at = Some(now - HOUR);
            }
            std::fs::create_dir_all(&cfg.dir).unwrap();
            Store::new(cfg).write_state(&ledger).unwrap();
        }
    }
    let on_disk = |name: &str| fingerprint_on_disk(&world.cert_dir(name));
    let before: Vec<[Option<String>; 2]> = table
        .iter()
        .map(|s| names(s).map(|n| on_disk(&n)))
        .collect();

    // The one-shot commands: status, then renew, for each situation; what they did is
    // read before the daemon starts.
    let mut one_shot = Vec::new();
    for (s, [was, _]) in table.iter().zip(&before) {
        let [name, _] = names(s);
        let status = world.status(&name);
        let state = status["state"].as_str().unwrap().to_owned();
        let renew = world.command(&["renew", "--name", &name]).run();
        let attempted = on_disk(&name) != *was;
        one_shot.push((
            state,
            renew.code(),
            attempted,
            renew.stdout() + &renew.stderr(),
        ));
    }

    // The daemon over the same situations.
    let daemon = InProcessDaemon::start(world.config_path(), Clock::system()).await;
    let due: Vec<usize> = (0..table.len()).filter(|&i| table[i].attempted).collect();
    eventually("the daemon's attempts", Duration::from_secs(10), || async {
        let done = due
            .iter()
            .filter(|&&i| on_disk(&names(&table[i])[1]) != before[i][1]);
        (done.count() == due.len()).then_some(())
    })
    .await;
    // Time for an attempt that should not happen to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut daemon_states = Vec::new();
    for s in &table {
        daemon_states.push(daemon.state(&names(s)[1]).await);
    }
    daemon.stop().await;

    let mut disagreements = Vec::new();
    for (i, s) in table.iter().enumerate() {
        let (state, exit, cli_attempted, said) = &one_shot[i];
        let daemon_attempted = on_disk(&names(s)[1]) != before[i][1];
        let daemon_state = daemon_states[i].as_deref().unwrap_or("-");
        // After an attempt the daemon says "valid"; before one, what status said.
        let daemon_expected = if s.attempted { "valid" } else { s.state };
        if *cli_attempted != s.attempted
            || daemon_attempted != s.attempted
            || state != s.state
            || daemon_state != daemon_expected
            || *exit != s.exit
        {
            disagreements.push(format!(
                "{:<20} attempted: expected {:<5} renew {:<5} daemon {:<5} | state: expected {:<8} status {:<8} daemon {:<8} | renew exit: expected {} got {}\n    renew said: {said}",
                s.name,
                s.attempted,
                cli_attempted,
                daemon_attempted,
                s.state,
                state,
                daemon_state,
                s.exit,
                exit
            ));
        }
    }
    assert!(disagreements.is_empty(), "\n{}", disagreements.join("\n"));
}
