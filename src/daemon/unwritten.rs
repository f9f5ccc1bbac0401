//! Facts that `state.json` could not take (disk full, a read-only remount, an immutable
//! file), kept in memory with the backoff of their own write. The policy goes by them as
//! if they had been written: a hook that succeeded is not run again, one that failed and
//! a renewal that failed wait their backoff. Without them, every look read the old record
//! from disk, found the hooks due, and ran them again at once. Does not decide (see
//! `policy`) and does not write (see `ledger`).

use std::time::SystemTime;

use crate::flow::ledger::{self, Fact};
use crate::schedule::Backoff;
use crate::store::StateFile;

#[derive(Debug)]
pub(super) struct Unwritten {
    /// Oldest first: applied in the order they happened.
    facts: Vec<Fact>,
    /// Failed writes in a row, for the write's backoff.
    pub write_failures: u32,
    /// When to try writing again.
    pub write_at: SystemTime,
}

impl Unwritten {
    /// Facts whose write just failed, once more or for the first time. The write is tried
    /// again after a backoff from `retry_min` to `retry_max` (earlier if a new fact comes).
    pub fn failed(
        write_failures: u32,
        facts: Vec<Fact>,
        backoff: &Backoff,
        now: SystemTime,
    ) -> Self {
        let write_failures = write_failures.saturating_add(1);
        Unwritten {
            facts,
            write_failures,
            write_at: now + backoff.ceiling(write_failures - 1),
        }
    }

    /// `state` as it would be had the facts been written.
    pub fn overlay(&self, state: StateFile) -> StateFile {
        ledger::with_facts(state, &self.facts)
    }

    pub fn into_facts(self) -> Vec<Fact> {
        self.facts
    }
}
