//! One certificate's life in the daemon: look at the files and the ledger, let the
//! policy decide, and do what it says — tell the dependents, wait until the next time
//! something is due, renew (or retry, or probe), record the outcome, and wait for an
//! operator when only a new enrollment can help. Every wake, every change to the files
//! and every clock step starts again from a look: no deadline outlives the clock it was
//! computed under. Does not parse the config, watch files or handle signals.

mod attempt;
mod enrollment;
mod records;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::look::{self, READ_TIMEOUT};
use super::mailbox::{Control, Mailbox};
use super::unwritten::Unwritten;
use crate::clock::Clock;
use crate::config::CertificateConfig;
use crate::flow::dependents;
use crate::flow::policy::{self, Decision, OnDisk, Seen, Situation};
use crate::pki::verify::timestamp;
use crate::report::{CertState, Metrics};
use crate::schedule::next_wakeup;
use crate::store::{StateFile, Store};

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
    pub clock: Clock,
}

/// How a wait ended.
enum Woke {
    Due,
    Control(Control),
    Cancelled,
}

/// What a look decided.
enum Next {
    /// Wait until `wake`; renew `seen` if that is `renew_at` (or a SIGUSR1 asks).
    Wait {
        seen: Seen,
        wake: SystemTime,
        renew_at: SystemTime,
    },
    /// Done with this step.
    Then(ControlFlow<()>),
}

/// Runs one certificate's task until it is cancelled.
///
/// Every certificate has a task resting in memory for months, so everything that runs
/// only now and then (the start, a look, a renewal, hooks, an enrollment) is boxed: it
/// takes memory only while it runs, and the resting future holds the wait and little
/// else.
pub async fn run(ctx: TaskContext) {
    let mut task = Box::pin(Task::start(ctx)).await;
    // Checked before each look at the files: a cancelled task writes no metric again.
    while !task.ctx.cancel.is_cancelled() && task.step().await.is_continue() {}
}

/// What a task remembers between two looks; everything else is read again each time.
struct Task {
    ctx: TaskContext,
    store: Store,
    /// Fingerprint of the certificate last seen valid on disk.
    known: Option<String>,
    /// The state last reported, to log each change once.
    state: Option<CertState>,
    /// The renewal time last logged, so that each schedule is logged once.
    announced: Option<SystemTime>,
    /// The last "needs a new enrollment" complaint and when it was logged.
    last_complaint: Option<(Instant, String)>,
    /// Facts state.json could not take (boxed: rare).
    unwritten: Option<Box<Unwritten>>,
    /// Looks in a row that could not read the files.
    unreadable: u32,
}

impl Task {
    /// Completes an interrupted swap and restores the failure count for the metrics.
    async fn start(ctx: TaskContext) -> Task {
        let store = Store::new(&ctx.cfg);
        let recover = Store::new(&ctx.cfg);
        let blocking = tokio::task::spawn_blocking(move || (recover.recover(), recover.state()));
        match tokio::time::timeout(READ_TIMEOUT, blocking).await {
            Ok(Ok((recovered, persisted))) => {
                match recovered {
                    Ok(report) if report.completed_journal || !report.removed.is_empty() => info!(
                        completed_journal = report.completed_journal,
                        removed = report.removed.len(),
                        "recovered from an interrupted swap"
                    ),
                    Ok(_) => {}
                    Err(e) => {
                        error!(error = %crate::errors::error_chain(&e), "cannot recover the certificate directory")
                    }
                }
                if persisted.consecutive_failures > 0 {
                    ctx.metrics
                        .restore_failures(&ctx.cfg.name, persisted.consecutive_failures);
                }
            }
            _ => error!(
                "recovery did not finish within {}; going on",
                humantime::format_duration(READ_TIMEOUT)
            ),
        }
        Task {
            ctx,
            store,
            known: None,
            state: None,
            announced: None,
            last_complaint: None,
            unwritten: None,
            unreadable: 0,
        }
    }

    /// One look, one wait, and at most one renewal attempt.
    async fn step(&mut self) -> ControlFlow<()> {
        // Boxed: the look (hooks, an enrollment, a certificate that needs one) exists
        // only while it runs; the resting task holds the wait below and `Seen`.
        let (seen, wake, renew_at) = match Box::pin(self.look()).await {
            Next::Wait {
                seen,
                wake,
                renew_at,
            } => (seen, wake, renew_at),
            Next::Then(flow) => return flow,
        };
        match wait_until(wake, &mut self.ctx).await {
            Woke::Cancelled => return ControlFlow::Break(()),
            Woke::Control(Control::FilesChanged | Control::ClockChanged) => {
                return ControlFlow::Continue(());
            }
            // Woken for a hook round, a write or a look: the next look sees to it.
            Woke::Due if self.ctx.clock.now() < renew_at => return ControlFlow::Continue(()),
            Woke::Due | Woke::Control(Control::RenewNow) => {}
        }
        if seen.not_after <= self.ctx.clock.now() {
            // A revoked certificate's last probe is due at its notAfter: too late to
            // renew, and the next look says so.
            return ControlFlow::Continue(());
        }
        // Boxed: the renewal's state (TLS, key, verification, its outcome) exists only
        // while it runs, instead of enlarging every resting certificate task.
        Box::pin(self.renew(&seen)).await
    }

    /// Looks at the files and the ledger, lets the policy decide, and does what cannot
    /// wait: tells the dependents, enrolls from `token_file`, or waits for an enrollment.
    async fn look(&mut self) -> Next {
        let looked = look::look(&self.ctx.cfg, self.unreadable.saturating_add(1)).await;
        // Unknown while state.json cannot be read: the series keeps what it said.
        if let Some(ledger) = &looked.ledger {
            self.ctx
                .metrics
                .enrolled(&self.ctx.cfg.name, ledger.enrolled_at);
        }
        let ledger = self.ledger_view(looked.ledger).await;
        let decision = self.decide(&looked.on_disk, &ledger);
        let seen = match looked.on_disk {
            OnDisk::Unreadable { why, .. } => {
                return Next::Then(self.wait_after_unreadable(&decision, &why).await);
            }
            OnDisk::Certificate(seen) if !decision.needs_enrollment() => seen,
            _ => {
                self.unreadable = 0;
                return Next::Then(self.wait_for_enrollment(&decision).await);
            }
        };
        self.unreadable = 0;
        self.note_valid(&seen);
        // A revoked certificate is probed, but only a new enrollment is sure to help: a
        // token that appears in `token_file` is used at once.
        if decision.wants_token()
            && self.ctx.cfg.token_file.is_some()
            && self.enroll_from_token_file().await
        {
            return Next::Then(ControlFlow::Continue(()));
        }
        // The schedule is reported first: readiness never waits for a slow hook.
        self.report(&decision, &seen);
        // Dependents hear of every certificate that became current before anything else
        // happens to it: after a renewal, at start, after a crash or a reload.
        let now = self.ctx.clock.now();
        self.ctx.metrics.hooks_pending(
            &self.ctx.cfg.name,
            decision.hooks.as_ref().map_or(0, |h| h.keys.len()),
        );
        if let Some(hooks) = decision.hooks.as_ref().filter(|h| h.at <= now) {
            return Next::Then(self.tell_dependents(&seen, &hooks.keys).await);
        }
        let renew_at = decision.renew_at.unwrap_or(seen.not_after);
        let wake = decision.wake_at().unwrap_or(renew_at);
        let wake = self
            .unwritten
            .as_ref()
            .map_or(wake, |u| u.write_at.min(wake));
        Next::Wait {
            seen,
            wake,
            renew_at,
        }
    }

    fn decide(&self, on_disk: &OnDisk, ledger: &StateFile) -> Decision {
        policy::decide(&Situation {
            on_disk,
            ledger,
            cfg: &self.ctx.cfg,
            host: &crate::schedule::host_name(),
            now: self.ctx.clock.now(),
        })
    }

    /// Reports the decision (schedule first, then state: a scrape never sees "valid"
    /// with a stale schedule) and logs what changed.
    fn report(&mut self, decision: &Decision, seen: &Seen) {
        let ctx = &self.ctx;
        let (state, due) = (decision.state, decision.renew_at);
        ctx.metrics.next_renewal(&ctx.cfg.name, due);
        ctx.metrics.set_state(&ctx.cfg.name, state);
        report(ctx, state, due);
        if state == CertState::Revoked && self.state != Some(CertState::Revoked) {
            warn!(
                fingerprint = %seen.fingerprint,
                "the certificate is recorded as revoked; probing the connector every {} until it expires at {}",
                humantime::format_duration(ctx.cfg.retry_max),
                timestamp(seen.not_after)
            );
        }
        self.state = Some(state);
        if let Some(due) = due
            && self.announced != Some(due)
        {
            self.announced = Some(due);
            let wait = due.duration_since(ctx.clock.now()).unwrap_or_default();
            info!(
                next_renewal = %timestamp(due),
                in_seconds = wait.as_secs(),
                not_after = %timestamp(seen.not_after),
                "next renewal in {}",
                humantime::format_duration(Duration::from_secs(wait.as_secs()))
            );
        }
    }

    /// One round of the hooks that have not heard of `seen`; a hook still running when
    /// the task is cancelled is stopped and stays pending.
    async fn tell_dependents(&mut self, seen: &Seen, keys: &[String]) -> ControlFlow<()> {
        let paths = self.store.consumer_paths();
        let clock = self.ctx.clock.clone();
        // A stop or a reload never waits for a hook: dropping the running one kills its
        // process group (see `hooks`); it stays pending for the next start.
        let round = tokio::select! {
            biased;
            () = self.ctx.cancel.cancelled() => {
                warn!("stopping: the running hook was interrupted and stays pending");
                return ControlFlow::Break(());
            }
            round = dependents::tell(&self.ctx.cfg, keys, seen, &paths, || clock.now()) => round,
        };
        for outcome in &round.outcomes {
            let name = &self.ctx.cfg.name;
            self.ctx.metrics.hook_ran(name, outcome.kind, outcome.ok);
        }
        let failed = round.failed();
        // The ledger (or the memory standing in for it) sets the next round's time.
        let recorded = self.record(vec![round.fact]).await;
        let ledger = match recorded {
            Some(state) => state,
            None => self.reread_ledger().await,
        };
        let decision = self.decide(&OnDisk::Certificate(seen.clone()), &ledger);
        let left = decision.hooks.as_ref();
        self.ctx
            .metrics
            .hooks_pending(&self.ctx.cfg.name, left.map_or(0, |h| h.keys.len()));
        // Each failed hook logged its own warning; this says when they run again.
        if let Some(left) = left.filter(|_| failed > 0) {
            info!(
                pending = left.keys.len(),
                retry_at = %timestamp(left.at),
                "a dependent was not told about the new certificate; retrying"
            );
        }
        ControlFlow::Continue(())
    }

    /// The files could not be read: says why, and looks again when the policy says (a
    /// backoff from `retry_min` to `retry_max`), or at once when the files change. The
    /// certificate is not called missing and `token_file` is not used: nothing is known
    /// against it. Reported as `backoff`, with the time of the next look.
    async fn wait_after_unreadable(&mut self, decision: &Decision, why: &str) -> ControlFlow<()> {
        self.unreadable = self.unreadable.saturating_add(1);
        let at = decision
            .look_again_at
            .unwrap_or_else(|| self.ctx.clock.now());
        let ctx = &self.ctx;
        ctx.metrics.next_renewal(&ctx.cfg.name, Some(at));
        ctx.metrics.set_state(&ctx.cfg.name, CertState::Backoff);
        report(ctx, CertState::Backoff, Some(at));
        self.announced = None;
        let delay = at.duration_since(ctx.clock.now()).unwrap_or_default();
        error!(
            error = %why,
            consecutive = self.unreadable,
            retry_in_seconds = delay.as_secs(),
            "cannot read the certificate files; retrying in {} (the certificate is not treated as missing)",
            humantime::format_duration(Duration::from_secs(delay.as_secs()))
        );
        match wait_until(at, &mut self.ctx).await {
            Woke::Cancelled => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        }
    }

    /// Takes note of a valid certificate; logs one that someone else put there.
    fn note_valid(&mut self, seen: &Seen) {
        self.last_complaint = None;
        if self.known.as_deref() == Some(seen.fingerprint.as_str()) {
            return;
        }
        if self.known.is_some() {
            info!(fingerprint = %seen.fingerprint, "the certificate was replaced on disk; rescheduling");
        }
        self.known = Some(seen.fingerprint.clone());
        self.ctx
            .metrics
            .cert_loaded(&self.ctx.cfg.name, seen.not_before, seen.not_after);
    }
}

/// Sleeps until `deadline` on the monotonic clock, in one step: between renewals the
/// task does not wake. A clock step or a resume arrives as [`Control::ClockChanged`]
/// (see `clock`) and wakes the task, which looks again: a decision made under the wrong
/// clock is made anew.
async fn wait_until(deadline: SystemTime, ctx: &mut TaskContext) -> Woke {
    loop {
        let nap = next_wakeup(ctx.clock.now(), deadline);
        if nap.is_zero() {
            return Woke::Due;
        }
        tokio::select! {
            () = tokio::time::sleep(nap) => {}
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
            clock: Clock::system(),
        }
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
