//! The daemon's Prometheus metrics (DESIGN.md section 6) and the readiness snapshot of
//! certificate states, with their OpenMetrics and classic text encodings. Does not serve
//! HTTP and does not decide states: the event loop reports events here.
//!
//! Each certificate's values live in one small record (`Series`, about 350 bytes) that
//! is written out as about forty series at a scrape, rather than as forty registered
//! series, each a map entry with its own copy of the name (3-4 KiB per certificate).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;

use super::format::{Format, write_classic};
use super::state::{CertState, FailureReason};
use crate::hooks::HookKind;

/// Upper bounds of `renewal_duration_seconds`: a 50 ms REST round trip up to a slow RSA-4096
/// key generation plus retries inside one attempt.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
];

/// The `result` label of the counters by outcome, in the order of their arrays.
const RESULTS: [&str; 2] = ["success", "failure"];

fn result_index(ok: bool) -> usize {
    usize::from(!ok)
}

fn unix_seconds(t: SystemTime) -> f64 {
    crate::schedule::seconds_between(UNIX_EPOCH, t)
}

/// Below this size a scrape always encodes afresh: exact values cost under a millisecond.
/// Above it (about a hundred certificates) a text at most `max_age` old may be served.
const STALE_TEXT_MIN_BYTES: usize = 256 * 1024;

/// A large text is kept for later scrapes only while events come (renewals, a start):
/// this long after the last one it is dropped, and a quiet daemon holds none (a
/// thousand certificates' text is 3 MB). Scrapes of a quiet registry encode afresh.
pub const TEXT_KEEP: Duration = Duration::from_secs(10);

/// Everything exported about one certificate. Counters start at zero and the state at
/// `missing` when the certificate is first named, so rates and alerts work from the first
/// scrape; the timestamps exist only once known.
#[derive(Debug, Clone)]
struct Series {
    state: CertState,
    not_before: Option<f64>,
    not_after: Option<f64>,
    /// When state.json says the certificate was last enrolled; `None` if never.
    enrolled: Option<f64>,
    next_renewal: Option<f64>,
    last_success: Option<f64>,
    /// By `RESULTS`.
    renewals: [u64; 2],
    /// By `FailureReason::ALL`.
    failures: [u64; FailureReason::ALL.len()],
    consecutive_failures: i64,
    duration: Durations,
    /// By `HookKind::ALL`, then `RESULTS`.
    hook_runs: [[u64; 2]; HookKind::ALL.len()],
    /// By `RESULTS`.
    token_enrollments: [u64; 2],
    hooks_pending: i64,
    /// 1 while a record that state.json could not take is kept in memory.
    state_unwritten: i64,
    ca_changes: u64,
}

impl Default for Series {
    fn default() -> Self {
        Series {
            state: CertState::Missing,
            not_before: None,
            not_after: None,
            enrolled: None,
            next_renewal: None,
            last_success: None,
            renewals: [0; 2],
            failures: [0; FailureReason::ALL.len()],
            consecutive_failures: 0,
            duration: Durations::default(),
            hook_runs: [[0; 2]; HookKind::ALL.len()],
            token_enrollments: [0; 2],
            hooks_pending: 0,
            state_unwritten: 0,
            ca_changes: 0,
        }
    }
}

/// A histogram over `DURATION_BUCKETS`; the last bucket is `+Inf`. Counts per bucket,
/// not cumulative (the encoder sums them).
#[derive(Debug, Clone, Default)]
struct Durations {
    sum: f64,
    count: u64,
    buckets: [u64; DURATION_BUCKETS.len() + 1],
}

impl Durations {
    fn observe(&mut self, seconds: f64) {
        self.sum += seconds;
        self.count += 1;
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|upper| seconds <= *upper)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[bucket] += 1;
    }

    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut buckets = [(0.0, 0); DURATION_BUCKETS.len() + 1];
        for (i, bucket) in buckets.iter_mut().enumerate() {
            let upper = DURATION_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY);
            *bucket = (upper, self.buckets[i]);
        }
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            self.sum, self.count, &buckets, None,
        )
    }
}

/// The values behind the metrics, under one lock: the scrape reads them all at once.
#[derive(Debug, Default)]
struct Values {
    /// Every known certificate, by name: also the readiness snapshot.
    /// Boxed: the map's nodes are half empty after splits, and empty slots of a box
    /// cost 8 bytes instead of a whole record.
    /// Names are shared with the copies a scrape encodes from.
    certs: BTreeMap<Arc<str>, Box<Series>>,
    /// By `RESULTS`.
    config_reloads: [u64; 2],
}

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

/// A certificate's share of the text, about: 40 series of about 70 bytes.
const BYTES_PER_CERTIFICATE: usize = 2_800;

/// `Metrics::last_event_ms` before any event.
const NO_EVENT: u64 = u64::MAX;

/// At most this many spare buffers: the text being replaced and a classic encoding's
/// OpenMetrics draft.
const SPARE_BUFFERS: usize = 2;

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
        self.wanted[slot(format)].store(true, Ordering::Relaxed);
        // Read before encoding: an event during the encoding bumps it past this value.
        let generation = self.generation.load(Ordering::Acquire);
        let now = Instant::now();
        match self.cached_at(format, max_age, generation, now) {
            Some(text) => text,
            None => self.encode_into_cache(format, generation, now),
        }
    }

    /// The cached text that [`Metrics::encode_recent`] would serve, if there is one.
    pub fn cached(&self, format: Format, max_age: Duration) -> Option<Bytes> {
        self.wanted[slot(format)].store(true, Ordering::Relaxed);
        let generation = self.generation.load(Ordering::Acquire);
        self.cached_at(format, max_age, generation, Instant::now())
    }

    /// Whether an encoding takes long enough (milliseconds) to be done off the event loop.
    pub fn encodes_slowly(&self) -> bool {
        self.expected_size() >= STALE_TEXT_MIN_BYTES
    }

    /// The next text's size: the last one's, or an estimate before the first, so that
    /// even the first scrape of a large registry is encoded off the event loop.
    fn expected_size(&self) -> usize {
        let last = self.last_size.load(Ordering::Relaxed);
        let estimate = self.lock().certs.len() * BYTES_PER_CERTIFICATE;
        last.max(estimate)
    }

    fn cached_at(
        &self,
        format: Format,
        max_age: Duration,
        generation: u64,
        now: Instant,
    ) -> Option<Bytes> {
        let cache = self.lock_cache();
        let cached = cache[slot(format)].as_ref()?;
        let recent = cached.generation == generation
            || (!max_age.is_zero()
                && cached.text.len() >= STALE_TEXT_MIN_BYTES
                && now.duration_since(cached.as_of) <= max_age);
        recent.then(|| cached.text.clone())
    }

    /// Re-encodes the formats someone scrapes whose cached text is out of date or was
    /// dropped while the registry was quiet. Takes milliseconds with many certificates:
    /// call it off the event loop.
    pub fn refresh_stale(&self) {
        for format in [Format::OpenMetrics, Format::Classic] {
            if !self.wanted[slot(format)].load(Ordering::Relaxed) {
                continue;
            }
            let generation = self.generation.load(Ordering::Acquire);
            let current = matches!(
                &self.lock_cache()[slot(format)],
                Some(cached) if cached.generation == generation
            );
            if !current {
                self.encode_into_cache(format, generation, Instant::now());
            }
        }
    }

    /// Whether a scraped format has no cached text: the registry was quiet and its large
    /// text was dropped. The first event after such a pause is encoded at once, so the
    /// scrapes of a burst find a text from its start.
    pub fn is_cold(&self) -> bool {
        let cache = self.lock_cache();
        [Format::OpenMetrics, Format::Classic]
            .into_iter()
            .any(|format| {
                self.wanted[slot(format)].load(Ordering::Relaxed) && cache[slot(format)].is_none()
            })
    }

    /// Completes once an event has happened since the previous call completed (or
    /// since the start): what a background refresher waits for.
    pub async fn wait_for_change(&self) {
        self.changes.notified().await;
    }

    fn encode_into_cache(&self, format: Format, generation: u64, as_of: Instant) -> Bytes {
        let slot = slot(format);
        // The expected size, with room: one allocation instead of a dozen doublings.
        let expected = self.expected_size();
        let size_hint = expected + expected / 8;
        let text = Bytes::from(self.encode_uncached(format, size_hint));
        self.last_size.store(text.len(), Ordering::Relaxed);
        if text.len() >= STALE_TEXT_MIN_BYTES && !self.keeps_texts() {
            return text;
        }
        let replaced = {
            let mut cache = self.lock_cache();
            // Two encoders may race (a scrape and the refresher): keep the newer text.
            if cache[slot]
                .as_ref()
                .is_none_or(|cached| cached.generation <= generation)
            {
                cache[slot].replace(Encoded {
                    generation,
                    as_of,
                    text: text.clone(),
                })
            } else {
                None
            }
        };
        if let Some(replaced) = replaced {
            self.recycle(replaced.text);
        }
        text
    }

    fn encode_uncached(&self, format: Format, size_hint: usize) -> String {
        let mut text = self.buffer(size_hint);
        // Writing into a String cannot fail, and every metric here encodes without error.
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            tracing::error!("encoding the metrics failed");
        }
        match format {
            Format::OpenMetrics => text,
            Format::Classic => {
                let mut classic = self.buffer(size_hint);
                write_classic(&text, &mut classic);
                text.clear();
                self.keep_spare(text);
                classic
            }
        }
    }

    /// An empty buffer of at least `capacity`: a spare one while events come, else new.
    fn buffer(&self, capacity: usize) -> String {
        let mut buffer = self.lock_spare().pop().unwrap_or_default();
        buffer.reserve(capacity);
        buffer
    }

    /// Keeps the buffer of a replaced text for the next encoding, if no scrape still
    /// holds it and events are coming (a quiet registry keeps no large buffer).
    fn recycle(&self, text: Bytes) {
        if text.len() < STALE_TEXT_MIN_BYTES || !self.keeps_texts() {
            return;
        }
        let Ok(unique) = text.try_into_mut() else {
            return;
        };
        let mut buffer = Vec::from(unique);
        buffer.clear();
        if let Ok(buffer) = String::from_utf8(buffer) {
            self.keep_spare(buffer);
        }
    }

    fn keep_spare(&self, buffer: String) {
        if buffer.capacity() < STALE_TEXT_MIN_BYTES || !self.keeps_texts() {
            return;
        }
        let mut spare = self.lock_spare();
        if spare.len() < SPARE_BUFFERS {
            spare.push(buffer);
        }
    }

    fn lock_spare(&self) -> MutexGuard<'_, Vec<String>> {
        self.spare
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_cache(&self) -> MutexGuard<'_, [Option<Encoded>; 2]> {
        self.encoded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drops the large cached texts and spare buffers once no event has come for
    /// `TEXT_KEEP`.
    pub fn drop_idle_encodings(&self) {
        if self.keeps_texts() {
            return;
        }
        self.lock_spare().clear();
        for cached in self.lock_cache().iter_mut() {
            if cached
                .as_ref()
                .is_some_and(|c| c.text.len() >= STALE_TEXT_MIN_BYTES)
            {
                *cached = None;
            }
        }
    }

    /// Whether large texts are kept for later scrapes: while events come, i.e. an event
    /// came within the last `TEXT_KEEP`.
    pub fn keeps_texts(&self) -> bool {
        match self.last_event_ms.load(Ordering::Relaxed) {
            NO_EVENT => false,
            last => {
                self.born
                    .elapsed()
                    .saturating_sub(Duration::from_millis(last))
                    < TEXT_KEEP
            }
        }
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

fn reason_index(reason: FailureReason) -> usize {
    FailureReason::ALL
        .iter()
        .position(|r| *r == reason)
        .expect("ALL lists every reason")
}

fn hook_index(kind: HookKind) -> usize {
    HookKind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("ALL lists every kind")
}

fn slot(format: Format) -> usize {
    match format {
        Format::OpenMetrics => 0,
        Format::Classic => 1,
    }
}

/// Writes the values out as metric families at each scrape, in the order DESIGN.md lists
/// them, certificates sorted by name.
#[derive(Debug)]
struct Exporter {
    values: Arc<Mutex<Values>>,
    version: String,
}

/// One family: its descriptor, then one sample (or histogram) per label set.
fn family<'a>(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl Iterator<Item = (Labels<'a>, Sample<'a>)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = out.encode_descriptor(name, help, None, kind)?;
    for (labels, sample) in samples {
        match labels {
            Labels::Name(name) => sample.encode(metric.encode_family(&[("name", name)])?)?,
            Labels::Two(name, key, value) => {
                sample.encode(metric.encode_family(&[("name", name), (key, value)])?)?
            }
            Labels::Hook(name, hook, result) => sample.encode(metric.encode_family(&[
                ("name", name),
                ("hook", hook),
                ("result", result),
            ])?)?,
            Labels::One(key, value) => sample.encode(metric.encode_family(&[(key, value)])?)?,
        }
    }
    Ok(())
}

/// The label sets this daemon uses, `name` first.
enum Labels<'a> {
    Name(&'a str),
    Two(&'a str, &'static str, &'static str),
    Hook(&'a str, &'static str, &'static str),
    One(&'static str, &'a str),
}

enum Sample<'a> {
    Counter(u64),
    Gauge(i64),
    Time(f64),
    Histogram(&'a Durations),
}

impl Sample<'_> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        match self {
            Sample::Counter(v) => {
                encoder.encode_counter::<prometheus_client::encoding::NoLabelSet, u64, f64>(v, None)
            }
            Sample::Gauge(v) => encoder.encode_gauge(v),
            Sample::Time(v) => encoder.encode_gauge(v),
            Sample::Histogram(durations) => durations.encode(encoder),
        }
    }
}

impl Collector for Exporter {
    fn encode(&self, mut out: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // A copy (a fraction of a millisecond for a thousand certificates): the event
        // loop's updates never wait for an encoding, which takes milliseconds. One
        // block, so a large one goes back to the kernel when freed instead of leaving
        // a thousand small holes in the encoding thread's heap.
        let (certs, config_reloads) = {
            let values = self
                .values
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let certs: Vec<(Arc<str>, Series)> = values
                .certs
                .iter()
                .map(|(name, series)| (Arc::clone(name), Series::clone(series)))
                .collect();
            (certs, values.config_reloads)
        };
        let each = || certs.iter().map(|(name, series)| (&**name, series));
        let time = |pick: fn(&Series) -> Option<f64>| {
            each().filter_map(move |(n, s)| pick(s).map(|v| (Labels::Name(n), Sample::Time(v))))
        };
        let per_cert =
            |pick: fn(&Series) -> Sample<'_>| each().map(move |(n, s)| (Labels::Name(n), pick(s)));
        let by_result = |pick: fn(&Series) -> &[u64; 2]| {
            each().flat_map(move |(n, s)| {
                RESULTS
                    .iter()
                    .zip(pick(s))
                    .map(move |(result, v)| (Labels::Two(n, "result", result), Sample::Counter(*v)))
            })
        };
        family(
            &mut out,
            "certificate_not_after_timestamp_seconds",
            "notAfter of the current certificate, in seconds since the Unix epoch",
            MetricType::Gauge,
            time(|s| s.not_after),
        )?;
        family(
            &mut out,
            "certificate_not_before_timestamp_seconds",
            "notBefore of the current certificate, in seconds since the Unix epoch",
            MetricType::Gauge,
            time(|s| s.not_before),
        )?;
        family(
            &mut out,
            "certificate_enrolled_timestamp_seconds",
            "When the certificate was last enrolled (state.json), in seconds since the Unix epoch; absent if never",
            MetricType::Gauge,
            time(|s| s.enrolled),
        )?;
        family(
            &mut out,
            "certificate_next_renewal_timestamp_seconds",
            "When the next renewal attempt is scheduled, in seconds since the Unix epoch",
            MetricType::Gauge,
            time(|s| s.next_renewal),
        )?;
        family(
            &mut out,
            "certificate_state",
            "1 for the certificate's current state, 0 for the others",
            MetricType::Gauge,
            each().flat_map(|(n, s)| {
                CertState::ALL.iter().map(move |state| {
                    (
                        Labels::Two(n, "state", state.as_str()),
                        Sample::Gauge(i64::from(*state == s.state)),
                    )
                })
            }),
        )?;
        family(
            &mut out,
            "renewals",
            "Renewal attempts by result",
            MetricType::Counter,
            by_result(|s| &s.renewals),
        )?;
        family(
            &mut out,
            "renewal_failures",
            "Failed renewal attempts by reason",
            MetricType::Counter,
            each().flat_map(|(n, s)| {
                FailureReason::ALL
                    .iter()
                    .zip(&s.failures)
                    .map(move |(reason, v)| {
                        (
                            Labels::Two(n, "reason", reason.as_str()),
                            Sample::Counter(*v),
                        )
                    })
            }),
        )?;
        family(
            &mut out,
            "consecutive_failures",
            "Failed renewal attempts since the last success",
            MetricType::Gauge,
            per_cert(|s| Sample::Gauge(s.consecutive_failures)),
        )?;
        family(
            &mut out,
            "renewal_duration_seconds",
            "Duration of whole renewal attempts, key generation included",
            MetricType::Histogram,
            per_cert(|s| Sample::Histogram(&s.duration)),
        )?;
        family(
            &mut out,
            "last_success_timestamp_seconds",
            "When the last renewal succeeded, in seconds since the Unix epoch",
            MetricType::Gauge,
            time(|s| s.last_success),
        )?;
        family(
            &mut out,
            "hook_runs",
            "on_renew hook runs by kind and result",
            MetricType::Counter,
            each().flat_map(|(n, s)| {
                HookKind::ALL
                    .iter()
                    .zip(&s.hook_runs)
                    .flat_map(move |(kind, runs)| {
                        RESULTS.iter().zip(runs).map(move |(result, v)| {
                            (
                                Labels::Hook(n, kind.as_label(), result),
                                Sample::Counter(*v),
                            )
                        })
                    })
            }),
        )?;
        family(
            &mut out,
            "token_enrollments",
            "Enrollments the daemon made with a token from token_file, by result",
            MetricType::Counter,
            by_result(|s| &s.token_enrollments),
        )?;
        family(
            &mut out,
            "hooks_pending",
            "on_renew hooks not yet told about the current certificate",
            MetricType::Gauge,
            per_cert(|s| Sample::Gauge(s.hooks_pending)),
        )?;
        family(
            &mut out,
            "state_unwritten",
            "1 while a record that state.json could not take is kept in memory (disk full, read-only)",
            MetricType::Gauge,
            per_cert(|s| Sample::Gauge(s.state_unwritten)),
        )?;
        family(
            &mut out,
            "config_reloads",
            "Configuration reloads by result",
            MetricType::Counter,
            RESULTS
                .iter()
                .zip(&config_reloads)
                .map(|(result, v)| (Labels::One("result", result), Sample::Counter(*v))),
        )?;
        family(
            &mut out,
            "ca_changes",
            "Renewals that returned a CA bundle different from the previous one",
            MetricType::Counter,
            per_cert(|s| Sample::Counter(s.ca_changes)),
        )?;
        family(
            &mut out,
            "build_info",
            "Always 1; the version label names the running build",
            MetricType::Gauge,
            std::iter::once((Labels::One("version", &self.version), Sample::Gauge(1))),
        )
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod snapshot_tests;

#[cfg(test)]
mod reference_tests;
