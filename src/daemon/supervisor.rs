//! The supervisor: one task per certificate, routes signals, file changes and health
//! pings to them, reloads the config, talks to systemd and serves the metrics.

mod reload;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::mailbox::{Control, Mailbox};
use super::task::{self, Report, TaskContext};
use super::watch::{DEBOUNCE, DirWatcher};
use crate::clock::Clock;
use crate::config::{self, CertificateConfig, Config, Layout};
use crate::report::http::{self as report_http, HealthRequests, HttpLimits, HttpState};
use crate::report::{CertState, Metrics};
use crate::systemd;

/// How long a stopped certificate task may take to return before it is aborted. Tasks
/// give up at every await that can last (waits, renewals, hooks), so only a hung disk
/// under a state.json write reaches this bound.
pub const DRAIN: Duration = Duration::from_millis(900);

/// How long after the last report of a task (a start, a renewal, a failure) the free
/// memory of the burst is returned to the kernel: once per burst, never while idle.
const RELEASE_AFTER_QUIET: Duration = Duration::from_secs(15);

/// The watcher's owner name for the configuration file's directory; certificate names
/// are `[a-z0-9_-]+`, so it cannot be one.
const CONFIG_WATCH: &str = "..config";

/// How long the configuration's directory must be quiet before the file is read again:
/// an editor's save is several writes and renames, a ConfigMap update one symlink swap.
const CONFIG_SETTLE: Duration = Duration::from_secs(1);

/// The longest a clean stop takes after SIGTERM: the tasks' drain, then the metrics
/// server's, then the grace given to blocking work. `TimeoutStopSec=` in the systemd
/// unit must leave room for it (a test reads both).
pub const STOP_BOUND: Duration = DRAIN
    .saturating_add(DRAIN)
    .saturating_add(BLOCKING_SHUTDOWN_GRACE);

/// How long the runtime waits, at exit, for blocking work (a state.json write, a swap) to
/// finish before the process ends anyway.
pub const BLOCKING_SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    run_until(config, std::future::pending(), |_| {}, Clock::system()).await
}

/// Runs the daemon until a signal or `stop` completes. `on_listen` learns the metrics
/// address once bound (the demo prints it). Decisions read `clock`: the system clock, or
/// in a test one shifted by days without touching the machine's.
pub async fn run_until(
    config: Config,
    stop: impl Future<Output = ()>,
    on_listen: impl FnOnce(std::net::SocketAddr),
    clock: Clock,
) -> anyhow::Result<()> {
    crate::memory::configure_for_daemon();
    let metrics = Metrics::new(env!("CARGO_PKG_VERSION"));
    let shutdown = CancellationToken::new();
    let (health_probe, health) = report_http::health_channel();

    let mut server = None;
    if let Some(addr) = config.metrics.listen {
        let listener = report_http::bind(addr).await.map_err(anyhow::Error::from)?;
        let local = listener.local_addr().map_err(anyhow::Error::from)?;
        info!("metrics on http://{local}/metrics, health on /healthz and /readyz");
        on_listen(local);
        let state = HttpState {
            metrics: Arc::clone(&metrics),
            health: health_probe,
            limits: HttpLimits::default(),
        };
        let stop = shutdown.clone();
        server = Some(tokio::spawn(report_http::serve(
            listener,
            state,
            async move { stop.cancelled().await },
        )));
    }

    let signals = signal_hook_tokio::Signals::new([SIGHUP, SIGTERM, SIGINT, SIGUSR1])
        .map_err(anyhow::Error::from)?;
    let (watcher, changes) = DirWatcher::new().map_err(anyhow::Error::from)?;
    let (reports_tx, reports) = mpsc::unbounded_channel();
    let config_digest = reload::config_digest(&config.path);
    let mut supervisor = Supervisor {
        permits: Arc::new(Semaphore::new(config.daemon.max_concurrent_renewals)),
        config_digest,
        config,
        metrics,
        tasks: HashMap::new(),
        reports_tx,
        schedule: HashMap::new(),
        watcher,
        announced_ready: false,
        last_status: String::new(),
        clock,
    };
    // The tasks own the certificates' settings from here on (one copy each, shared
    // with their handles); the supervisor keeps the rest of the configuration.
    for cert in std::mem::take(&mut supervisor.config.certificates) {
        supervisor.start(Arc::new(cert));
    }
    if supervisor.tasks.is_empty() {
        warn!("no certificates configured: nothing to do until a reload adds a [[certificate]]");
        supervisor.announce();
    }
    if supervisor.config.daemon.watch_config {
        supervisor.watch_config();
    }

    supervisor
        .event_loop(signals, changes, reports, health, stop)
        .await;

    systemd::stopping();
    info!("stopping");
    shutdown.cancel();
    supervisor.stop_all().await;
    if let Some(server) = server {
        let _ = tokio::time::timeout(DRAIN, server).await;
    }
    Ok(())
}

struct TaskHandle {
    cfg: Arc<CertificateConfig>,
    control: Arc<Mailbox>,
    cancel: CancellationToken,
    join: JoinHandle<()>,
}

struct Supervisor {
    /// The configuration in force, without its certificates: those are in `tasks`.
    config: Config,
    metrics: Arc<Metrics>,
    permits: Arc<Semaphore>,
    tasks: HashMap<String, TaskHandle>,
    reports_tx: mpsc::UnboundedSender<Report>,
    schedule: HashMap<String, (CertState, Option<SystemTime>)>,
    watcher: DirWatcher,
    /// SHA-256 of the configuration file as last read: a change event reloads only
    /// when the contents differ.
    config_digest: Option<Vec<u8>>,
    announced_ready: bool,
    last_status: String,
    /// What the tasks' decisions read.
    clock: Clock,
}

impl Supervisor {
    async fn event_loop(
        &mut self,
        mut signals: signal_hook_tokio::Signals,
        mut changes: mpsc::UnboundedReceiver<PathBuf>,
        mut reports: mpsc::UnboundedReceiver<Report>,
        mut health: HealthRequests,
        stop: impl Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let mut clock = super::clock::ClockChanges::new();
        // Pings come from this loop, so a wedged loop stops them and systemd restarts us.
        let mut watchdog = systemd::watchdog_interval().map(tokio::time::interval);
        let mut pending: HashMap<String, Instant> = HashMap::new();
        let mut release_at: Option<Instant> = None;
        loop {
            let next_debounce = pending.values().min().copied();
            tokio::select! {
                () = &mut stop => return,
                Some(signal) = signals.next() => match signal {
                    SIGHUP => self.reload("SIGHUP").await,
                    SIGUSR1 => {
                        info!("SIGUSR1: renewing every certificate now");
                        for handle in self.tasks.values() {
                            handle.control.post(Control::RenewNow);
                        }
                    }
                    _ => {
                        info!(signal, "termination signal received");
                        return;
                    }
                },
                Some(path) = changes.recv() => {
                    self.watcher.appeared(&path);
                    let now = Instant::now();
                    for name in self.watcher.owners_of(&path) {
                        let settle = if name == CONFIG_WATCH { CONFIG_SETTLE } else { DEBOUNCE };
                        pending.insert(name.to_owned(), now + settle);
                    }
                }
                () = sleep_until_opt(next_debounce) => {
                    let now = Instant::now();
                    let due: Vec<String> = pending
                        .iter()
                        .filter(|(_, at)| **at <= now)
                        .map(|(name, _)| name.clone())
                        .collect();
                    for name in due {
                        pending.remove(&name);
                        if name == CONFIG_WATCH {
                            self.config_file_changed().await;
                        } else {
                            self.files_changed(&name);
                        }
                    }
                }
                Some(report) = reports.recv() => {
                    self.record(report);
                    release_at = Some(Instant::now() + RELEASE_AFTER_QUIET);
                }
                () = sleep_until_opt(release_at) => {
                    release_at = None;
                    crate::memory::release_free_memory();
                }
                Some(ping) = health.recv() => { let _ = ping.send(()); }
                _ = tick(&mut watchdog) => systemd::watchdog(),
                () = self.clock.stepped() => {
                    info!("the clock was stepped; recomputing every schedule");
                    for handle in self.tasks.values() {
                        handle.control.post(Control::ClockChanged);
                    }
                }
                moved = clock.changed() => {
                    info!(
                        moved_seconds = moved,
                        "the wall clock moved {moved:+.1} s against the monotonic clock (a step or a resume); recomputing every schedule"
                    );
                    for handle in self.tasks.values() {
                        handle.control.post(Control::ClockChanged);
                    }
                }
            }
        }
    }

    /// A burst of changes to `name`'s directories settled: watch them again (a directory
    /// that was removed is watched through its parent until it is back, and a new one
    /// in its place is watched itself), then tell the task to look.
    fn files_changed(&mut self, name: &str) {
        let Some(handle) = self.tasks.get(name) else {
            return;
        };
        for dir in watched_dirs(&handle.cfg) {
            if let Err(e) = self.watcher.watch(name, &dir) {
                debug!(name = %name, dir = %dir.display(), error = %e, "cannot watch the directory again");
            }
        }
        handle.control.post(Control::FilesChanged);
    }

    fn start(&mut self, cfg: Arc<CertificateConfig>) {
        let control = Arc::new(Mailbox::default());
        let cancel = CancellationToken::new();
        for dir in watched_dirs(&cfg) {
            if let Err(e) = self.watcher.watch(&cfg.name, &dir) {
                warn!(name = %cfg.name, dir = %dir.display(), error = %e, "cannot watch the directory; changes by others are seen at the next wakeup only");
            }
        }
        let ctx = TaskContext {
            cfg: Arc::clone(&cfg),
            metrics: Arc::clone(&self.metrics),
            permits: Arc::clone(&self.permits),
            control: Arc::clone(&control),
            reports: self.reports_tx.clone(),
            cancel: cancel.clone(),
            clock: self.clock.clone(),
        };
        let span = info_span!("cert", cert = %cfg.name, protocol = cfg.protocol.as_str());
        let join = tokio::spawn(task::run(ctx).instrument(span));
        self.tasks.insert(
            cfg.name.clone(),
            TaskHandle {
                cfg,
                control,
                cancel,
                join,
            },
        );
    }

    /// Stops the tasks of `names` together and returns once every one of them is gone,
    /// so that nothing of theirs writes a metric or state.json afterwards: each is
    /// cancelled, gets `DRAIN` to return, and is then aborted, the abort awaited too.
    /// (An fsync already handed to the blocking pool cannot be interrupted; it ends on
    /// its own and touches no metric.)
    async fn stop(&mut self, names: &[String]) {
        let mut joins = Vec::new();
        for name in names {
            self.schedule.remove(name);
            let Some(handle) = self.tasks.remove(name) else {
                continue;
            };
            handle.cancel.cancel();
            for dir in watched_dirs(&handle.cfg) {
                self.watcher.unwatch(name, &dir);
            }
            joins.push((name.clone(), handle.join));
        }
        let deadline = Instant::now() + DRAIN;
        futures::future::join_all(
            joins
                .into_iter()
                .map(|(name, join)| finish_or_abort(name, join, deadline)),
        )
        .await;
    }

    async fn stop_all(&mut self) {
        let names: Vec<String> = self.tasks.keys().cloned().collect();
        self.stop(&names).await;
    }

    fn record(&mut self, report: Report) {
        // A report a removed task sent before it stopped must not bring it back. (A
        // restarted task's stale reports come before its successor's: same channel.)
        if !self.tasks.contains_key(&report.name) {
            return;
        }
        self.schedule
            .insert(report.name, (report.state, report.next));
        self.announce();
    }

    /// READY=1 once every task has computed its first schedule; STATUS= when it changes.
    fn announce(&mut self) {
        let all_known = self.tasks.keys().all(|n| self.schedule.contains_key(n));
        if !all_known {
            return;
        }
        let now = SystemTime::now();
        let next = self
            .schedule
            .iter()
            .filter_map(|(name, (_, next))| next.map(|t| (name, t)))
            .min_by_key(|(_, t)| *t)
            .map(|(name, t)| (name.as_str(), t.duration_since(now).unwrap_or_default()));
        let broken = self
            .schedule
            .values()
            .filter(|(state, _)| !state.is_usable())
            .count();
        let line = systemd::status_line(self.tasks.len(), next, broken);
        if line != self.last_status {
            systemd::status(&line);
            self.last_status = line;
        }
        if !self.announced_ready {
            self.announced_ready = true;
            systemd::ready();
            info!(certificates = self.tasks.len(), "ready");
        }
    }
}

/// Waits for a cancelled task until `deadline`, then aborts it and waits for the abort.
async fn finish_or_abort(name: String, mut join: JoinHandle<()>, deadline: Instant) {
    if tokio::time::timeout_at(deadline, &mut join).await.is_ok() {
        return;
    }
    warn!(name = %name, "the certificate task did not stop within {DRAIN:?}; aborting it");
    join.abort();
    // Returns once the task's future is dropped (a running hook with it).
    let _ = join.await;
}

/// The directories whose changes concern a certificate.
fn watched_dirs(cfg: &CertificateConfig) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Layout::Files(paths) = &cfg.layout {
        files.extend([
            &paths.cert_file,
            &paths.key_file,
            &paths.chain_file,
            &paths.ca_file,
        ]);
    }
    // The token file's folder: a token written there, or a Kubernetes Secret volume
    // updated by its `..data` symlink swap, shows up as a change in it.
    files.extend(&cfg.token_file);
    let mut dirs = vec![cfg.dir.clone()];
    for parent in files.into_iter().filter_map(|file| file.parent()) {
        if !dirs.iter().any(|d| d == parent) {
            dirs.push(parent.to_path_buf());
        }
    }
    dirs
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// Sets its flag when dropped: the task owning it no longer exists.
    struct DropFlag(Arc<AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_task_that_ignores_its_cancellation_is_gone_once_stopping_returns() {
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = DropFlag(Arc::clone(&dropped));
        let join = tokio::spawn(async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        let grace = Duration::from_millis(50);
        let started = Instant::now();
        finish_or_abort("orders".to_owned(), join, started + grace).await;
        assert!(dropped.load(Ordering::SeqCst), "the task outlived its stop");
        assert!(started.elapsed() >= grace, "aborted before its drain");
    }

    #[tokio::test]
    async fn a_task_that_returns_in_time_is_awaited_without_waiting_for_the_drain() {
        let cancel = CancellationToken::new();
        let stopped = cancel.clone();
        let join = tokio::spawn(async move { stopped.cancelled().await });
        cancel.cancel();
        let started = Instant::now();
        finish_or_abort("orders".to_owned(), join, started + Duration::from_secs(30)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
