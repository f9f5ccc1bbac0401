//! The daemon's Prometheus metrics (DESIGN.md section 6) and the readiness snapshot of
//! certificate states, with their OpenMetrics and classic text encodings. Does not serve
//! HTTP and does not decide states: the event loop reports events here.
//!
//! Each certificate's values live in one small record (`Series`, about 350 bytes) that
//! is written out as about forty series at a scrape, rather than as forty registered
//! series, each a map entry with its own copy of the name (3-4 KiB per certificate).
//!
//! This file holds the events; the records are in `values`, their encoding in `export`,
//! and the kept texts in `cache`.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::registry::Registry;
use tokio::sync::Notify;

use super::state::{CertState, FailureReason};
use crate::hooks::HookKind;

mod cache;
mod export;
mod values;

pub use cache::TEXT_KEEP;
pub use values::DURATION_BUCKETS;

use cache::Encoded;
use export::Exporter;
use values::{Series, Values, hook_index, reason_index, result_index, unix_seconds};

/// `Metrics::last_event_ms` before any event.
const NO_EVENT: u64 = u64::MAX;

/// All metrics of the daemon, and the current state of every known certificate.
///
/// Every method is cheap and synchronous and holds no lock across an await, so scrapes
/// never block renewals. A certificate's series appear (counters at zero, state `missing`)
/// the first time any method names it, and disappear with [`Metrics::forget`].
pub struct Metrics {
    registry: Registry,
    values: Arc<Mutex<Values>>,
    /// Bumped after every event; the encodings below are valid for one value of it.
    generation: AtomicU64,
    /// The last encoding of each format.
    encoded: Mutex<[Option<Encoded>; 2]>,
    /// Woken by every event, for a background refresher of the encodings.
    changes: Notify,
    /// When the last event happened, in milliseconds since `born`; `NO_EVENT` before the
    /// first.
    last_event_ms: AtomicU64,
    born: Instant,
    /// The size of the last encoding, for the next one's buffer.
    last_size: AtomicUsize,
    /// By format: whether anyone has scraped it, so the refresher keeps it warm.
    wanted: [AtomicBool; 2],
    /// Emptied buffers of replaced large texts, reused while events come: a fresh 3 MB
    /// buffer costs a page fault per 4 KiB page at every encoding.
    spare: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("values", &*self.lock())
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// A fresh registry with `build_info{version}` = 1 and both reload counters at zero.
    pub fn new(version: &str) -> Arc<Self> {
        let values = Arc::new(Mutex::new(Values::default()));
        let mut registry = Registry::with_prefix("kyma_certd");
        registry.register_collector(Box::new(Exporter {
            values: Arc::clone(&values),
            version: version.to_owned(),
        }));
        Arc::new(Metrics {
            registry,
            values,
            generation: AtomicU64::new(0),
            encoded: Mutex::new([None, None]),
            changes: Notify::new(),
            last_event_ms: AtomicU64::new(NO_EVENT),
            born: Instant::now(),
            last_size: AtomicUsize::new(0),
            wanted: [AtomicBool::new(false), AtomicBool::new(false)],
            spare: Mutex::new(Vec::new()),
        })
    }

    /// The certificate on disk is (now) the one valid from `not_before` to `not_after`.
    pub fn cert_loaded(&self, name: &str, not_before: SystemTime, not_after: SystemTime) {
        self.update(name, |s| {
            s.not_before = Some(unix_seconds(not_before));
            s.not_after = Some(unix_seconds(not_after));
        });
    }

    /// No certificate is on disk (any more): its validity series disappear, so no alert
    /// reads the notAfter of files that are gone.
    pub fn cert_unloaded(&self, name: &str) {
        self.update(name, |s| {
            s.not_before = None;
            s.not_after = None;
        });
    }

    /// The certificate was last enrolled at `at` (state.json's record), or never (`None`).
    /// A `missing` certificate that was enrolled once has been lost; one that never was
    /// is a new one (the alerts tell the two apart). Unchanged values are not an event.
    pub fn enrolled(&self, name: &str, at: Option<SystemTime>) {
        let at = at.map(unix_seconds);
        if self
            .lock()
            .certs
            .get(name)
            .is_some_and(|series| series.enrolled == at)
        {
            return;
        }
        self.update(name, |s| s.enrolled = at);
    }

    /// The next attempt is scheduled at `at`; `None` (waiting for enrollment) removes the
    /// series.
    pub fn next_renewal(&self, name: &str, at: Option<SystemTime>) {
        self.update(name, |s| s.next_renewal = at.map(unix_seconds));
    }

    /// `name` is now in `state`: its state gauge moves and `/readyz` follows.
    pub fn set_state(&self, name: &str, state: CertState) {
        self.update(name, |s| s.state = state);
    }

    /// A renewal succeeded after `took`: one success counted, the failure streak reset,
    /// the last-success time set to now.
    pub fn renewal_succeeded(&self, name: &str, took: Duration) {
        self.update(name, |s| {
            s.renewals[result_index(true)] += 1;
            s.consecutive_failures = 0;
            s.last_success = Some(unix_seconds(SystemTime::now()));
            s.duration.observe(took.as_secs_f64());
        });
    }

    /// A renewal failed for `reason` after `took`: one failure counted, by result and by
    /// reason, and the failure streak grows by one.
    pub fn renewal_failed(&self, name: &str, reason: FailureReason, took: Duration) {
        self.update(name, |s| {
            s.renewals[result_index(false)] += 1;
            s.failures[reason_index(reason)] += 1;
            s.consecutive_failures += 1;
            s.duration.observe(took.as_secs_f64());
        });
    }

    /// A renewal returned a CA bundle different from the previous generation's.
    pub fn ca_changed(&self, name: &str) {
        self.update(name, |s| s.ca_changes += 1);
    }

    /// The failure streak remembered from before a restart (`state.json`), so the gauge
    /// keeps counting since the last success rather than since the process started.
    pub fn restore_failures(&self, name: &str, consecutive: u32) {
        self.update(name, |s| s.consecutive_failures = i64::from(consecutive));
    }

    /// The daemon enrolled `name` with a token from its `token_file` (`ok`), or the
    /// connector refused that token.
    pub fn token_enrollment(&self, name: &str, ok: bool) {
        self.update(name, |s| s.token_enrollments[result_index(ok)] += 1);
    }

    /// One `on_renew` hook of `kind` ran for `name`.
    pub fn hook_ran(&self, name: &str, kind: HookKind, ok: bool) {
        self.update(name, |s| {
            s.hook_runs[hook_index(kind)][result_index(ok)] += 1
        });
    }

    /// How many `on_renew` hooks still have to hear about `name`'s current certificate.
    pub fn hooks_pending(&self, name: &str, pending: usize) {
        self.update(name, |s| {
            s.hooks_pending = i64::try_from(pending).unwrap_or(i64::MAX);
        });
    }

    /// Whether `name` keeps a record in memory because state.json cannot be written.
    pub fn state_unwritten(&self, name: &str, unwritten: bool) {
        self.update(name, |s| s.state_unwritten = i64::from(unwritten));
    }

    /// A configuration reload was applied (`ok`) or rejected.
    pub fn config_reload(&self, ok: bool) {
        self.lock().config_reloads[result_index(ok)] += 1;
        self.changed_now();
    }

    /// `name` left the configuration: all its series and its readiness entry disappear.
    pub fn forget(&self, name: &str) {
        self.lock().certs.remove(name);
        self.changed_now();
    }

    /// Every known certificate and its state, sorted by name.
    pub fn states(&self) -> Vec<(String, CertState)> {
        self.lock()
            .certs
            .iter()
            .map(|(name, series)| (name.to_string(), series.state))
            .collect()
    }

    /// The state of `name`, if it is known.
    pub fn state_of(&self, name: &str) -> Option<CertState> {
        self.lock().certs.get(name).map(|series| series.state)
    }

    /// Completes once an event has happened since the previous call completed (or
    /// since the start): what a background refresher waits for.
    pub async fn wait_for_change(&self) {
        self.changes.notified().await;
    }

    /// As if the last event were `TEXT_KEEP` ago.
    #[cfg(test)]
    fn pretend_quiet(&self) {
        self.last_event_ms.store(NO_EVENT, Ordering::Relaxed);
    }

    /// Marks the cached encodings stale and wakes the refresher; called after every event.
    fn changed_now(&self) {
        let since_born = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(NO_EVENT - 1);
        self.last_event_ms.store(since_born, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::Release);
        self.changes.notify_one();
    }

    fn lock(&self) -> MutexGuard<'_, Values> {
        // A panic elsewhere while holding the lock leaves values that are still consistent.
        self.values
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Changes `name`'s values (creating them, at zero and `missing`, the first time the
    /// name is seen) and marks the encodings stale.
    fn update(&self, name: &str, change: impl FnOnce(&mut Series)) {
        {
            let mut values = self.lock();
            match values.certs.get_mut(name) {
                Some(series) => change(series),
                None => {
                    let mut series = Series::default();
                    change(&mut series);
                    values.certs.insert(name.into(), Box::new(series));
                }
            }
        }
        self.changed_now();
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod reference_tests;
