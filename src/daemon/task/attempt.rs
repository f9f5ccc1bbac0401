//! One renewal attempt: under the concurrency bound, recorded in the ledger, and what
//! its outcome means, as the policy sees it after the record.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;
use tracing::{debug, error, info, warn};

use super::{Task, TaskContext, report};
use crate::flow::policy::{OnDisk, Seen};
use crate::flow::{self, FlowError};
use crate::pki::verify::timestamp;
use crate::report::CertState;
use crate::store::{StateFile, Store};

impl Task {
    /// One renewal attempt, its record, and what follows from its outcome.
    pub(super) async fn renew(&mut self, seen: &Seen) -> ControlFlow<()> {
        // The permit is held until the outcome is logged, so that the log shows at most
        // `max_concurrent_renewals` attempts between "renewing" and their outcome.
        let Some((attempt, took, permit)) = renew_once(&mut self.ctx, &self.store).await else {
            return ControlFlow::Break(());
        };
        // What arrived meanwhile is answered already: a SIGUSR1 by this attempt, a change
        // to the files (its own swap, say) by the look at the top of the loop.
        self.ctx.control.clear();
        let was = self.state;
        let recorded = match attempt.fact(self.ctx.clock.now()) {
            Some(fact) => self.record(vec![fact]).await,
            // Not an attempt: the files expired, vanished or were replaced meanwhile, and
            // the next look says which.
            None => return ControlFlow::Continue(()),
        };
        let ledger = match recorded {
            Some(state) => state,
            None => self.reread_ledger().await,
        };
        // Recorded before counted and said: whoever sees the count or the line sees the
        // record and the new state too.
        match &attempt.result {
            Ok(renewed) => self.renewed(renewed, took, &ledger),
            Err(e) => {
                let name = &self.ctx.cfg.name;
                self.ctx.metrics.renewal_failed(name, e.reason(), took);
                self.failed(e, seen, &ledger, was);
            }
        }
        drop(permit);
        ControlFlow::Continue(())
    }

    /// The new certificate leaves "renewing" with its permit: a scrape never sees more
    /// than `max_concurrent_renewals` certificates renewing. Hooks may take their whole
    /// timeout: they run at the next look, which finds the new certificate pending, and
    /// do not hold up other renewals.
    pub(super) fn renewed(&mut self, renewed: &flow::Renewed, took: Duration, ledger: &StateFile) {
        self.ctx.metrics.renewal_succeeded(&self.ctx.cfg.name, took);
        info!(
            old = %renewed.previous.fingerprint_sha256,
            new = %renewed.info.fingerprint_sha256,
            not_after = %timestamp(renewed.info.not_after),
            took_ms = took.as_millis() as u64,
            "renewed {} -> {}, valid until {}",
            short(&renewed.previous.fingerprint_sha256),
            short(&renewed.info.fingerprint_sha256),
            timestamp(renewed.info.not_after)
        );
        if matches!(self.state, Some(CertState::Revoked | CertState::Refused)) {
            info!("the certificate renewed after it was refused or revoked: healed");
        }
        let seen = Seen::from(&renewed.info);
        if renewed.ca_changed {
            self.ctx.metrics.ca_changed(&self.ctx.cfg.name);
        }
        // Its own swap, not a replacement by someone else.
        self.known = None;
        self.note_valid(&seen);
        let decision = self.decide(&OnDisk::Certificate(seen.clone()), ledger);
        self.report(&decision, &seen);
    }

    /// Says what the failure of an attempt with `seen` means and when the policy tries
    /// again.
    pub(super) fn failed(
        &mut self,
        error: &FlowError,
        seen: &Seen,
        ledger: &StateFile,
        was: Option<CertState>,
    ) {
        let decision = self.decide(&OnDisk::Certificate(seen.clone()), ledger);
        let now = self.ctx.clock.now();
        let at = decision.renew_at.unwrap_or(now);
        let retry_in_seconds = at.duration_since(now).unwrap_or_default().as_secs();
        let wait = humantime::format_duration(Duration::from_secs(retry_in_seconds));
        let chain = crate::errors::error_chain(error);
        let failures = decision.failures;
        let reason = error.reason().as_str();
        match decision.state {
            CertState::Revoked if was != Some(CertState::Revoked) => error!(
                reason,
                retry_in_seconds,
                error = %chain,
                not_after = %timestamp(seen.not_after),
                "the connector revoked the certificate: enroll again with `kyma-certd enroll` and a new one-time token; meanwhile probing every {} until it expires, in case the revocation is lifted",
                humantime::format_duration(self.ctx.cfg.retry_max)
            ),
            CertState::Revoked => warn!(
                reason,
                consecutive_failures = failures,
                retry_in_seconds,
                error = %chain,
                "the certificate is still revoked; probing again in {wait}"
            ),
            CertState::Refused => warn!(
                reason,
                refusal = decision.reason.as_deref().unwrap_or_default(),
                consecutive_failures = failures,
                retry_in_seconds,
                error = %chain,
                "renewal refused ({}) by something in front of the connector or the connector itself; the certificate stays valid; retrying in {wait}",
                decision.reason.as_deref().unwrap_or_default()
            ),
            _ => warn!(
                reason,
                consecutive_failures = failures,
                retry_in_seconds,
                error = %chain,
                "renewal failed; retrying in {wait}"
            ),
        }
        self.report(&decision, seen);
    }
}

/// One renewal under the concurrency bound; `None` when cancelled (shutdown or removal).
async fn renew_once(
    ctx: &mut TaskContext,
    store: &Store,
) -> Option<(flow::RenewAttempt, Duration, OwnedSemaphorePermit)> {
    let permits = Arc::clone(&ctx.permits);
    let permit = tokio::select! {
        permit = permits.acquire_owned() => permit.ok()?,
        () = ctx.cancel.cancelled() => return None,
    };
    ctx.metrics.set_state(&ctx.cfg.name, CertState::Renewing);
    report(ctx, CertState::Renewing, None);
    info!("renewing");
    let started = Instant::now();
    // Abandoning a renewal drops it between awaits: before the swap nothing is on disk,
    // and the swap itself runs to completion on the blocking pool.
    let attempt = tokio::select! {
        attempt = flow::renew(&ctx.cfg, store) => attempt,
        () = ctx.cancel.cancelled() => {
            info!("renewal abandoned: stopping");
            return None;
        }
    };
    let took = started.elapsed();
    match &attempt.result {
        // Nothing was attempted: no counter moves and the ledger keeps its record.
        Err(e) if e.is_superseded() => {
            info!(error = %crate::errors::error_chain(e), "renewal discarded");
        }
        Err(e) if !e.reached_connector() => {
            debug!(error = %crate::errors::error_chain(e), "not renewing");
        }
        _ => {}
    }
    Some((attempt, took, permit))
}

fn short(fingerprint: &str) -> &str {
    &fingerprint[..fingerprint.len().min(16)]
}
