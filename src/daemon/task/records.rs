//! What a task records: facts go to the ledger, and when state.json cannot take them
//! they are kept in memory, gone by as if written, and written once the disk recovers.

use tracing::{info, warn};

use super::{READ_TIMEOUT, Task};
use crate::daemon::unwritten::Unwritten;
use crate::flow::ledger::{self, Fact};
use crate::flow::policy;
use crate::pki::verify::timestamp;
use crate::store::{StateFile, Store};

impl Task {
    /// The ledger as the policy should see it: what state.json says (nothing, if it
    /// cannot be read) with the facts it could not take yet on top. Those are written
    /// first, once their backoff allows.
    pub(super) async fn ledger_view(&mut self, on_disk: Option<StateFile>) -> StateFile {
        let due = self
            .unwritten
            .as_ref()
            .is_some_and(|u| u.write_at <= self.ctx.clock.now());
        if due && let Some(written) = self.record(Vec::new()).await {
            return written;
        }
        let ledger = on_disk.unwrap_or_default();
        match &self.unwritten {
            Some(unwritten) => unwritten.overlay(ledger),
            None => ledger,
        }
    }

    /// The ledger read again, with what memory keeps on top (after a write failed).
    pub(super) async fn reread_ledger(&mut self) -> StateFile {
        let store = Store::new(&self.ctx.cfg);
        let on_disk = tokio::time::timeout(
            READ_TIMEOUT,
            tokio::task::spawn_blocking(move || store.read_state().ok()),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
        self.ledger_view(on_disk).await
    }

    /// Records `facts` (after those kept from before) in state.json; returns the file as
    /// written. When it cannot be written, the facts are kept in memory, said once per
    /// try, exposed as `kyma_certd_state_unwritten`, and written once the disk recovers.
    pub(super) async fn record(&mut self, facts: Vec<Fact>) -> Option<StateFile> {
        let (write_failures, mut all) = match self.unwritten.take() {
            Some(kept) => (kept.write_failures, kept.into_facts()),
            None => (0, Vec::new()),
        };
        all.extend(facts);
        if all.is_empty() {
            return None;
        }
        let store = Store::new(&self.ctx.cfg);
        let facts = all.clone();
        let written = tokio::task::spawn_blocking(move || ledger::record(&store, &facts)).await;
        let name = &self.ctx.cfg.name;
        match written {
            Ok(Ok(state)) => {
                if write_failures > 0 {
                    info!(
                        after_failures = write_failures,
                        "state.json can be written again: what was kept in memory is saved"
                    );
                }
                self.ctx.metrics.state_unwritten(name, false);
                Some(state)
            }
            failed => {
                let error = match failed {
                    Ok(Err(e)) => crate::errors::error_chain(&e),
                    _ => "the write was interrupted".to_owned(),
                };
                let backoff = policy::backoff(&self.ctx.cfg);
                let kept = Unwritten::failed(write_failures, all, &backoff, self.ctx.clock.now());
                warn!(
                    %error,
                    failures = kept.write_failures,
                    retry_at = %timestamp(kept.write_at),
                    "cannot record in state.json; kept in memory and gone by until it can be written"
                );
                self.unwritten = Some(Box::new(kept));
                self.ctx.metrics.state_unwritten(name, true);
                None
            }
        }
    }
}
