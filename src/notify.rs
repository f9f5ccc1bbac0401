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
use crate::schedule::Backoff;
use crate::store::{ConsumerPaths, Notified, StateFile, Store};
use crate::verify::timestamp;
use crate::x509::CertInfo;

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
    let keys: Vec<String> = cfg.on_renew.iter().map(hook_key).collect();
    let hooks: Vec<String> = state
        .undelivered(fingerprint, &keys)
        .into_iter()
        .cloned()
        .collect();
    let record = state
        .notified
        .as_ref()
        .filter(|n| n.fingerprint == fingerprint);
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
}

impl Round {
    pub fn all_told(&self) -> bool {
        self.left.is_empty()
    }
}

/// Runs the hooks that have not heard of `info` (the certificate on disk) and records the
/// outcome. Hooks that succeeded are not run again for this certificate; the others are
/// retried after a backoff from `retry_min` to `retry_max`. Dropping the future stops a
/// running hook (its process group is killed) and leaves it pending.
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
    let backoff = Backoff::new(cfg.retry_min, cfg.retry_max).ok();
    let recorded = {
        let fingerprint = fingerprint.clone();
        let not_after = info.not_after;
        let error = error.clone();
        // With fsyncs: off the event loop, like every other state.json write.
        let store = Store::new(cfg);
        let update = move || {
            store.update_state(move |state| {
                let mut record = match state.notified.take() {
                    Some(n) if n.fingerprint == fingerprint => n,
                    _ => Notified {
                        fingerprint,
                        ..Notified::default()
                    },
                };
                for key in succeeded {
                    if !record.delivered.contains(&key) {
                        record.delivered.push(key);
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
    };
    let left = match recorded {
        Ok(state) => pending(cfg, &state, &info.fingerprint_sha256),
        Err(e) => {
            // Unrecorded, the whole round counts as pending: the hooks run again (at
            // least once is the promise), not never.
            tracing::warn!(error = %crate::errors::error_chain(&e), "cannot record the notification in state.json; the hooks will run again");
            Pending {
                retry_at: Some(SystemTime::now() + cfg.retry_min),
                last_error: error,
                ..before
            }
        }
    };
    Round { outcomes, left }
}
