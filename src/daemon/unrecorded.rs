//! A notification record that `state.json` could not take (disk full, a read-only
//! remount, an immutable file), kept in memory with the backoff of its own write. The
//! hooks go on from it as if it had been written: one that succeeded is not run again,
//! one that failed waits its backoff. Without it, every look read the old record from
//! disk, found the hooks due, and ran them again at once. Does not run hooks (see
//! `notify`).

use std::time::SystemTime;

use tracing::{info, warn};

use crate::config::CertificateConfig;
use crate::notify;
use crate::pki::verify::timestamp;
use crate::schedule::Backoff;
use crate::store::{Notified, StateFile};

#[derive(Debug)]
pub(super) struct Unrecorded {
    record: Notified,
    /// Failed writes in a row, for the write's backoff.
    write_failures: u32,
    /// When to try writing again.
    write_at: SystemTime,
}

impl Unrecorded {
    /// A record whose write just failed once more (or for the first time).
    pub fn failed(
        previous: Option<Unrecorded>,
        record: Notified,
        backoff: &Backoff,
        not_after: SystemTime,
    ) -> Unrecorded {
        let write_failures = previous.map_or(0, |p| p.write_failures).saturating_add(1);
        let now = SystemTime::now();
        let write_at = now + backoff.delay(write_failures, now, not_after, rand::random::<f64>());
        Unrecorded {
            record,
            write_failures,
            write_at,
        }
    }

    /// When the write is tried again.
    pub fn write_at(&self) -> SystemTime {
        self.write_at
    }

    /// `state` as it would be had the record been written.
    pub fn overlay(&self, mut state: StateFile) -> StateFile {
        state.notified = Some(self.record.clone());
        state
    }

    /// Writes the record if its time has come. `Ok(())`: written, forget it; `Err`: kept,
    /// with the next try further off (said once per try, with its time).
    pub async fn write_if_due(
        self,
        cfg: &CertificateConfig,
        backoff: &Backoff,
        not_after: SystemTime,
    ) -> Result<(), Unrecorded> {
        if SystemTime::now() < self.write_at {
            return Err(self);
        }
        match notify::record(cfg, self.record.clone()).await {
            Ok(_) => {
                info!(
                    after_failures = self.write_failures,
                    "state.json can be written again: the notification record is saved"
                );
                Ok(())
            }
            Err(e) => {
                let record = self.record.clone();
                let next = Unrecorded::failed(Some(self), record, backoff, not_after);
                warn!(
                    error = %crate::errors::error_chain(&e),
                    failures = next.write_failures,
                    retry_at = %timestamp(next.write_at),
                    "state.json still cannot be written; the notification record stays in memory"
                );
                Err(next)
            }
        }
    }
}
