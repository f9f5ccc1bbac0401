//! The renewal policy: one pure function from what the files say, what the ledger
//! remembers, the configuration and the time now, to what should happen — renew (or
//! probe, or retry) at T, tell the dependents at T, look again at T, or wait for a new
//! enrollment. The daemon, `renew` and `status` all go by it; nothing else decides.
//!
//! Nothing here reads the clock or keeps a deadline. Retry, probe and hook times are
//! derived from recorded facts (when the last attempt or round happened, how many failed
//! in a row, what they proved, about which certificate) each time the policy runs, and a
//! fact recorded under a clock that was ahead counts as if it happened now: after the
//! clock is corrected, no wait is longer than `retry_max` past the renewal time.

use std::time::{Duration, SystemTime};

use crate::config::CertificateConfig;
use crate::hooks::hook_key;
use crate::pki::verify::timestamp;
use crate::pki::x509::CertInfo;
use crate::report::CertState;
use crate::schedule::{self, Backoff};
use crate::store::StateFile;

/// What the files say about the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnDisk {
    /// No certificate; `Some(why)` when one is there but cannot be used.
    Missing(Option<String>),
    /// The files could not be read (a held lock, permissions, a FIFO): nothing is known
    /// about the certificate. `looks`: how many looks in a row could not read them.
    Unreadable {
        why: String,
        looks: u32,
    },
    Certificate(Seen),
}

/// What the policy needs of the certificate on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// SHA-256, lower-case hex.
    pub fingerprint: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl From<&CertInfo> for Seen {
    fn from(info: &CertInfo) -> Seen {
        Seen {
            fingerprint: info.fingerprint_sha256.clone(),
            not_before: info.not_before,
            not_after: info.not_after,
        }
    }
}

/// Everything a decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct Situation<'a> {
    pub on_disk: &'a OnDisk,
    pub ledger: &'a StateFile,
    pub cfg: &'a CertificateConfig,
    /// This machine's name, for the jitter seeds (`schedule::host_name`).
    pub host: &'a str,
    pub now: SystemTime,
}

/// What to do about one certificate, as of `Situation::now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub state: CertState,
    /// When to attempt a renewal: the renewal time, a retry after failures, or the next
    /// probe of a revoked certificate. `None`: no attempt can be made (nothing usable on
    /// disk, or the files cannot be read).
    pub renew_at: Option<SystemTime>,
    /// The certificate's renewal time by its dates and this host's jitter.
    pub renewal_time: Option<SystemTime>,
    /// The dependents that have not heard of the current certificate.
    pub hooks: Option<HooksDue>,
    /// Files that could not be read are looked at again then.
    pub look_again_at: Option<SystemTime>,
    /// Why the state is what it is, when it is not plainly valid.
    pub reason: Option<String>,
    /// Failed attempts in a row with the certificate on disk (a streak of another
    /// certificate does not count).
    pub failures: u32,
}

/// `on_renew` hooks still owed the current certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HooksDue {
    /// By [`hook_key`].
    pub keys: Vec<String>,
    /// The next round: now, or after the backoff of the rounds that failed.
    pub at: SystemTime,
    pub last_error: Option<String>,
}

impl Decision {
    /// Only a new one-time token helps.
    pub fn needs_enrollment(&self) -> bool {
        matches!(self.state, CertState::Missing | CertState::Expired)
    }

    /// A new one-time token is wanted: only an enrollment helps (missing, expired), or
    /// is the sure way out (revoked, though it is still probed). What `token_file` and
    /// `enroll --if-needed` go by.
    pub fn wants_token(&self) -> bool {
        self.needs_enrollment() || self.state == CertState::Revoked
    }

    pub fn renew_due(&self, now: SystemTime) -> bool {
        self.renew_at.is_some_and(|at| at <= now)
    }

    pub fn hooks_due(&self, now: SystemTime) -> bool {
        self.hooks.as_ref().is_some_and(|h| h.at <= now)
    }

    /// The earliest time something is to be done; `None`: nothing until the files change.
    pub fn wake_at(&self) -> Option<SystemTime> {
        [
            self.renew_at,
            self.hooks.as_ref().map(|h| h.at),
            self.look_again_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// The decision for one certificate.
pub fn decide(s: &Situation<'_>) -> Decision {
    let seen = match s.on_disk {
        OnDisk::Missing(why) => return missing(s.ledger, why.as_deref()),
        OnDisk::Unreadable { why, looks } => {
            return Decision {
                state: CertState::Backoff,
                look_again_at: Some(s.now + unreadable_delay(s.cfg, *looks)),
                reason: Some(why.clone()),
                ..Decision::nothing(CertState::Backoff)
            };
        }
        OnDisk::Certificate(seen) => seen,
    };
    if seen.not_after <= s.now {
        return Decision {
            reason: Some(format!(
                "the certificate expired at {}",
                timestamp(seen.not_after)
            )),
            ..Decision::nothing(CertState::Expired)
        };
    }
    let backoff = backoff(s.cfg);
    let seed = |salt: &str, n: u32| seeded_unit(seen, s.host, salt, n);
    // A fact from the future was recorded under a clock that was ahead: it counts as now.
    let at_the_latest_now = |t: SystemTime| t.min(s.now);
    let renewal_time = schedule::renewal_time(
        seen.not_before,
        seen.not_after,
        s.cfg.renew,
        s.cfg.jitter,
        schedule::jitter_seed(&seen.fingerprint, s.host),
    );
    let ledger = s.ledger;
    let ours = ledger
        .attempted
        .as_deref()
        .is_none_or(|f| f == seen.fingerprint);
    let failures = if ours { ledger.consecutive_failures } else { 0 };
    let last_attempt = ledger.last_attempt.filter(|_| ours);

    let (state, renew_at, reason) = if let Some(revoked) = ledger
        .revoked
        .as_ref()
        .filter(|r| r.fingerprint == seen.fingerprint)
    {
        // Probed every retry_max, the last time at notAfter: a lifted revocation heals
        // while the certificate can still renew.
        let since = last_attempt.map_or(revoked.at, |a| a.max(revoked.at));
        let probe = backoff.revocation_probe(at_the_latest_now(since), seen.not_after);
        let reason = format!(
            "revoked since {}; probed every {} until it expires",
            timestamp(revoked.at),
            humantime::format_duration(s.cfg.retry_max)
        );
        (CertState::Revoked, probe, Some(reason))
    } else if failures > 0 {
        let since = at_the_latest_now(last_attempt.unwrap_or(s.now));
        let delay = backoff.delay(failures, since, seen.not_after, seed("attempt", failures));
        // Also before the renewal time: a renewal asked for (SIGUSR1, `renew --force`)
        // that failed is retried until it succeeds, like one that was due.
        let retry = since + delay;
        match ledger.refusal_of(&seen.fingerprint) {
            Some(refusal) => (CertState::Refused, retry, Some(refusal.to_owned())),
            None => (CertState::Backoff, retry, None),
        }
    } else {
        (CertState::Valid, renewal_time, None)
    };
    Decision {
        state,
        renew_at: Some(renew_at),
        renewal_time: Some(renewal_time),
        hooks: hooks_due(s, seen, &backoff),
        look_again_at: None,
        reason,
        failures,
    }
}

impl Decision {
    fn nothing(state: CertState) -> Decision {
        Decision {
            state,
            renew_at: None,
            renewal_time: None,
            hooks: None,
            look_again_at: None,
            reason: None,
            failures: 0,
        }
    }
}

/// Nothing usable on disk: why, as far as the ledger knows.
fn missing(ledger: &StateFile, unusable: Option<&str>) -> Decision {
    let reason = match (unusable, &ledger.revoked, ledger.enrolled_at) {
        (Some(why), _, _) => format!("the certificate on disk is unusable: {why}"),
        // `revoke` removes what it revoked: say so, rather than only "missing".
        (None, Some(r), _) => format!(
            "{} was revoked at {} and removed with its key; enroll with a new one-time token",
            &r.fingerprint[..r.fingerprint.len().min(16)],
            timestamp(r.at)
        ),
        (None, None, Some(at)) => format!(
            "enrolled at {}, but no certificate is on disk now",
            timestamp(at)
        ),
        (None, None, None) => "never enrolled here: run `kyma-certd enroll`".to_owned(),
    };
    Decision {
        reason: Some(reason),
        ..Decision::nothing(CertState::Missing)
    }
}

/// The hooks that have not heard of `seen`, and when their next round is: now, or after
/// the backoff of the failed rounds, counted from the last one (or now, if that was
/// recorded under a clock that was ahead, or by a version that kept only a deadline).
fn hooks_due(s: &Situation<'_>, seen: &Seen, backoff: &Backoff) -> Option<HooksDue> {
    let record = s
        .ledger
        .notified
        .as_ref()
        .filter(|n| n.fingerprint == seen.fingerprint);
    let keys: Vec<String> = s
        .cfg
        .on_renew
        .iter()
        .map(hook_key)
        .filter(|key| record.is_none_or(|n| !n.delivered.contains(key)))
        .collect();
    if keys.is_empty() {
        return None;
    }
    let at = match record {
        Some(n) if n.failures > 0 => {
            let since = n.failed_at.unwrap_or(s.now).min(s.now);
            let unit = seeded_unit(seen, s.host, "hooks", n.failures);
            since + backoff.delay(n.failures, since, seen.not_after, unit)
        }
        _ => s.now,
    };
    Some(HooksDue {
        keys,
        at,
        last_error: record.and_then(|n| n.last_error.clone()),
    })
}

/// A backoff's jitter: spread over a fleet (the host is in the seed), yet the same each
/// time the policy runs over the same facts, so a decision does not move by looking again.
fn seeded_unit(seen: &Seen, host: &str, what: &str, failures: u32) -> f64 {
    let seed = schedule::jitter_seed(format!("{}/{what}/{failures}", seen.fingerprint), host);
    schedule::seeded_unit(seed)
}

/// `retry_min`..`retry_max` of the configuration (validated there; a fallback rather than
/// a spin should it ever not be).
pub fn backoff(cfg: &CertificateConfig) -> Backoff {
    Backoff::new(cfg.retry_min, cfg.retry_max).unwrap_or_else(|_| {
        Backoff::new(Duration::from_secs(30), Duration::from_secs(3600))
            .expect("constant bounds are valid")
    })
}

/// `retry_min`, doubled for each look in a row that could not read the files, at most
/// `retry_max`.
fn unreadable_delay(cfg: &CertificateConfig, looks: u32) -> Duration {
    backoff(cfg).ceiling(looks.saturating_sub(1))
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
