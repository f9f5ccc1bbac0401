//! Writes the values out as Prometheus metric families at each scrape, in the order
//! DESIGN.md lists them, certificates sorted by name. Does not change values nor keep the
//! text it writes (see `cache`).

use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder};
use prometheus_client::metrics::MetricType;

use super::values::{Durations, RESULTS, Series, Values};
use crate::hooks::HookKind;
use crate::report::state::{CertState, FailureReason};

/// Writes the values out as metric families at each scrape, in the order DESIGN.md lists
/// them, certificates sorted by name.
#[derive(Debug)]
pub(super) struct Exporter {
    pub(super) values: Arc<Mutex<Values>>,
    pub(super) version: String,
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
