use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::*;
use crate::config::{self, Checks};
use crate::flow::ledger::{Attempted, Evidence, Fact, with_facts};

const DAY: Duration = Duration::from_secs(86_400);
const HOUR: Duration = Duration::from_secs(3600);
const HOST: &str = "host-a";

fn cfg(extra: &str) -> CertificateConfig {
    let text = format!(
        "[[certificate]]\nname = \"orders\"\nprotocol = \"compass\"\ndir = \"/nonexistent/orders\"\nretry_min = \"30s\"\nretry_max = \"1h\"\n{extra}"
    );
    config::parse_with(&text, std::path::Path::new("t.toml"), Checks::Syntax)
        .expect("a valid configuration")
        .certificates
        .remove(0)
}

fn with_hook() -> CertificateConfig {
    cfg("[[certificate.on_renew]]\ncommand = [\"/bin/true\"]\n")
}

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// A 90-day certificate issued at `t(1_750_000_000)`.
fn seen(name: &str) -> Seen {
    let not_before = t(1_750_000_000);
    Seen {
        fingerprint: format!("{name:0>64}"),
        not_before,
        not_after: not_before + 90 * DAY,
    }
}

fn decide_at(
    cfg: &CertificateConfig,
    seen: &Seen,
    ledger: &StateFile,
    now: SystemTime,
) -> Decision {
    decide(&Situation {
        on_disk: &OnDisk::Certificate(seen.clone()),
        ledger,
        cfg,
        host: HOST,
        now,
    })
}

fn failed(at: SystemTime, fingerprint: &str, evidence: Option<Evidence>) -> Fact {
    Fact::Attempt {
        at,
        fingerprint: fingerprint.to_owned(),
        outcome: Attempted::Failed {
            error: "connection refused".into(),
            evidence,
        },
    }
}

#[test]
fn a_fresh_certificate_renews_at_its_renewal_time() {
    let (cfg, cert) = (cfg(""), seen("a"));
    let now = cert.not_before + DAY;
    let d = decide_at(&cfg, &cert, &StateFile::default(), now);
    assert_eq!(d.state, CertState::Valid);
    assert_eq!(d.renew_at, d.renewal_time);
    let at = d.renew_at.unwrap();
    // 70% of 90 days, minus at most 5% jitter.
    assert!(at <= cert.not_before + 63 * DAY && at >= cert.not_before + 58 * DAY);
    assert!(!d.renew_due(now) && d.renew_due(at));
    assert_eq!(d.hooks, None);
}

#[test]
fn a_failure_backs_off_from_when_it_happened_and_the_next_look_agrees() {
    let (cfg, cert) = (cfg(""), seen("a"));
    let due = decide_at(&cfg, &cert, &StateFile::default(), cert.not_before)
        .renew_at
        .unwrap();
    let ledger = with_facts(
        StateFile::default(),
        &[failed(due, &cert.fingerprint, None)],
    );
    let first = decide_at(&cfg, &cert, &ledger, due);
    assert_eq!(first.state, CertState::Backoff);
    let retry = first.renew_at.unwrap();
    assert!(retry >= due + Duration::from_secs(30) && retry <= due + Duration::from_secs(60));
    // Derived, not drawn: looking again later gives the same time.
    assert_eq!(
        decide_at(&cfg, &cert, &ledger, due + Duration::from_secs(10)).renew_at,
        Some(retry)
    );
}

#[test]
fn a_refusal_and_a_revocation_are_named_and_a_revocation_is_probed_every_retry_max() {
    let (cfg, cert) = (cfg(""), seen("a"));
    let now = cert.not_before + 70 * DAY;
    let refused = with_facts(
        StateFile::default(),
        &[failed(
            now,
            &cert.fingerprint,
            Some(Evidence::Refused("http 403".into())),
        )],
    );
    let d = decide_at(&cfg, &cert, &refused, now);
    assert_eq!(
        (d.state, d.reason.as_deref()),
        (CertState::Refused, Some("http 403"))
    );

    let revoked = with_facts(
        StateFile::default(),
        &[failed(now, &cert.fingerprint, Some(Evidence::Revoked))],
    );
    let d = decide_at(&cfg, &cert, &revoked, now);
    assert_eq!(d.state, CertState::Revoked);
    assert_eq!(d.renew_at, Some(now + HOUR));
    // A later network failure does not un-say it; the next probe counts from it.
    let later = with_facts(revoked, &[failed(now + HOUR, &cert.fingerprint, None)]);
    let d = decide_at(&cfg, &cert, &later, now + HOUR);
    assert_eq!(
        (d.state, d.renew_at),
        (CertState::Revoked, Some(now + 2 * HOUR))
    );
    // The last probe is at notAfter.
    let last = cert.not_after - Duration::from_secs(60);
    let later = with_facts(later, &[failed(last, &cert.fingerprint, None)]);
    let d = decide_at(&cfg, &cert, &later, last);
    assert_eq!(d.renew_at, Some(cert.not_after));
}

#[test]
fn an_outcome_of_another_certificate_says_nothing_about_the_current_one() {
    // A probe of the old certificate raced an `enroll`: its "revoked" and its streak
    // stay with the old one.
    let (cfg, old, new) = (cfg(""), seen("old"), seen("new"));
    let now = new.not_before + DAY;
    let ledger = with_facts(
        StateFile::default(),
        &[
            failed(now, &old.fingerprint, None),
            failed(now, &old.fingerprint, Some(Evidence::Revoked)),
        ],
    );
    let d = decide_at(&cfg, &new, &ledger, now);
    assert_eq!(d.state, CertState::Valid);
    assert_eq!(d.renew_at, d.renewal_time);
}

#[test]
fn nothing_usable_on_disk_needs_an_enrollment_and_says_why() {
    let cfg = cfg("");
    let decide_missing = |ledger: &StateFile, why: Option<&str>| {
        decide(&Situation {
            on_disk: &OnDisk::Missing(why.map(str::to_owned)),
            ledger,
            cfg: &cfg,
            host: HOST,
            now: t(1_800_000_000),
        })
    };
    let d = decide_missing(&StateFile::default(), None);
    assert!(d.needs_enrollment() && d.wake_at().is_none());
    assert!(d.reason.unwrap().contains("never enrolled"));
    let enrolled = StateFile {
        enrolled_at: Some(t(1_790_000_000)),
        ..StateFile::default()
    };
    assert!(
        decide_missing(&enrolled, None)
            .reason
            .unwrap()
            .contains("no certificate is on disk")
    );
    assert!(
        decide_missing(&enrolled, Some("key does not match"))
            .reason
            .unwrap()
            .contains("key does not match")
    );
    let cert = seen("a");
    let d = decide_at(&cfg, &cert, &StateFile::default(), cert.not_after);
    assert_eq!((d.state, d.renew_at), (CertState::Expired, None));
}

#[test]
fn files_that_cannot_be_read_are_looked_at_again_after_a_growing_backoff() {
    let cfg = cfg("");
    let now = t(1_800_000_000);
    let delays: Vec<u64> = (1..=9)
        .map(|looks| {
            let d = decide(&Situation {
                on_disk: &OnDisk::Unreadable {
                    why: "EACCES".into(),
                    looks,
                },
                ledger: &StateFile::default(),
                cfg: &cfg,
                host: HOST,
                now,
            });
            assert_eq!((d.state, d.renew_at), (CertState::Backoff, None));
            d.look_again_at
                .unwrap()
                .duration_since(now)
                .unwrap()
                .as_secs()
        })
        .collect();
    assert_eq!(delays, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
}

#[test]
fn hooks_are_due_at_once_and_after_a_failed_round_wait_their_backoff() {
    let cfg = cfg(
        "[[certificate.on_renew]]\ncommand = [\"/bin/true\"]\n[[certificate.on_renew]]\ncommand = [\"/bin/false\"]\n",
    );
    let cert = seen("a");
    let now = cert.not_before + DAY;
    let d = decide_at(&cfg, &cert, &StateFile::default(), now);
    let hooks = d.hooks.unwrap();
    assert_eq!((hooks.keys.len(), hooks.at), (2, now));
    let round = Fact::HooksRound {
        at: now,
        fingerprint: cert.fingerprint.clone(),
        succeeded: vec!["command:/bin/true".into()],
        error: Some("command hook: exit 1".into()),
    };
    let ledger = with_facts(StateFile::default(), &[round]);
    let hooks = decide_at(&cfg, &cert, &ledger, now).hooks.unwrap();
    assert_eq!(hooks.keys, ["command:/bin/false"]);
    assert!(hooks.at >= now + Duration::from_secs(30) && hooks.at <= now + Duration::from_secs(60));
    assert_eq!(hooks.last_error.as_deref(), Some("command hook: exit 1"));
}

#[test]
fn a_fact_recorded_under_a_clock_days_ahead_counts_as_now_once_it_is_corrected() {
    let (cfg, cert) = (cfg(""), seen("a"));
    let now = cert.not_before + 70 * DAY;
    let ahead = now + 10 * DAY;
    let ledger = with_facts(
        StateFile::default(),
        &[
            failed(ahead, &cert.fingerprint, None),
            Fact::HooksRound {
                at: ahead,
                fingerprint: cert.fingerprint.clone(),
                succeeded: vec![],
                error: Some("x".into()),
            },
        ],
    );
    let _ = cfg;
    let cfg = with_hook();
    let d = decide_at(&cfg, &cert, &ledger, now);
    assert!(d.renew_at.unwrap() <= now + HOUR, "{:?}", d.renew_at);
    assert!(d.hooks.unwrap().at <= now + HOUR);
}

/// A ledger built by any sequence of outcomes, recorded at any times up to ten days
/// either side of the certificate's life (a clock stepped forward and back).
fn ledgers() -> impl Strategy<Value = (Vec<Fact>, SystemTime)> {
    let cert = seen("a");
    let other = seen("b");
    let base = cert.not_before;
    let time =
        move || (0u64..110 * 86_400).prop_map(move |s| base - 10 * DAY + Duration::from_secs(s));
    let fingerprint = prop_oneof![
        Just(cert.fingerprint.clone()),
        Just(other.fingerprint.clone())
    ];
    let evidence = prop_oneof![
        Just(None),
        Just(Some(Evidence::Revoked)),
        Just(Some(Evidence::Refused("tls alert unknown_ca".into())))
    ];
    let attempt = (time(), fingerprint.clone(), evidence, any::<bool>()).prop_map(
        |(at, fingerprint, evidence, ok)| Fact::Attempt {
            at,
            fingerprint,
            outcome: if ok {
                Attempted::Renewed
            } else {
                Attempted::Failed {
                    error: "x".into(),
                    evidence,
                }
            },
        },
    );
    let round = (time(), fingerprint.clone(), any::<bool>()).prop_map(|(at, fingerprint, ok)| {
        Fact::HooksRound {
            at,
            fingerprint,
            succeeded: if ok {
                vec!["command:/bin/true".into()]
            } else {
                vec![]
            },
            error: (!ok).then(|| "x".into()),
        }
    });
    let revoked =
        (time(), fingerprint).prop_map(|(at, fingerprint)| Fact::Revoked { at, fingerprint });
    (
        proptest::collection::vec(prop_oneof![4 => attempt, 2 => round, 1 => revoked], 0..12),
        time(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever happened and whatever the clock says now: never expired while notAfter
    /// is ahead; never a wait longer than retry_max past the renewal time (so a clock
    /// corrected after days ahead or behind finds the certificate within retry_max);
    /// a retry never after notAfter; hooks never further than retry_max; and a
    /// certificate with no failure on record renews exactly at its renewal time.
    #[test]
    fn decisions_hold_under_any_outcomes_and_clock_steps((facts, now) in ledgers()) {
        let cfg = with_hook();
        let cert = seen("a");
        let ledger = with_facts(StateFile::default(), &facts);
        let d = decide_at(&cfg, &cert, &ledger, now);
        if now < cert.not_after {
            prop_assert_ne!(d.state, CertState::Expired);
            let renew_at = d.renew_at.expect("a valid certificate always has a next attempt");
            let renewal_time = d.renewal_time.unwrap();
            prop_assert!(renew_at <= renewal_time.max(now + HOUR), "{:?} > {:?}", renew_at, renewal_time);
            prop_assert!(renew_at <= cert.not_after);
            if let Some(hooks) = &d.hooks {
                prop_assert!(hooks.at <= now + HOUR);
            }
            if d.state == CertState::Valid {
                prop_assert_eq!(renew_at, renewal_time);
            }
        } else {
            prop_assert_eq!(d.state, CertState::Expired);
            prop_assert_eq!(d.wake_at(), None);
        }
        // The same facts and the same time: the same decision.
        prop_assert_eq!(decide_at(&cfg, &cert, &ledger, now), d);
    }

    /// Backoff is bounded: after any number of failures, the retry is at least
    /// retry_min after the last failure (as seen now) and at most retry_max.
    #[test]
    fn backoff_stays_between_retry_min_and_retry_max(failures in 1usize..40, offset in 0u64..86_400) {
        let (cfg, cert) = (cfg(""), seen("a"));
        let at = cert.not_before + 70 * DAY + Duration::from_secs(offset);
        let facts: Vec<Fact> = (0..failures).map(|_| failed(at, &cert.fingerprint, None)).collect();
        let ledger = with_facts(StateFile::default(), &facts);
        let retry = decide_at(&cfg, &cert, &ledger, at).renew_at.unwrap();
        let wait = retry.duration_since(at).unwrap();
        prop_assert!(wait >= Duration::from_secs(1) && wait <= HOUR, "{:?}", wait);
    }
}
