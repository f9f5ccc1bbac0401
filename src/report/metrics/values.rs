//! The values behind the metrics: one record per certificate (`Series`, about 350 bytes)
//! and the daemon-wide counters, as the event methods of `Metrics` change them. Does not
//! encode text (see `export`) nor keep encodings (see `cache`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::MetricEncoder;

use crate::hooks::HookKind;
use crate::report::state::{CertState, FailureReason};

/// Upper bounds of `renewal_duration_seconds`: a 50 ms REST round trip up to a slow RSA-4096
/// key generation plus retries inside one attempt.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
];

/// The `result` label of the counters by outcome, in the order of their arrays.
pub(super) const RESULTS: [&str; 2] = ["success", "failure"];

pub(super) fn result_index(ok: bool) -> usize {
    usize::from(!ok)
}

pub(super) fn unix_seconds(t: SystemTime) -> f64 {
    crate::schedule::seconds_between(UNIX_EPOCH, t)
}

/// Everything exported about one certificate. Counters start at zero and the state at
/// `missing` when the certificate is first named, so rates and alerts work from the first
/// scrape; the timestamps exist only once known.
#[derive(Debug, Clone)]
pub(super) struct Series {
    pub(super) state: CertState,
    pub(super) not_before: Option<f64>,
    pub(super) not_after: Option<f64>,
    /// When state.json says the certificate was last enrolled; `None` if never.
    pub(super) enrolled: Option<f64>,
    pub(super) next_renewal: Option<f64>,
    pub(super) last_success: Option<f64>,
    /// By `RESULTS`.
    pub(super) renewals: [u64; 2],
    /// By `FailureReason::ALL`.
    pub(super) failures: [u64; FailureReason::ALL.len()],
    pub(super) consecutive_failures: i64,
    pub(super) duration: Durations,
    /// By `HookKind::ALL`, then `RESULTS`.
    pub(super) hook_runs: [[u64; 2]; HookKind::ALL.len()],
    /// By `RESULTS`.
    pub(super) token_enrollments: [u64; 2],
    pub(super) hooks_pending: i64,
    /// 1 while a record that state.json could not take is kept in memory.
    pub(super) state_unwritten: i64,
    pub(super) ca_changes: u64,
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
pub(super) struct Durations {
    pub(super) sum: f64,
    pub(super) count: u64,
    pub(super) buckets: [u64; DURATION_BUCKETS.len() + 1],
}

impl Durations {
    pub(super) fn observe(&mut self, seconds: f64) {
        self.sum += seconds;
        self.count += 1;
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|upper| seconds <= *upper)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[bucket] += 1;
    }

    pub(super) fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
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
pub(super) struct Values {
    /// Every known certificate, by name: also the readiness snapshot.
    /// Boxed: the map's nodes are half empty after splits, and empty slots of a box
    /// cost 8 bytes instead of a whole record.
    /// Names are shared with the copies a scrape encodes from.
    pub(super) certs: BTreeMap<Arc<str>, Box<Series>>,
    /// By `RESULTS`.
    pub(super) config_reloads: [u64; 2],
}

pub(super) fn reason_index(reason: FailureReason) -> usize {
    FailureReason::ALL
        .iter()
        .position(|r| *r == reason)
        .expect("ALL lists every reason")
}

pub(super) fn hook_index(kind: HookKind) -> usize {
    HookKind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("ALL lists every kind")
}
