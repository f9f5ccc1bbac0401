//! The daemon's Prometheus metrics (DESIGN.md section 6) and the readiness snapshot of
//! certificate states, with their OpenMetrics and classic text encodings. Does not serve
//! HTTP and does not decide states: the event loop reports events here.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;

use super::format::{Format, openmetrics_to_classic};
use super::state::{CertState, FailureReason};
use crate::hooks::HookKind;

/// Upper bounds of `renewal_duration_seconds`: a 50 ms REST round trip up to a slow RSA-4096
/// key generation plus retries inside one attempt.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct NameLabels {
    name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabels {
    name: String,
    state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    name: String,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    name: String,
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HookLabels {
    name: String,
    hook: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReloadLabels {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

type TimeGauge = Family<NameLabels, Gauge<f64, AtomicU64>>;

fn new_duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

fn result_label(ok: bool) -> &'static str {
    if ok { "success" } else { "failure" }
}

fn unix_seconds(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    }
}

/// Below this size a scrape always encodes afresh: exact values cost under a millisecond.
/// Above it (about a hundred certificates) a text at most `max_age` old may be served.
const STALE_TEXT_MIN_BYTES: usize = 256 * 1024;

/// All metrics of the daemon, and the current state of every known certificate.
///
/// Every method is cheap and synchronous and holds no lock across an await, so scrapes
/// never block renewals. A certificate's series appear (counters at zero, state `missing`)
/// the first time any method names it, and disappear with [`Metrics::forget`].
pub struct Metrics {
    registry: Registry,
    not_after: TimeGauge,
    not_before: TimeGauge,
    next_renewal: TimeGauge,
    last_success: TimeGauge,
    state: Family<StateLabels, Gauge>,
    renewals: Family<ResultLabels, Counter>,
    failures: Family<ReasonLabels, Counter>,
    consecutive_failures: Family<NameLabels, Gauge>,
    duration: Family<NameLabels, Histogram, fn() -> Histogram>,
    hook_runs: Family<HookLabels, Counter>,
    token_enrollments: Family<ResultLabels, Counter>,
    hooks_pending: Family<NameLabels, Gauge>,
    config_reloads: Family<ReloadLabels, Counter>,
    ca_changes: Family<NameLabels, Counter>,
    /// The readiness snapshot; also the set of known certificate names.
    states: Mutex<BTreeMap<String, CertState>>,
    /// Bumped after every event; the encodings below are valid for one value of it.
    generation: AtomicU64,
    /// The last encoding of each format.
    encoded: Mutex<[Option<Encoded>; 2]>,
    /// Woken by every event, for a background refresher of the encodings.
    changes: Notify,
}

/// One cached encoding: the registry at `generation`, read at `as_of` (every event
/// before `as_of` is in the text).
struct Encoded {
    generation: u64,
    as_of: Instant,
    text: Bytes,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("states", &*self.lock_states())
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// A fresh registry with `build_info{version}` = 1 and both reload counters at zero.
    pub fn new(version: &str) -> Arc<Self> {
        let mut registry = Registry::with_prefix("kyma_certd");
        let metrics = Metrics {
            not_after: Family::default(),
            not_before: Family::default(),
            next_renewal: Family::default(),
            last_success: Family::default(),
            state: Family::default(),
            renewals: Family::default(),
            failures: Family::default(),
            consecutive_failures: Family::default(),
            duration: Family::new_with_constructor(new_duration_histogram),
            hook_runs: Family::default(),
            token_enrollments: Family::default(),
            hooks_pending: Family::default(),
            config_reloads: Family::default(),
            ca_changes: Family::default(),
            states: Mutex::new(BTreeMap::new()),
            generation: AtomicU64::new(0),
            encoded: Mutex::new([None, None]),
            changes: Notify::new(),
            registry: Registry::default(),
        };
        let build_info = Family::<VersionLabels, Gauge>::default();
        build_info
            .get_or_create(&VersionLabels {
                version: version.to_owned(),
            })
            .set(1);
        for ok in [true, false] {
            create(
                &metrics.config_reloads,
                &ReloadLabels {
                    result: result_label(ok),
                },
            );
        }

        registry.register(
            "certificate_not_after_timestamp_seconds",
            "notAfter of the current certificate, in seconds since the Unix epoch",
            metrics.not_after.clone(),
        );
        registry.register(
            "certificate_not_before_timestamp_seconds",
            "notBefore of the current certificate, in seconds since the Unix epoch",
            metrics.not_before.clone(),
        );
        registry.register(
            "certificate_next_renewal_timestamp_seconds",
            "When the next renewal attempt is scheduled, in seconds since the Unix epoch",
            metrics.next_renewal.clone(),
        );
        registry.register(
            "certificate_state",
            "1 for the certificate's current state, 0 for the others",
            metrics.state.clone(),
        );
        registry.register(
            "renewals",
            "Renewal attempts by result",
            metrics.renewals.clone(),
        );
        registry.register(
            "renewal_failures",
            "Failed renewal attempts by reason",
            metrics.failures.clone(),
        );
        registry.register(
            "consecutive_failures",
            "Failed renewal attempts since the last success",
            metrics.consecutive_failures.clone(),
        );
        registry.register(
            "renewal_duration_seconds",
            "Duration of whole renewal attempts, key generation included",
            metrics.duration.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "When the last renewal succeeded, in seconds since the Unix epoch",
            metrics.last_success.clone(),
        );
        registry.register(
            "hook_runs",
            "on_renew hook runs by kind and result",
            metrics.hook_runs.clone(),
        );
        registry.register(
            "token_enrollments",
            "Enrollments the daemon made with a token from token_file, by result",
            metrics.token_enrollments.clone(),
        );
        registry.register(
            "hooks_pending",
            "on_renew hooks not yet told about the current certificate",
            metrics.hooks_pending.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads by result",
            metrics.config_reloads.clone(),
        );
        registry.register(
            "ca_changes",
            "Renewals that returned a CA bundle different from the previous one",
            metrics.ca_changes.clone(),
        );
        registry.register(
            "build_info",
            "Always 1; the version label names the running build",
            build_info,
        );
        Arc::new(Metrics {
            registry,
            ..metrics
        })
    }

    /// The certificate on disk is (now) the one valid from `not_before` to `not_after`.
    pub fn cert_loaded(&self, name: &str, not_before: SystemTime, not_after: SystemTime) {
        self.touch(name);
        let labels = name_labels(name);
        self.not_before
            .get_or_create(&labels)
            .set(unix_seconds(not_before));
        self.not_after
            .get_or_create(&labels)
            .set(unix_seconds(not_after));
        self.changed_now();
    }

    /// No certificate is on disk (any more): its validity series disappear, so no alert
    /// reads the notAfter of files that are gone.
    pub fn cert_unloaded(&self, name: &str) {
        self.touch(name);
        let labels = name_labels(name);
        self.not_before.remove(&labels);
        self.not_after.remove(&labels);
        self.changed_now();
    }

    /// The next attempt is scheduled at `at`; `None` (waiting for enrollment) removes the
    /// series.
    pub fn next_renewal(&self, name: &str, at: Option<SystemTime>) {
        self.touch(name);
        let labels = name_labels(name);
        match at {
            Some(at) => {
                self.next_renewal
                    .get_or_create(&labels)
                    .set(unix_seconds(at));
            }
            None => {
                self.next_renewal.remove(&labels);
            }
        }
        self.changed_now();
    }

    /// `name` is now in `state`: its state gauge moves and `/readyz` follows.
    pub fn set_state(&self, name: &str, state: CertState) {
        let mut states = self.lock_states();
        self.touch_locked(&mut states, name);
        states.insert(name.to_owned(), state);
        self.write_state(name, state);
        self.changed_now();
    }

    /// A renewal succeeded after `took`: one success counted, the failure streak reset,
    /// the last-success time set to now.
    pub fn renewal_succeeded(&self, name: &str, took: Duration) {
        self.touch(name);
        let labels = name_labels(name);
        self.renewals
            .get_or_create(&result_labels(name, true))
            .inc();
        self.consecutive_failures.get_or_create(&labels).set(0);
        self.last_success
            .get_or_create(&labels)
            .set(unix_seconds(SystemTime::now()));
        self.duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        self.changed_now();
    }

    /// A renewal failed for `reason` after `took`: one failure counted, by result and by
    /// reason, and the failure streak grows by one.
    pub fn renewal_failed(&self, name: &str, reason: FailureReason, took: Duration) {
        self.touch(name);
        let labels = name_labels(name);
        self.renewals
            .get_or_create(&result_labels(name, false))
            .inc();
        self.failures
            .get_or_create(&ReasonLabels {
                name: name.to_owned(),
                reason: reason.as_str(),
            })
            .inc();
        self.consecutive_failures.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        self.changed_now();
    }

    /// A renewal returned a CA bundle different from the previous generation's.
    pub fn ca_changed(&self, name: &str) {
        self.touch(name);
        self.ca_changes.get_or_create(&name_labels(name)).inc();
        self.changed_now();
    }

    /// The failure streak remembered from before a restart (`state.json`), so the gauge
    /// keeps counting since the last success rather than since the process started.
    pub fn restore_failures(&self, name: &str, consecutive: u32) {
        self.touch(name);
        self.consecutive_failures
            .get_or_create(&name_labels(name))
            .set(i64::from(consecutive));
        self.changed_now();
    }

    /// The daemon enrolled `name` with a token from its `token_file` (`ok`), or the
    /// connector refused that token.
    pub fn token_enrollment(&self, name: &str, ok: bool) {
        self.touch(name);
        self.token_enrollments
            .get_or_create(&result_labels(name, ok))
            .inc();
        self.changed_now();
    }

    /// One `on_renew` hook of `kind` ran for `name`.
    pub fn hook_ran(&self, name: &str, kind: HookKind, ok: bool) {
        self.touch(name);
        self.hook_runs
            .get_or_create(&HookLabels {
                name: name.to_owned(),
                hook: kind.as_label(),
                result: result_label(ok),
            })
            .inc();
        self.changed_now();
    }

    /// How many `on_renew` hooks still have to hear about `name`'s current certificate.
    pub fn hooks_pending(&self, name: &str, pending: usize) {
        self.touch(name);
        self.hooks_pending
            .get_or_create(&name_labels(name))
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        self.changed_now();
    }

    /// A configuration reload was applied (`ok`) or rejected.
    pub fn config_reload(&self, ok: bool) {
        self.config_reloads
            .get_or_create(&ReloadLabels {
                result: result_label(ok),
            })
            .inc();
        self.changed_now();
    }

    /// `name` left the configuration: all its series and its readiness entry disappear.
    pub fn forget(&self, name: &str) {
        let mut states = self.lock_states();
        states.remove(name);
        let labels = name_labels(name);
        for family in [
            &self.not_after,
            &self.not_before,
            &self.next_renewal,
            &self.last_success,
        ] {
            family.remove(&labels);
        }
        self.consecutive_failures.remove(&labels);
        self.hooks_pending.remove(&labels);
        self.duration.remove(&labels);
        self.ca_changes.remove(&labels);
        for state in CertState::ALL {
            self.state.remove(&state_labels(name, state));
        }
        for ok in [true, false] {
            self.renewals.remove(&result_labels(name, ok));
            self.token_enrollments.remove(&result_labels(name, ok));
            for kind in HookKind::ALL {
                self.hook_runs.remove(&hook_labels(name, kind, ok));
            }
        }
        for reason in FailureReason::ALL {
            self.failures.remove(&ReasonLabels {
                name: name.to_owned(),
                reason: reason.as_str(),
            });
        }
        self.changed_now();
    }

    /// Every known certificate and its state, sorted by name.
    pub fn states(&self) -> Vec<(String, CertState)> {
        self.lock_states()
            .iter()
            .map(|(name, state)| (name.clone(), *state))
            .collect()
    }

    /// The state of `name`, if it is known.
    pub fn state_of(&self, name: &str) -> Option<CertState> {
        self.lock_states().get(name).copied()
    }

    /// The whole registry in `format`, as it is now.
    ///
    /// The text is cached per format until the next event, so repeated scrapes of an
    /// unchanged registry cost a reference count.
    pub fn encode(&self, format: Format) -> Bytes {
        self.encode_recent(format, Duration::ZERO)
    }

    /// The registry in `format`, allowing the cached text when it misses only the events
    /// of the last `max_age`: with thousands of certificates an encoding takes
    /// milliseconds, and a scrape during a burst of renewals should not pay for it each
    /// time (see [`Metrics::refresh_stale`]). `Duration::ZERO` is [`Metrics::encode`].
    pub fn encode_recent(&self, format: Format, max_age: Duration) -> Bytes {
        let slot = slot(format);
        // Read before encoding: an event during the encoding bumps it past this value.
        let generation = self.generation.load(Ordering::Acquire);
        let now = Instant::now();
        if let Some(cached) = &self.lock_cache()[slot]
            && (cached.generation == generation
                || (!max_age.is_zero()
                    && cached.text.len() >= STALE_TEXT_MIN_BYTES
                    && now.duration_since(cached.as_of) <= max_age))
        {
            return cached.text.clone();
        }
        self.encode_into_cache(format, generation, now)
    }

    /// Re-encodes the formats that were encoded before (someone scrapes them) and are
    /// out of date. Takes milliseconds with many certificates: call it off the event loop.
    pub fn refresh_stale(&self) {
        for format in [Format::OpenMetrics, Format::Classic] {
            let generation = self.generation.load(Ordering::Acquire);
            let stale = matches!(
                &self.lock_cache()[slot(format)],
                Some(cached) if cached.generation != generation
            );
            if stale {
                self.encode_into_cache(format, generation, Instant::now());
            }
        }
    }

    /// Whether a cached encoding is large enough that re-encoding it takes milliseconds
    /// (and a slightly old one may be served meanwhile).
    pub fn has_large_encoding(&self) -> bool {
        self.lock_cache()
            .iter()
            .flatten()
            .any(|cached| cached.text.len() >= STALE_TEXT_MIN_BYTES)
    }

    /// Completes once an event has happened since the previous call completed (or
    /// since the start): what a background refresher waits for.
    pub async fn wait_for_change(&self) {
        self.changes.notified().await;
    }

    fn encode_into_cache(&self, format: Format, generation: u64, as_of: Instant) -> Bytes {
        let slot = slot(format);
        let size_hint = self.lock_cache()[slot]
            .as_ref()
            .map_or(4096, |cached| cached.text.len() + cached.text.len() / 8);
        let text = Bytes::from(self.encode_uncached(format, size_hint));
        let mut cache = self.lock_cache();
        // Two encoders may race (a scrape and the refresher): keep the newer text.
        if cache[slot]
            .as_ref()
            .is_none_or(|cached| cached.generation <= generation)
        {
            cache[slot] = Some(Encoded {
                generation,
                as_of,
                text: text.clone(),
            });
        }
        text
    }

    fn encode_uncached(&self, format: Format, size_hint: usize) -> String {
        let mut text = String::with_capacity(size_hint);
        // Writing into a String cannot fail, and every metric here encodes without error.
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            tracing::error!("encoding the metrics failed");
        }
        match format {
            Format::OpenMetrics => text,
            Format::Classic => openmetrics_to_classic(&text),
        }
    }

    fn lock_cache(&self) -> MutexGuard<'_, [Option<Encoded>; 2]> {
        self.encoded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Marks the cached encodings stale and wakes the refresher; called after every event.
    fn changed_now(&self) {
        self.generation.fetch_add(1, Ordering::Release);
        self.changes.notify_one();
    }

    fn lock_states(&self) -> MutexGuard<'_, BTreeMap<String, CertState>> {
        // A panic elsewhere while holding the lock leaves a map that is still consistent.
        self.states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn touch(&self, name: &str) {
        let mut states = self.lock_states();
        self.touch_locked(&mut states, name);
    }

    /// Creates the series of a name seen for the first time: counters at zero, state
    /// `missing`, so rates and alerts work from the first scrape.
    fn touch_locked(&self, states: &mut BTreeMap<String, CertState>, name: &str) {
        if states.contains_key(name) {
            return;
        }
        states.insert(name.to_owned(), CertState::Missing);
        self.write_state(name, CertState::Missing);
        for ok in [true, false] {
            create(&self.renewals, &result_labels(name, ok));
            create(&self.token_enrollments, &result_labels(name, ok));
            for kind in HookKind::ALL {
                create(&self.hook_runs, &hook_labels(name, kind, ok));
            }
        }
        for reason in FailureReason::ALL {
            create(
                &self.failures,
                &ReasonLabels {
                    name: name.to_owned(),
                    reason: reason.as_str(),
                },
            );
        }
        let labels = name_labels(name);
        create(&self.consecutive_failures, &labels);
        create(&self.hooks_pending, &labels);
        create(&self.duration, &labels);
        create(&self.ca_changes, &labels);
    }

    fn write_state(&self, name: &str, current: CertState) {
        for state in CertState::ALL {
            self.state
                .get_or_create(&state_labels(name, state))
                .set(i64::from(state == current));
        }
    }
}

/// Creates the series `labels` in `family` (at zero) without touching its value.
fn create<S, M, C>(family: &Family<S, M, C>, labels: &S)
where
    S: Clone + std::hash::Hash + Eq,
    C: prometheus_client::metrics::family::MetricConstructor<M>,
{
    drop(family.get_or_create(labels));
}

fn slot(format: Format) -> usize {
    match format {
        Format::OpenMetrics => 0,
        Format::Classic => 1,
    }
}

fn name_labels(name: &str) -> NameLabels {
    NameLabels {
        name: name.to_owned(),
    }
}

fn state_labels(name: &str, state: CertState) -> StateLabels {
    StateLabels {
        name: name.to_owned(),
        state: state.as_str(),
    }
}

fn result_labels(name: &str, ok: bool) -> ResultLabels {
    ResultLabels {
        name: name.to_owned(),
        result: result_label(ok),
    }
}

fn hook_labels(name: &str, kind: HookKind, ok: bool) -> HookLabels {
    HookLabels {
        name: name.to_owned(),
        hook: kind.as_label(),
        result: result_label(ok),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod snapshot_tests;
