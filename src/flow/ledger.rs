//! The ledger: the facts `state.json` keeps about one certificate, and its one writer.
//! Every change (a renewal attempt, a round of hooks, an enrollment, a revocation, a
//! token used or refused) is a [`Fact`], applied to what the file says at the moment of
//! writing, under the directory lock: a one-shot command, an `enroll` and the daemon
//! never lose each other's records. A fact names the certificate it is about, so an
//! outcome lands on the certificate the attempt used, whatever is current by then.
//!
//! Facts record what happened and when, never a deadline: when to try again is derived
//! from them by `policy` each time it runs, under the clock of that moment.

use std::time::SystemTime;

use url::Url;

use crate::config::Protocol;
use crate::store::{Notified, RefusalRecord, Revocation, StateFile, Store, StoreError};

/// What a failed attempt proved about the certificate it authenticated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// The connector's own words: revoked.
    Revoked,
    /// Refused by something that may sit in front of the connector, with the reason.
    Refused(String),
}

/// How a renewal attempt that reached the connector ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempted {
    Renewed,
    /// The error's one line (never a secret), and what it proved, if anything.
    Failed {
        error: String,
        evidence: Option<Evidence>,
    },
}

/// One thing that happened to a certificate, as `state.json` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// A renewal attempt that reached the connector, authenticated with `fingerprint`.
    Attempt {
        at: SystemTime,
        fingerprint: String,
        outcome: Attempted,
    },
    /// A round of `on_renew` hooks for the certificate `fingerprint`: the hooks (by key)
    /// that succeeded, and the first error if some failed.
    HooksRound {
        at: SystemTime,
        fingerprint: String,
        succeeded: Vec<String>,
        error: Option<String>,
    },
    /// A new enrollment. `told` lists the hooks that need not hear of it (all of them for
    /// a first certificate, which is what the dependents start with); `None` when it
    /// replaced another certificate and every hook must hear of it.
    Enrolled {
        at: SystemTime,
        fingerprint: String,
        protocol: Protocol,
        renewal_url: Option<Url>,
        told: Option<Vec<String>>,
    },
    /// `revoke` revoked the certificate `fingerprint`.
    Revoked { at: SystemTime, fingerprint: String },
    /// A one-time token from `token_file` (by its hash) is about to be sent: burned from
    /// now on, whatever happens.
    TokenUsed { hash: String },
    /// Why the last token from `token_file` did not enroll; `None` once one did.
    TokenError(Option<String>),
}

impl Fact {
    /// Applies the fact to the file's contents.
    pub fn apply(&self, state: &mut StateFile) {
        match self {
            Fact::Attempt {
                at,
                fingerprint,
                outcome,
            } => apply_attempt(state, *at, fingerprint, outcome),
            Fact::HooksRound {
                at,
                fingerprint,
                succeeded,
                error,
            } => apply_round(state, *at, fingerprint, succeeded, error.as_deref()),
            Fact::Enrolled {
                at,
                fingerprint,
                protocol,
                renewal_url,
                told,
            } => {
                // The renewal URL lives in the generation's connection.json; state.json
                // keeps a copy for older versions reading this directory.
                state.renewal_url = renewal_url.clone();
                state.protocol = Some(*protocol);
                state.enrolled_at = Some(*at);
                state.revoked = None;
                state.refused = None;
                state.next_attempt = None;
                state.last_error = None;
                state.consecutive_failures = 0;
                state.attempted = None;
                if let Some(told) = told {
                    state.notified = Some(Notified {
                        fingerprint: fingerprint.clone(),
                        delivered: told.clone(),
                        ..Notified::default()
                    });
                }
            }
            Fact::Revoked { at, fingerprint } => {
                state.revoked = Some(Revocation {
                    at: *at,
                    fingerprint: fingerprint.clone(),
                });
            }
            Fact::TokenUsed { hash } => state.use_token(hash),
            Fact::TokenError(error) => state.token_error = error.clone(),
        }
    }
}

/// The evidence rule, in one place. A success heals every refusal and revocation. The
/// connector's own "revoked" stands for its certificate until then; a refusal only while
/// it is the latest word. A streak belongs to the certificate it was run against: a
/// failure of another certificate than the last attempt's starts a new one.
fn apply_attempt(state: &mut StateFile, at: SystemTime, fingerprint: &str, outcome: &Attempted) {
    let same_certificate = state.attempted.as_deref().is_none_or(|f| f == fingerprint);
    state.last_attempt = Some(at);
    state.attempted = Some(fingerprint.to_owned());
    state.next_attempt = None;
    state.refused = None;
    let (error, evidence) = match outcome {
        Attempted::Renewed => {
            state.last_success = Some(at);
            state.consecutive_failures = 0;
            state.last_error = None;
            state.revoked = None;
            return;
        }
        Attempted::Failed { error, evidence } => (error, evidence),
    };
    if !same_certificate {
        state.consecutive_failures = 0;
    }
    state.consecutive_failures = state.consecutive_failures.saturating_add(1);
    state.set_error(error);
    match evidence {
        Some(Evidence::Revoked) if !state.is_revoked(fingerprint) => {
            state.revoked = Some(Revocation {
                at,
                fingerprint: fingerprint.to_owned(),
            });
        }
        Some(Evidence::Refused(reason)) => {
            state.refused = Some(RefusalRecord {
                at,
                fingerprint: fingerprint.to_owned(),
                reason: reason.clone(),
            });
        }
        Some(Evidence::Revoked) | None => {}
    }
}

/// A round of hooks: what succeeded is added to what the file already says of the same
/// certificate; the streak grows or ends.
fn apply_round(
    state: &mut StateFile,
    at: SystemTime,
    fingerprint: &str,
    succeeded: &[String],
    error: Option<&str>,
) {
    let mut record = state
        .notified
        .take()
        .filter(|n| n.fingerprint == fingerprint)
        .unwrap_or_else(|| Notified {
            fingerprint: fingerprint.to_owned(),
            ..Notified::default()
        });
    for key in succeeded {
        if !record.delivered.contains(key) {
            record.delivered.push(key.clone());
        }
    }
    record.retry_at = None;
    match error {
        None => {
            record.failures = 0;
            record.failed_at = None;
            record.last_error = None;
        }
        Some(error) => {
            record.failures = record.failures.saturating_add(1);
            record.failed_at = Some(at);
            record.last_error = Some(error.to_owned());
        }
    }
    state.notified = Some(record);
}

/// `state` as it is once `facts` are recorded: what the daemon goes by while the file
/// cannot take them.
pub fn with_facts(mut state: StateFile, facts: &[Fact]) -> StateFile {
    for fact in facts {
        fact.apply(&mut state);
    }
    state
}

/// Writes `facts` into `state.json` (with fsyncs: call it off the event loop) and
/// returns the file as written. A certificate directory that is gone is not created
/// again for the record of an attempt or a round of hooks (it may be an unmounted
/// volume, or the operator's to restore): that is an error, and the caller keeps the
/// facts like any unwritten ones. An enrollment and its token create it.
pub fn record(store: &Store, facts: &[Fact]) -> Result<StateFile, StoreError> {
    let about_files = facts
        .iter()
        .any(|f| matches!(f, Fact::Attempt { .. } | Fact::HooksRound { .. }));
    if about_files && !store.dir().is_dir() {
        return Err(StoreError::io(
            "recording in",
            store.dir(),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    store.update_state(|state| {
        for fact in facts {
            fact.apply(state);
        }
    })
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
