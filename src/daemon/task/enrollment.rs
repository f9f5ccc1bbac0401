//! When only a new enrollment can help (nothing usable on disk, expired, revoked): the
//! complaint, the wait for an operator, and a one-time token that appears in
//! `token_file`, used once.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};

use super::{READ_TIMEOUT, Task, Woke, report, wait_until};
use crate::daemon::mailbox::Control;
use crate::flow::ledger::{self, Fact};
use crate::flow::policy::Decision;
use crate::flow::{self};
use crate::pki::verify::timestamp;
use crate::report::CertState;
use crate::store::Store;

/// How often a certificate that needs a new enrollment is complained about.
const COMPLAINT_INTERVAL: Duration = Duration::from_secs(3600);

impl Task {
    /// Reports the state, complains (once an hour), and waits for the files to change.
    pub(super) async fn wait_for_enrollment(&mut self, decision: &Decision) -> ControlFlow<()> {
        if self.ctx.cfg.token_file.is_some() && self.enroll_from_token_file().await {
            return ControlFlow::Continue(());
        }
        let ctx = &self.ctx;
        let state = decision.state;
        self.known = None;
        self.state = Some(state);
        if state == CertState::Missing {
            ctx.metrics.cert_unloaded(&ctx.cfg.name);
        }
        ctx.metrics.set_state(&ctx.cfg.name, state);
        ctx.metrics.next_renewal(&ctx.cfg.name, None);
        report(ctx, state, None);
        let why = decision.reason.clone().unwrap_or_default();
        let repeat = self
            .last_complaint
            .as_ref()
            .is_some_and(|(at, said)| *said == why && at.elapsed() < COMPLAINT_INTERVAL);
        if !repeat {
            error!(
                state = state.as_str(),
                "{why}; waiting for `kyma-certd enroll` with a new one-time token"
            );
            self.last_complaint = Some((Instant::now(), why));
        }
        let wake = self.ctx.clock.now() + COMPLAINT_INTERVAL;
        match wait_until(wake, &mut self.ctx).await {
            Woke::Cancelled => return ControlFlow::Break(()),
            Woke::Control(Control::RenewNow) => {
                warn!("cannot renew: the certificate needs a new enrollment");
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    /// Only a new enrollment can help: a one-time token that appeared in `token_file` is
    /// used, once. A token is burned by its first use even when that fails, so its hash
    /// is recorded before it is sent, and a refused token is reported, not retried.
    /// Returns whether the certificate was enrolled.
    pub(super) async fn enroll_from_token_file(&mut self) -> bool {
        let Some(path) = self.ctx.cfg.token_file.clone() else {
            return false;
        };
        let reader = Store::new(&self.ctx.cfg);
        let read_path = path.clone();
        let read = tokio::task::spawn_blocking(move || {
            (
                crate::token::read_watched_token_file(&read_path),
                reader.read_state(),
            )
        });
        let (token, used) = match tokio::time::timeout(READ_TIMEOUT, read).await {
            Ok(Ok((token, Ok(state)))) => (token, state.used_tokens),
            Ok(Ok((_, Err(e)))) => {
                // Whether this token was used already is unknown: it may be burned, and
                // sending it again would be wasted at best.
                warn!(error = %crate::errors::error_chain(&e), "cannot read state.json; not looking at token_file until it can be read");
                return false;
            }
            _ => {
                warn!(path = %path.display(), "reading token_file did not finish; trying again later");
                return false;
            }
        };
        let token = match token {
            Ok(token) => token,
            Err(crate::token::TokenFileError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return false;
            }
            Err(e) => {
                // Unreadable or not a token: nothing was sent, nothing burned. Counted
                // once per problem, like it is logged.
                if self.token_refused(&crate::errors::error_chain(&e)).await {
                    self.ctx.metrics.token_enrollment(&self.ctx.cfg.name, false);
                }
                return false;
            }
        };
        let hash = crate::pki::x509::hex(
            crate::pki::x509::sha256(token.token().expose().as_bytes()).as_ref(),
        );
        if used.contains(&hash) {
            debug!(path = %path.display(), "the token in token_file was used already");
            return false;
        }
        // Not kept in memory should the write fail: a token whose use cannot be recorded
        // is not sent (a restart would send it again).
        if !self.record_now(Fact::TokenUsed { hash }).await {
            warn!(path = %path.display(), "cannot record the token as used in state.json; not using it");
            return false;
        }
        info!(path = %path.display(), form = token.form().as_str(), "a one-time token appeared in token_file; enrolling");
        let request = flow::EnrollRequest {
            url: None,
            token: Some(token),
        };
        let result = tokio::select! {
            biased;
            () = self.ctx.cancel.cancelled() => return false,
            result = Box::pin(flow::enroll(&self.ctx.cfg, request)) => result,
        };
        match result {
            // Recorded before counted: whoever sees the count sees the record too.
            Ok(info) => {
                self.record_now(Fact::TokenError(None)).await;
                self.ctx.metrics.token_enrollment(&self.ctx.cfg.name, true);
                info!(
                    fingerprint = %info.fingerprint_sha256,
                    not_after = %timestamp(info.not_after),
                    "enrolled with the token from token_file"
                );
                true
            }
            Err(e) => {
                self.token_refused(&crate::errors::error_chain(&e)).await;
                self.ctx.metrics.token_enrollment(&self.ctx.cfg.name, false);
                false
            }
        }
    }

    /// Reports a token from `token_file` that did not enroll: once per message in the
    /// log, always in `state.json` for `status`. Returns whether the message is new.
    async fn token_refused(&mut self, message: &str) -> bool {
        let store = Store::new(&self.ctx.cfg);
        let previous = tokio::task::spawn_blocking(move || store.state().token_error)
            .await
            .ok()
            .flatten();
        self.record_now(Fact::TokenError(Some(message.to_owned())))
            .await;
        let new = previous.as_deref() != Some(message);
        if new {
            error!(error = %message, "the token in token_file did not enroll; waiting for a new token");
        }
        new
    }

    /// Writes one fact about a token at once; whether it was written.
    async fn record_now(&self, fact: Fact) -> bool {
        let store = Store::new(&self.ctx.cfg);
        let written = tokio::task::spawn_blocking(move || ledger::record(&store, &[fact])).await;
        matches!(written, Ok(Ok(_)))
    }
}
