//! Tells dependents about the certificate on disk, at least once per certificate: which
//! `on_renew` hooks have not heard of the current certificate yet, running them, and
//! recording in `state.json` which succeeded and when to retry the others. Shared by the
//! daemon and the one-shot `renew`. Does not renew and does not decide how a hook runs
//! (see `hooks`).
//!
//! The record is durable together with the swap without a second write: a certificate
//! that became current is pending until `state.json` names it as delivered. A crash
//! between the swap and the hooks, a lost `state.json` or a failed hook all leave it
//! pending, and the hooks run (again) at the next start, reload or wake.

use std::time::{Duration, SystemTime};

use crate::config::CertificateConfig;
use crate::hooks::{HookEnv, HookOutcome, hook_key, run_hooks};
use crate::pki::verify::timestamp;
use crate::pki::x509::CertInfo;
use crate::schedule::Backoff;
use crate::store::{ConsumerPaths, Notified, StateFile, Store};

/// What is still owed to the dependents of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The hooks (by key) that have not heard of the current certificate.
    pub hooks: Vec<String>,
    /// Not before this time (backoff after a failed round); `None`: now.
    pub retry_at: Option<SystemTime>,
    /// The last failure, one line.
    pub last_error: Option<String>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// Whether a round is due at `now`.
    pub fn is_due(&self, now: SystemTime) -> bool {
        !self.is_empty() && self.retry_at.is_none_or(|at| at <= now)
    }
}

/// The hooks of `cfg` that `state` does not record as told about `fingerprint`.
pub fn pending(cfg: &CertificateConfig, state: &StateFile, fingerprint: &str) -> Pending {
    pending_in(cfg, state.notified.as_ref(), fingerprint)
}

/// [`pending`] from a notification record alone (one kept in memory, say).
fn pending_in(cfg: &CertificateConfig, notified: Option<&Notified>, fingerprint: &str) -> Pending {
    let record = notified.filter(|n| n.fingerprint == fingerprint);
    let hooks: Vec<String> = cfg
        .on_renew
        .iter()
        .map(hook_key)
        .filter(|key| record.is_none_or(|n| !n.delivered.contains(key)))
        .collect();
    Pending {
        retry_at: record
            .and_then(|n| n.retry_at)
            .filter(|_| !hooks.is_empty()),
        last_error: record.and_then(|n| n.last_error.clone()),
        hooks,
    }
}

/// The outcome of one round of notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    pub outcomes: Vec<HookOutcome>,
    /// What is still pending after the round.
    pub left: Pending,
    /// The round's record when `state.json` could not take it. The caller keeps it, and
    /// the backoff it holds, until [`record`] can write it: a hook that succeeded is not
    /// run again, one that failed waits its backoff, whether or not the disk took it.
    pub unrecorded: Option<Notified>,
}

impl Round {
    pub fn all_told(&self) -> bool {
        self.left.is_empty()
    }
}

/// Runs the hooks that have not heard of `info` (the certificate on disk) and records the
/// outcome. Hooks that succeeded are not run again for this certificate; the others are
/// retried after a backoff from `retry_min` to `retry_max`. Dropping the future stops a
/// running hook (its process group is killed) and leaves it pending. `state` is what is
/// known (`state.json`, or the caller's record that it could not write).
pub async fn deliver(
    cfg: &CertificateConfig,
    state: &StateFile,
    info: &CertInfo,
    paths: &ConsumerPaths,
) -> Round {
    let fingerprint = &info.fingerprint_sha256;
    let before = pending(cfg, state, fingerprint);
    if before.is_empty() {
        return Round {
            outcomes: Vec::new(),
            left: before,
            unrecorded: None,
        };
    }
    let hooks: Vec<_> = cfg
        .on_renew
        .iter()
        .filter(|hook| before.hooks.contains(&hook_key(hook)))
        .cloned()
        .collect();
    let env = HookEnv {
        name: cfg.name.clone(),
        cert: paths.cert.clone(),
        key: paths.key.clone(),
        chain: paths.chain.clone(),
        ca: paths.ca.clone(),
        fingerprint: fingerprint.clone(),
        not_after: timestamp(info.not_after),
    };
    let outcomes = run_hooks(&cfg.name, &hooks, &env).await;

    let succeeded: Vec<String> = hooks
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| outcome.ok)
        .map(|(hook, _)| hook_key(hook))
        .collect();
    let error = outcomes.iter().find_map(|o| {
        o.error
            .as_ref()
            .map(|e| format!("{} hook: {e}", o.kind.as_label()))
    });
    let known = state
        .notified
        .clone()
        .filter(|n| n.fingerprint == *fingerprint);
    let next = next_record(
        known,
        fingerprint,
        &succeeded,
        error,
        Backoff::new(cfg.retry_min, cfg.retry_max).ok(),
        info.not_after,
    );
    match record(cfg, next.clone()).await {
        Ok(state) => Round {
            outcomes,
            left: pending(cfg, &state, fingerprint),
            unrecorded: None,
        },
        Err(e) => {
            tracing::warn!(
                error = %crate::errors::error_chain(&e),
                "cannot record the notification in state.json; kept in memory until it can be written"
            );
            Round {
                outcomes,
                left: pending_in(cfg, Some(&next), fingerprint),
                unrecorded: Some(next),
            }
        }
    }
}

/// The record after a round: `known` (what was recorded of this certificate) with the
/// hooks that succeeded added, and the backoff reset or grown.
fn next_record(
    known: Option<Notified>,
    fingerprint: &str,
    succeeded: &[String],
    error: Option<String>,
    backoff: Option<Backoff>,
    not_after: SystemTime,
) -> Notified {
    let mut record = known.unwrap_or_else(|| Notified {
        fingerprint: fingerprint.to_owned(),
        ..Notified::default()
    });
    for key in succeeded {
        if !record.delivered.contains(key) {
            record.delivered.push(key.clone());
        }
    }
    match error {
        None => {
            record.failures = 0;
            record.retry_at = None;
            record.last_error = None;
        }
        Some(error) => {
            record.failures = record.failures.saturating_add(1);
            let now = SystemTime::now();
            let delay = backoff.map_or(Duration::from_secs(30), |b| {
                b.delay(record.failures, now, not_after, rand::random::<f64>())
            });
            record.retry_at = Some(now + delay);
            record.last_error = Some(error);
        }
    }
    record
}

/// Writes a notification record into `state.json` (with fsyncs, off the event loop). What
/// the file already says of the same certificate's delivered hooks is kept.
pub async fn record(
    cfg: &CertificateConfig,
    record: Notified,
) -> Result<StateFile, crate::store::StoreError> {
    let store = Store::new(cfg);
    let update = move || {
        store.update_state(move |state| {
            let mut record = record;
            if let Some(on_disk) = state.notified.take()
                && on_disk.fingerprint == record.fingerprint
            {
                for key in on_disk.delivered {
                    if !record.delivered.contains(&key) {
                        record.delivered.push(key);
                    }
                }
            }
            state.notified = Some(record);
        })
    };
    tokio::task::spawn_blocking(update)
        .await
        .unwrap_or_else(|_| {
            Err(crate::store::StoreError::io(
                "recording",
                cfg.dir.as_path(),
                std::io::Error::other("interrupted"),
            ))
        })
}
