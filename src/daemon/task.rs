//! One certificate's life in the daemon: inspect the files, wait for the renewal time,
//! renew, back off on failure (a refusal included), probe a revoked certificate until it
//! expires, run the hooks, and wait for an operator when only a new enrollment can help.
//! Does not parse the config, watch files or handle signals.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::mailbox::{Control, Mailbox};
use super::unrecorded::Unrecorded;
use crate::config::CertificateConfig;
use crate::flow::{self, FlowError};
use crate::notify;
use crate::pki::verify::timestamp;
use crate::pki::x509::CertInfo;
use crate::protocol::Verdict;
use crate::report::{CertState, Metrics};
use crate::schedule::{Backoff, next_wakeup};
use crate::store::Store;

/// How often a certificate that needs a new enrollment is complained about.
const COMPLAINT_INTERVAL: Duration = Duration::from_secs(3600);

/// The longest a look at the files may take on the blocking pool (a held lock is given
/// up on after `LOCK_WAIT`; a hung mount is given up on here): the task then retries.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What a task tells the supervisor, for `STATUS=` and `READY=1`.
#[derive(Debug, Clone)]
pub struct Report {
    pub name: String,
    pub state: CertState,
    pub next: Option<SystemTime>,
}

/// Everything a task needs; owned by the task.
pub struct TaskContext {
    /// Shared with the supervisor's handle: one copy per certificate.
    pub cfg: Arc<CertificateConfig>,
    pub metrics: Arc<Metrics>,
    pub permits: Arc<Semaphore>,
    pub control: Arc<Mailbox>,
    pub reports: mpsc::UnboundedSender<Report>,
    pub cancel: CancellationToken,
}

/// How a wait ended.
enum Woke {
    Due,
    Control(Control),
    Cancelled,
}

/// What failed attempts said about the certificate on disk. Neither is ever final: the
/// certificate keeps being tried until it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Evidence {
    /// Revoked in the connector's own words (or by `revoke`): probed every `retry_max`.
    Revoked { fingerprint: String },
    /// Refused by something that may sit in front of the connector: normal backoff.
    Refused { fingerprint: String, reason: String },
}

impl Evidence {
    fn fingerprint(&self) -> &str {
        match self {
            Evidence::Revoked { fingerprint } | Evidence::Refused { fingerprint, .. } => {
                fingerprint
            }
        }
    }

    /// What state.json remembers of the certificate's last attempts.
    fn recorded(state: &crate::store::StateFile) -> Option<Evidence> {
        if let Some(revoked) = &state.revoked {
            return Some(Evidence::Revoked {
                fingerprint: revoked.fingerprint.clone(),
            });
        }
        state.refused.as_ref().map(|refused| Evidence::Refused {
            fingerprint: refused.fingerprint.clone(),
            reason: refused.reason.clone(),
        })
    }
}

/// What the files say about the certificate.
enum Standing {
    /// Valid by its dates, with a revocation recorded in state.json, if there is one.
    Valid {
        info: CertInfo,
        revoked_at: Option<SystemTime>,
    },
    NeedsEnrollment {
        state: CertState,
        why: String,
    },
    /// The files could not be read (a held lock, permissions, too many open files, a
    /// FIFO): nothing is known about the certificate, so it is neither missing nor a
    /// reason to enroll; the look is retried.
    Unreadable {
        why: String,
    },
}

/// What a resting task keeps of the certificate it waits to renew: not the parsed
/// certificate, whose DER, key and names take over a kilobyte per certificate.
struct Seen {
    fingerprint: String,
    not_after: SystemTime,
}

impl From<CertInfo> for Seen {
    fn from(info: CertInfo) -> Seen {
        Seen {
            fingerprint: info.fingerprint_sha256,
            not_after: info.not_after,
        }
    }
}

/// What a look at the files decided.
enum Look {
    /// Wait until `wake` (a hook's retry) or `due` (the next attempt), then renew `seen`.
    Wait {
        seen: Seen,
        due: SystemTime,
        wake: SystemTime,
    },
    /// Done with this step.
    Then(ControlFlow<()>),
}

/// Runs one certificate's task until it is cancelled.
///
/// Every certificate has a task resting in memory for months, so everything that runs
/// only now and then (the start, a renewal, hooks, an enrollment) is boxed: it takes
/// memory only while it runs, and the resting future holds the wait and little else.
pub async fn run(ctx: TaskContext) {
    let mut task = Box::pin(Task::start(ctx)).await;
    // Checked before each look at the files: a cancelled task writes no metric again.
    while !task.ctx.cancel.is_cancelled() && task.step().await.is_continue() {}
}

/// What a task remembers between two looks at its files.
struct Task {
    ctx: TaskContext,
    store: Store,
    backoff: Backoff,
    /// Failed attempts in a row, restored from state.json at start.
    failures: u32,
    /// When to try again after a failure.
    retry_at: Option<SystemTime>,
    /// Fingerprint of the certificate last seen valid on disk.
    known: Option<String>,
    /// The last "needs a new enrollment" complaint and when it was logged.
    last_complaint: Option<(Instant, String)>,
    /// The renewal time last logged, so that each schedule is logged once.
    announced: Option<SystemTime>,
    /// What the last failures said about the certificate, kept in memory too so that a
    /// state.json that cannot be written does not hide it.
    evidence: Option<Evidence>,
    /// The hooks' record that state.json could not take (boxed: rare).
    unrecorded: Option<Box<Unrecorded>>,
    /// Looks in a row that could not read the files.
    unreadable: u32,
}

impl Task {
    /// Completes an interrupted swap and restores the failure streak from state.json.
    async fn start(ctx: TaskContext) -> Task {
        let store = Store::new(&ctx.cfg);
        let recover = Store::new(&ctx.cfg);
        let blocking = tokio::task::spawn_blocking(move || (recover.recover(), recover.state()));
        let (recovered, persisted) = match tokio::time::timeout(READ_TIMEOUT, blocking).await {
            Ok(Ok((recovered, persisted))) => (Some(recovered), persisted),
            _ => (None, crate::store::StateFile::default()),
        };
        match recovered {
            Some(Ok(report)) => {
                if report.completed_journal || !report.removed.is_empty() {
                    info!(
                        completed_journal = report.completed_journal,
                        removed = report.removed.len(),
                        "recovered from an interrupted swap"
                    );
                }
            }
            Some(Err(e)) => {
                error!(error = %crate::errors::error_chain(&e), "cannot recover the certificate directory")
            }
            None => error!(
                "recovery did not finish within {}; going on",
                humantime::format_duration(READ_TIMEOUT)
            ),
        }
        let backoff = match Backoff::new(ctx.cfg.retry_min, ctx.cfg.retry_max) {
            Ok(b) => b,
            Err(e) => {
                // The config validation rules this out; fall back rather than spin.
                error!(error = %e, "invalid retry bounds; using 30s..1h");
                Backoff::new(Duration::from_secs(30), Duration::from_secs(3600))
                    .expect("constant bounds are valid")
            }
        };
        let failures = persisted.consecutive_failures;
        if failures > 0 {
            ctx.metrics.restore_failures(&ctx.cfg.name, failures);
        }
        Task {
            retry_at: restored_retry(&persisted, ctx.cfg.retry_min),
            evidence: Evidence::recorded(&persisted),
            failures,
            ctx,
            store,
            backoff,
            known: None,
            last_complaint: None,
            announced: None,
            unrecorded: None,
            unreadable: 0,
        }
    }

    /// Inspects the files and does what cannot wait: tells dependents about a new
    /// certificate, enrolls from `token_file`, or waits for an enrollment. Returns the
    /// certificate to renew at `due`, to be looked at again at `wake`.
    async fn look(&mut self) -> Look {
        let (standing, state) = inspect_off_the_loop(&self.ctx.cfg).await;
        // Unknown while state.json cannot be read: the series keeps what it said.
        if let Some(state) = &state {
            self.ctx
                .metrics
                .enrolled(&self.ctx.cfg.name, state.enrolled_at);
        }
        let (info, revoked_at) = match standing {
            Standing::Valid { info, revoked_at } => (info, revoked_at),
            Standing::NeedsEnrollment { state, why } => {
                self.unreadable = 0;
                return Look::Then(self.wait_for_enrollment(state, why).await);
            }
            Standing::Unreadable { why } => {
                return Look::Then(self.wait_after_unreadable(why).await);
            }
        };
        self.unreadable = 0;
        self.note_valid(&info);
        if let Some(at) = revoked_at {
            self.note_recorded_revocation(&info, at);
        }
        // A revoked certificate is probed, but only a new enrollment is sure to help: a
        // token that appears in `token_file` is used at once.
        if matches!(self.evidence, Some(Evidence::Revoked { .. }))
            && self.ctx.cfg.token_file.is_some()
            && self.enroll_from_token_file().await
        {
            return Look::Then(ControlFlow::Continue(()));
        }
        // Dependents hear of every certificate that became current, before anything else
        // happens to it: after a renewal, at start, after a crash or a reload.
        // The schedule is reported first: readiness never waits for a slow hook.
        let due = self.schedule(&info);
        // A record state.json could not take stands in for what the file says (read
        // before this look writes it, if it can now). A state.json that cannot be read
        // says nothing: the hooks are told once, and that round's record, which cannot
        // be written either, is what the next looks go by.
        let state = state.unwrap_or_default();
        let state = match &self.unrecorded {
            Some(unrecorded) => unrecorded.overlay(state),
            None => state,
        };
        self.write_unrecorded(&info).await;
        let pending = self.pending_notifications(&info, &state);
        if pending.is_due(SystemTime::now()) {
            return Look::Then(self.notify_dependents(&info, &state).await);
        }
        // A hook's retry, recorded under a clock that was ahead, is met within retry_max.
        let now = SystemTime::now();
        let wake = pending.retry_at.map_or(due, |retry| {
            crate::schedule::bounded_deadline(retry, now, self.backoff.max()).min(due)
        });
        Look::Wait {
            wake: self
                .unrecorded
                .as_ref()
                .map_or(wake, |u| u.write_at().min(wake)),
            due,
            seen: Seen::from(info),
        }
    }

    /// One look at the files, one wait, and at most one renewal attempt.
    async fn step(&mut self) -> ControlFlow<()> {
        // Boxed: the look (hooks, an enrollment, a certificate that needs one) exists
        // only while it runs; the resting task holds the wait below and `Seen`.
        let (seen, due, wake) = match Box::pin(self.look()).await {
            Look::Wait { seen, due, wake } => (seen, due, wake),
            Look::Then(flow) => return flow,
        };
        match wait_until(wake, &mut self.ctx).await {
            Woke::Cancelled => return ControlFlow::Break(()),
            Woke::Control(Control::FilesChanged | Control::ClockChanged) => {
                return ControlFlow::Continue(());
            }
            Woke::Due if wake < due => return ControlFlow::Continue(()),
            Woke::Due | Woke::Control(Control::RenewNow) => {}
        }
        if seen.not_after <= SystemTime::now() {
            // A revoked certificate's last probe is due at its notAfter: too late to renew,
            // and the next inspection says so.
            return ControlFlow::Continue(());
        }

        // Boxed: the renewal's state (TLS, key, verification, its outcome) exists only
        // while it runs, instead of enlarging every resting certificate task.
        Box::pin(self.renew(&seen)).await
    }

    /// One renewal attempt and what follows from its outcome.
    async fn renew(&mut self, seen: &Seen) -> ControlFlow<()> {
        // The permit is held until the outcome is logged, so that the log shows at most
        // `max_concurrent_renewals` attempts between "renewing" and their outcome.
        let Some((outcome, permit)) = renew_once(&mut self.ctx, &self.store).await else {
            return ControlFlow::Break(());
        };
        // What arrived meanwhile is answered already: a SIGUSR1 by this attempt, a change
        // to the files (its own swap, say) by the look at the top of the loop.
        self.ctx.control.clear();
        match outcome {
            Ok(renewed) => self.renewed(&renewed, permit),
            // The files expired or vanished since they were inspected: the next
            // inspection says which.
            Err(e) if !reached_connector(&e) => {}
            Err(e) => self.failed(seen, &e, permit).await,
        }
        ControlFlow::Continue(())
    }

    /// Writes the hooks' record kept in memory, once its backoff allows.
    async fn write_unrecorded(&mut self, info: &CertInfo) {
        let Some(unrecorded) = self.unrecorded.take() else {
            return;
        };
        match unrecorded
            .write_if_due(&self.ctx.cfg, &self.backoff, info.not_after)
            .await
        {
            Ok(()) => self.ctx.metrics.state_unwritten(&self.ctx.cfg.name, false),
            Err(kept) => self.unrecorded = Some(Box::new(kept)),
        }
    }

    /// The hooks that have not heard of the certificate `info`, also as a metric.
    fn pending_notifications(
        &self,
        info: &CertInfo,
        state: &crate::store::StateFile,
    ) -> notify::Pending {
        let pending = notify::pending(&self.ctx.cfg, state, &info.fingerprint_sha256);
        self.ctx
            .metrics
            .hooks_pending(&self.ctx.cfg.name, pending.hooks.len());
        pending
    }

    /// One round of the pending notifications; a hook still running when the task is
    /// cancelled is stopped and stays pending.
    async fn notify_dependents(
        &mut self,
        info: &CertInfo,
        state: &crate::store::StateFile,
    ) -> ControlFlow<()> {
        let ctx = &self.ctx;
        let paths = self.store.consumer_paths();
        // A stop or a reload never waits for a hook: dropping the running one kills its
        // process group (see `hooks`); it stays pending for the next start.
        let round = tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => {
                warn!("stopping: the running hook was interrupted and stays pending");
                return ControlFlow::Break(());
            }
            round = notify::deliver(&ctx.cfg, state, info, &paths) => round,
        };
        for outcome in &round.outcomes {
            ctx.metrics
                .hook_ran(&ctx.cfg.name, outcome.kind, outcome.ok);
        }
        ctx.metrics
            .hooks_pending(&ctx.cfg.name, round.left.hooks.len());
        // Each failed hook logged its own warning; this says when they run again.
        if let Some(at) = round.left.retry_at {
            info!(
                pending = round.left.hooks.len(),
                retry_at = %timestamp(at),
                "a dependent was not told about the new certificate; retrying"
            );
        }
        // Unwritten, the round's record stays in memory and the hooks go on from it.
        let previous = self.unrecorded.take().map(|kept| *kept);
        let unwritten = round.unrecorded.is_some();
        if let Some(record) = round.unrecorded {
            let kept = Unrecorded::failed(previous, record, &self.backoff, info.not_after);
            self.unrecorded = Some(Box::new(kept));
        }
        self.ctx
            .metrics
            .state_unwritten(&self.ctx.cfg.name, unwritten);
        ControlFlow::Continue(())
    }

    /// The files could not be read: says why, and looks again after a backoff from
    /// `retry_min` to `retry_max` (or at once when the files change). The certificate is
    /// not called missing and `token_file` is not used: nothing is known against it.
    /// Reported as `backoff`, with the time of the next look.
    async fn wait_after_unreadable(&mut self, why: String) -> ControlFlow<()> {
        self.unreadable = self.unreadable.saturating_add(1);
        let cfg = &self.ctx.cfg;
        let delay = unreadable_delay(cfg.retry_min, cfg.retry_max, self.unreadable);
        let at = SystemTime::now() + delay;
        let ctx = &self.ctx;
        ctx.metrics.next_renewal(&ctx.cfg.name, Some(at));
        ctx.metrics.set_state(&ctx.cfg.name, CertState::Backoff);
        report(ctx, CertState::Backoff, Some(at));
        self.announced = None;
        error!(
            error = %why,
            consecutive = self.unreadable,
            retry_in_seconds = delay.as_secs(),
            "cannot read the certificate files; retrying in {} (the certificate is not treated as missing)",
            humantime::format_duration(delay)
        );
        match wait_until(at, &mut self.ctx).await {
            Woke::Cancelled => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        }
    }

    /// Reports the state, complains (once an hour), and waits for the files to change.
    async fn wait_for_enrollment(&mut self, state: CertState, why: String) -> ControlFlow<()> {
        if self.ctx.cfg.token_file.is_some() && self.enroll_from_token_file().await {
            return ControlFlow::Continue(());
        }
        let ctx = &self.ctx;
        self.known = None;
        if state == CertState::Missing {
            ctx.metrics.cert_unloaded(&ctx.cfg.name);
        }
        ctx.metrics.set_state(&ctx.cfg.name, state);
        ctx.metrics.next_renewal(&ctx.cfg.name, None);
        report(ctx, state, None);
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
        let wake = SystemTime::now() + COMPLAINT_INTERVAL;
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
    /// is remembered before it is sent, and a refused token is reported, not retried.
    /// Returns whether the certificate was enrolled.
    async fn enroll_from_token_file(&mut self) -> bool {
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
        let store = Store::new(&self.ctx.cfg);
        let remember = hash.clone();
        let remembered =
            tokio::task::spawn_blocking(move || store.update_state(|s| s.use_token(&remember)))
                .await;
        if !matches!(remembered, Ok(Ok(_))) {
            warn!(path = %path.display(), "cannot remember the token as used in state.json; not using it");
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
                let store = Store::new(&self.ctx.cfg);
                let _ = tokio::task::spawn_blocking(move || {
                    store.update_state(|s| s.token_error = None)
                })
                .await;
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
        let record = message.to_owned();
        let previous = tokio::task::spawn_blocking(move || {
            let before = store.state().token_error;
            let _ = store.update_state(|s| s.token_error = Some(record));
            before
        })
        .await
        .ok()
        .flatten();
        let new = previous.as_deref() != Some(message);
        if new {
            error!(error = %message, "the token in token_file did not enroll; waiting for a new token");
        }
        new
    }

    /// Takes note of a valid certificate; one that someone else put there starts afresh.
    fn note_valid(&mut self, info: &CertInfo) {
        self.last_complaint = None;
        if self
            .evidence
            .as_ref()
            .is_some_and(|e| e.fingerprint() != info.fingerprint_sha256)
        {
            self.evidence = None;
        }
        if self.known.as_deref() == Some(info.fingerprint_sha256.as_str()) {
            return;
        }
        if self.known.is_some() {
            info!(fingerprint = %info.fingerprint_sha256, "the certificate was replaced on disk; rescheduling");
            self.failures = 0;
            self.retry_at = None;
        }
        self.known = Some(info.fingerprint_sha256.clone());
        self.ctx
            .metrics
            .cert_loaded(&self.ctx.cfg.name, info.not_before, info.not_after);
    }

    /// A revocation recorded in state.json by someone else (`kyma-certd revoke`): the
    /// certificate is probed from now on, first `retry_max` after the revocation.
    fn note_recorded_revocation(&mut self, info: &CertInfo, at: SystemTime) {
        let known = matches!(self.evidence, Some(Evidence::Revoked { .. }));
        if known && self.retry_at.is_some() {
            return;
        }
        self.evidence = Some(Evidence::Revoked {
            fingerprint: info.fingerprint_sha256.clone(),
        });
        let probe = self.backoff.revocation_probe(at, info.not_after);
        self.retry_at = Some(self.retry_at.map_or(probe, |retry| retry.min(probe)));
        warn!(
            fingerprint = %info.fingerprint_sha256,
            "the certificate was recorded as revoked; probing the connector every {} until it expires at {}",
            humantime::format_duration(self.ctx.cfg.retry_max),
            timestamp(info.not_after)
        );
    }

    /// The next attempt and the state until then: the retry time after a failure (named
    /// by what the failure said), else the renewal time.
    fn schedule(&mut self, info: &CertInfo) -> SystemTime {
        // A retry set under a clock that was ahead is met within retry_max once corrected.
        let longest = self.backoff.max();
        self.retry_at = self
            .retry_at
            .map(|at| crate::schedule::bounded_deadline(at, SystemTime::now(), longest));
        let ctx = &self.ctx;
        let (state, due) = match (self.retry_at, &self.evidence) {
            (Some(at), Some(Evidence::Revoked { .. })) => (CertState::Revoked, at),
            (Some(at), Some(Evidence::Refused { .. })) => (CertState::Refused, at),
            (Some(at), None) => (CertState::Backoff, at),
            (None, _) => (
                CertState::Valid,
                info.renewal_due(ctx.cfg.renew, ctx.cfg.jitter),
            ),
        };
        // Schedule first, then state: a scrape never sees "valid" with a stale schedule.
        ctx.metrics.next_renewal(&ctx.cfg.name, Some(due));
        ctx.metrics.set_state(&ctx.cfg.name, state);
        report(ctx, state, Some(due));
        if self.announced != Some(due) {
            self.announced = Some(due);
            let wait = due.duration_since(SystemTime::now()).unwrap_or_default();
            info!(
                next_renewal = %timestamp(due),
                in_seconds = wait.as_secs(),
                not_after = %timestamp(info.not_after),
                "next renewal in {}",
                humantime::format_duration(Duration::from_secs(wait.as_secs()))
            );
        }
        due
    }

    fn renewed(&mut self, renewed: &flow::Renewed, permit: OwnedSemaphorePermit) {
        let ctx = &self.ctx;
        self.failures = 0;
        self.retry_at = None;
        if let Some(healed) = self.evidence.take() {
            info!(
                was = ?healed,
                "the certificate renewed after it was refused or revoked: healed"
            );
        }
        self.known = Some(renewed.info.fingerprint_sha256.clone());
        if renewed.ca_changed {
            ctx.metrics.ca_changed(&ctx.cfg.name);
        }
        ctx.metrics.cert_loaded(
            &ctx.cfg.name,
            renewed.info.not_before,
            renewed.info.not_after,
        );
        // The certificate leaves "renewing" with its permit: a scrape never sees more
        // than `max_concurrent_renewals` certificates renewing.
        let due = renewed.info.renewal_due(ctx.cfg.renew, ctx.cfg.jitter);
        ctx.metrics.next_renewal(&ctx.cfg.name, Some(due));
        ctx.metrics.set_state(&ctx.cfg.name, CertState::Valid);
        report(ctx, CertState::Valid, Some(due));
        // Hooks may take their whole timeout: they do not hold up other renewals. They
        // run at the next look at the files, which finds the new certificate pending.
        drop(permit);
    }

    /// Backs off (a revoked certificate: until the next probe); the retry time survives a
    /// restart in state.json.
    async fn failed(&mut self, info: &Seen, error: &FlowError, permit: OwnedSemaphorePermit) {
        self.failures = self.failures.saturating_add(1);
        let was_revoked = matches!(self.evidence, Some(Evidence::Revoked { .. }));
        self.evidence = evidence_after(self.evidence.take(), &info.fingerprint, error.verdict());
        let now = SystemTime::now();
        let at = match &self.evidence {
            Some(Evidence::Revoked { .. }) => self.backoff.revocation_probe(now, info.not_after),
            _ => {
                now + self
                    .backoff
                    .delay(self.failures, now, info.not_after, rand::random::<f64>())
            }
        };
        self.retry_at = Some(at);
        let record = Store::new(&self.ctx.cfg);
        let _ = tokio::task::spawn_blocking(move || persist_retry(&record, at)).await;
        let retry_in_seconds = at.duration_since(now).unwrap_or_default().as_secs();
        let wait = humantime::format_duration(Duration::from_secs(retry_in_seconds));
        let chain = crate::errors::error_chain(error);
        match &self.evidence {
            Some(Evidence::Revoked { .. }) if !was_revoked => error!(
                reason = error.reason().as_str(),
                retry_in_seconds,
                error = %chain,
                not_after = %timestamp(info.not_after),
                "the connector revoked the certificate: enroll again with `kyma-certd enroll` and a new one-time token; meanwhile probing every {} until it expires, in case the revocation is lifted",
                humantime::format_duration(self.ctx.cfg.retry_max)
            ),
            Some(Evidence::Revoked { .. }) => warn!(
                reason = error.reason().as_str(),
                consecutive_failures = self.failures,
                retry_in_seconds,
                error = %chain,
                "the certificate is still revoked; probing again in {wait}"
            ),
            Some(Evidence::Refused { reason, .. }) => warn!(
                reason = error.reason().as_str(),
                refusal = %reason,
                consecutive_failures = self.failures,
                retry_in_seconds,
                error = %chain,
                "renewal refused ({reason}) by something in front of the connector or the connector itself; the certificate stays valid; retrying in {wait}"
            ),
            None => warn!(
                reason = error.reason().as_str(),
                consecutive_failures = self.failures,
                retry_in_seconds,
                error = %chain,
                "renewal failed; retrying in {wait}"
            ),
        }
        drop(permit);
    }
}

/// When to try again after the failures recorded in state.json. A refusal recorded by a
/// one-shot `renew` comes without a retry time: it is retried `retry_min` after it was
/// seen rather than at the renewal time, which may be weeks away.
fn restored_retry(persisted: &crate::store::StateFile, retry_min: Duration) -> Option<SystemTime> {
    if persisted.consecutive_failures == 0 {
        return None;
    }
    persisted
        .next_attempt
        .or_else(|| persisted.refused.as_ref().map(|r| r.at + retry_min))
}

/// What is known about the certificate after a failure that said `verdict`: the
/// connector's "revoked" stands until a renewal succeeds; a refusal only while it is the
/// latest word.
fn evidence_after(
    before: Option<Evidence>,
    fingerprint: &str,
    verdict: Verdict,
) -> Option<Evidence> {
    let fingerprint = fingerprint.to_owned();
    match (verdict, before) {
        (Verdict::Revoked, _) => Some(Evidence::Revoked { fingerprint }),
        (_, Some(revoked @ Evidence::Revoked { .. })) => Some(revoked),
        (Verdict::Refused(refusal), _) => Some(Evidence::Refused {
            fingerprint,
            reason: refusal.to_string(),
        }),
        (Verdict::Inconclusive, _) => None,
    }
}

/// One renewal under the concurrency bound; `None` when cancelled (shutdown or removal).
async fn renew_once(
    ctx: &mut TaskContext,
    store: &Store,
) -> Option<(Result<flow::Renewed, FlowError>, OwnedSemaphorePermit)> {
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
    let result = tokio::select! {
        result = flow::renew(&ctx.cfg, store) => result,
        () = ctx.cancel.cancelled() => {
            info!("renewal abandoned: stopping");
            return None;
        }
    };
    let took = started.elapsed();
    if let Err(e) = &result
        && !reached_connector(e)
    {
        // Nothing was attempted: no counter moves and state.json keeps its record.
        if e.is_superseded() {
            info!(error = %crate::errors::error_chain(e), "renewal discarded");
        } else {
            debug!(error = %crate::errors::error_chain(e), "not renewing");
        }
        return Some((result, permit));
    }
    // state.json is written with fsyncs: off the event loop, so that scrapes, health
    // checks and the other certificates never wait for the disk.
    let record = Store::new(&ctx.cfg);
    let result = tokio::task::spawn_blocking(move || {
        record.record_attempt(flow::attempt(&result));
        result
    })
    .await
    .ok()?;
    match &result {
        Ok(renewed) => {
            ctx.metrics.renewal_succeeded(&ctx.cfg.name, took);
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
        }
        Err(e) => ctx.metrics.renewal_failed(&ctx.cfg.name, e.reason(), took),
    }
    Some((result, permit))
}

/// Whether a renewal counts as an attempt (a success or a failure). It does not when it
/// stopped before asking the connector because the current certificate expired or
/// disappeared since it was inspected, nor when its result was discarded because someone
/// else replaced the certificate meanwhile: then the next look at the files decides.
fn reached_connector(error: &FlowError) -> bool {
    !error.is_superseded()
        && !matches!(
            error,
            FlowError::NotEnrolled { .. } | FlowError::Expired { .. } | FlowError::Revoked
        )
}

/// [`inspect`] on the blocking pool, within [`READ_TIMEOUT`]: the event loop (health
/// endpoints, the other certificates) never waits for the disk or the directory lock.
/// The state is `None` when `state.json` exists but cannot be read (it is logged): then
/// nothing is known about which hooks were told (see `look`).
async fn inspect_off_the_loop(
    cfg: &Arc<CertificateConfig>,
) -> (Standing, Option<crate::store::StateFile>) {
    let cfg = Arc::clone(cfg);
    let looked = tokio::task::spawn_blocking(move || {
        let store = Store::new(&cfg);
        let state = match store.read_state() {
            Ok(state) => Some(state),
            Err(e) => {
                warn!(error = %crate::errors::error_chain(&e), "ignoring state.json");
                // Content that cannot be parsed is set aside at the next update: the
                // hooks run once more and are recorded again.
                (!e.is_unreadable()).then(crate::store::StateFile::default)
            }
        };
        let standing = inspect(&store, state.as_ref());
        (standing, state)
    });
    match tokio::time::timeout(READ_TIMEOUT, looked).await {
        Ok(Ok(looked)) => looked,
        Ok(Err(_)) => (
            Standing::Unreadable {
                why: "reading the certificate files was interrupted".to_owned(),
            },
            None,
        ),
        Err(_) => (
            Standing::Unreadable {
                why: format!(
                    "reading the certificate files did not finish within {}",
                    humantime::format_duration(READ_TIMEOUT)
                ),
            },
            None,
        ),
    }
}

/// What the files say; only "not found" means missing. Blocks: see
/// [`inspect_off_the_loop`].
fn inspect(store: &Store, state: Option<&crate::store::StateFile>) -> Standing {
    match store.load_current() {
        Ok(None) => Standing::NeedsEnrollment {
            state: CertState::Missing,
            why: "no certificate on disk".to_owned(),
        },
        Err(e) if e.is_unreadable() => Standing::Unreadable {
            why: crate::errors::error_chain(&e),
        },
        Err(e) => Standing::NeedsEnrollment {
            state: CertState::Missing,
            why: format!(
                "the certificate on disk is unusable: {}",
                crate::errors::error_chain(&e)
            ),
        },
        Ok(Some(current)) if current.info.not_after <= SystemTime::now() => {
            Standing::NeedsEnrollment {
                state: CertState::Expired,
                why: format!(
                    "the certificate expired at {}",
                    timestamp(current.info.not_after)
                ),
            }
        }
        Ok(Some(current)) => Standing::Valid {
            revoked_at: state
                .and_then(|s| s.revoked.as_ref())
                .filter(|r| r.fingerprint == current.info.fingerprint_sha256)
                .map(|r| r.at),
            info: current.info,
        },
    }
}

/// Sleeps until `deadline` on the monotonic clock, in one step: between renewals the
/// task does not wake. A clock step or a resume arrives as [`Control::ClockChanged`]
/// (see `clock`) and wakes the task, which looks at its certificate again: a decision
/// made under the wrong clock is made anew.
async fn wait_until(deadline: SystemTime, ctx: &mut TaskContext) -> Woke {
    loop {
        let nap = next_wakeup(SystemTime::now(), deadline);
        if nap.is_zero() {
            return Woke::Due;
        }
        tokio::select! {
            () = tokio::time::sleep(nap) => {}
            // A clock change (a step of a second or more) returns too: the certificate is
            // looked at again, so a decision made under the wrong clock is made anew.
            control = ctx.control.recv() => return Woke::Control(control),
            () = ctx.cancel.cancelled() => return Woke::Cancelled,
        }
    }
}

fn report(ctx: &TaskContext, state: CertState, next: Option<SystemTime>) {
    let _ = ctx.reports.send(Report {
        name: ctx.cfg.name.clone(),
        state,
        next,
    });
}

/// `retry_min`, doubled for each look in a row that could not read the files, at most
/// `retry_max`.
fn unreadable_delay(retry_min: Duration, retry_max: Duration, looks: u32) -> Duration {
    let doublings = looks.saturating_sub(1).min(20);
    retry_min
        .saturating_mul(1 << doublings)
        .min(retry_max)
        .max(retry_min.min(retry_max))
}

fn persist_retry(store: &Store, at: SystemTime) {
    let result = store.read_state().and_then(|mut state| {
        state.next_attempt = Some(at);
        store.write_state(&state)
    });
    if let Err(e) = result {
        debug!(error = %crate::errors::error_chain(&e), "cannot record the retry time in state.json");
    }
}

fn short(fingerprint: &str) -> &str {
    &fingerprint[..fingerprint.len().min(16)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, Checks};

    fn context(dir: &std::path::Path) -> TaskContext {
        let text = format!(
            "[[certificate]]\nname = \"orders\"\nprotocol = \"compass\"\ndir = {:?}\n",
            dir.to_str().expect("temporary paths are UTF-8")
        );
        let config = config::parse_with(&text, std::path::Path::new("t.toml"), Checks::Syntax)
            .expect("a valid configuration");
        let (reports, _) = mpsc::unbounded_channel();
        TaskContext {
            cfg: Arc::new(
                config
                    .certificates
                    .into_iter()
                    .next()
                    .expect("one certificate"),
            ),
            metrics: Metrics::new("test"),
            permits: Arc::new(Semaphore::new(1)),
            control: Arc::default(),
            reports,
            cancel: CancellationToken::new(),
        }
    }

    fn info(common_name: &str) -> CertInfo {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        CertInfo::from_pem(&pem).unwrap()
    }

    #[test]
    fn the_connectors_revoked_stands_until_a_renewal_and_a_refusal_only_while_latest() {
        use crate::protocol::Refusal;
        let cert = info("orders");
        let refused = Verdict::Refused(Refusal::TlsAlert {
            alert: "unknown_ca".into(),
        });
        let after_refusal = evidence_after(None, &cert.fingerprint_sha256, refused.clone());
        assert_eq!(
            after_refusal,
            Some(Evidence::Refused {
                fingerprint: cert.fingerprint_sha256.clone(),
                reason: "tls alert unknown_ca".into()
            })
        );
        // A network failure after a refusal: nothing is known any more.
        assert_eq!(
            evidence_after(
                after_refusal,
                &cert.fingerprint_sha256,
                Verdict::Inconclusive
            ),
            None
        );
        let revoked = evidence_after(None, &cert.fingerprint_sha256, Verdict::Revoked);
        assert!(matches!(revoked, Some(Evidence::Revoked { .. })));
        // Neither a gateway's refusal nor a network failure un-says the connector's words.
        assert_eq!(
            evidence_after(revoked.clone(), &cert.fingerprint_sha256, refused),
            revoked
        );
        assert_eq!(
            evidence_after(
                revoked.clone(),
                &cert.fingerprint_sha256,
                Verdict::Inconclusive
            ),
            revoked
        );
    }

    #[test]
    fn looks_that_cannot_read_the_files_back_off_from_retry_min_to_retry_max() {
        let (min, max) = (Duration::from_secs(30), Duration::from_secs(3600));
        let delays: Vec<u64> = (1..=9)
            .map(|n| unreadable_delay(min, max, n).as_secs())
            .collect();
        assert_eq!(delays, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(unreadable_delay(min, max, u32::MAX), max);
    }

    /// Every certificate has a task resting in memory for months: the look, the renewal
    /// and its outcome are boxed so that they exist only while they run (1,952 bytes
    /// with the look and the outcome inline, 872 without; 5 KiB with nothing boxed).
    #[test]
    fn a_resting_task_stays_small() {
        let dir = tempfile::tempdir().unwrap();
        let task = run(context(dir.path()));
        let size = std::mem::size_of_val(&task);
        assert!(
            size <= 1024,
            "a certificate task takes {size} bytes at rest"
        );
    }
}
