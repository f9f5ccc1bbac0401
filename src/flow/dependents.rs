//! Tells dependents about the certificate on disk: runs the `on_renew` hooks that the
//! policy says have not heard of it, and turns their outcomes into the ledger's fact.
//! Shared by the daemon and the one-shot `renew`. Does not decide when (see `policy`),
//! how a hook runs (see `hooks`) or where the fact is kept (see `ledger`).
//!
//! The record is durable together with the swap without a second write: a certificate
//! that became current is pending until `state.json` names it as delivered. A crash
//! between the swap and the hooks, a lost `state.json` or a failed hook all leave it
//! pending, and the hooks run (again) at the next start, reload or wake.

use std::time::SystemTime;

use super::ledger::Fact;
use super::policy::Seen;
use crate::config::CertificateConfig;
use crate::hooks::{HookEnv, HookOutcome, hook_key, run_hooks};
use crate::pki::verify::timestamp;
use crate::store::ConsumerPaths;

/// The outcome of one round of notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    pub outcomes: Vec<HookOutcome>,
    /// What the ledger records of the round.
    pub fact: Fact,
}

impl Round {
    /// How many of the hooks run failed.
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| !o.ok).count()
    }
}

/// Runs the hooks of `cfg` named by `keys` (those that have not heard of `seen`, the
/// certificate on disk), in the configured order. Dropping the future stops a running
/// hook (its process group is killed), and the round is not recorded: every hook of it
/// stays pending.
pub async fn tell(
    cfg: &CertificateConfig,
    keys: &[String],
    seen: &Seen,
    paths: &ConsumerPaths,
    now: impl Fn() -> SystemTime,
) -> Round {
    let hooks: Vec<_> = cfg
        .on_renew
        .iter()
        .filter(|hook| keys.contains(&hook_key(hook)))
        .cloned()
        .collect();
    let env = HookEnv {
        name: cfg.name.clone(),
        cert: paths.cert.clone(),
        key: paths.key.clone(),
        chain: paths.chain.clone(),
        ca: paths.ca.clone(),
        fingerprint: seen.fingerprint.clone(),
        not_after: timestamp(seen.not_after),
    };
    let outcomes = run_hooks(&cfg.name, &hooks, &env).await;
    let succeeded = hooks
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
    Round {
        fact: Fact::HooksRound {
            at: now(),
            fingerprint: seen.fingerprint.clone(),
            succeeded,
            error,
        },
        outcomes,
    }
}
