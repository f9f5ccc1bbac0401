//! A fleet on a virtual clock: how the renewal schedule and the retry backoff spread the
//! load of many hosts whose certificates were issued together. Uses the daemon's own
//! `schedule` functions; nothing sleeps, nothing touches the network.
//!
//! Usage: `fleet [HOSTS]` (default 10000). Prints plain-text tables.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, SystemTime};

use kyma_certd::config::RenewPolicy;
use kyma_certd::schedule::{Backoff, jitter_seed, renewal_time};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;
const LIFETIME: Duration = Duration::from_secs(92 * DAY);
const RENEW_AT: f64 = 0.7;
const DEFAULT_JITTER: f64 = 0.05;
/// 2026-01-01T00:00:00Z: the minute in which the whole fleet got its certificates.
const ISSUED: u64 = 1_767_225_600;

struct Host {
    name: String,
    fingerprint: String,
    not_before: SystemTime,
}

fn main() {
    let hosts: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let mut rng = StdRng::seed_from_u64(2026);
    let fleet: Vec<Host> = (0..hosts)
        .map(|i| Host {
            name: format!("node-{i:05}.eu-1.example.net"),
            fingerprint: format!("{:032x}{:032x}", rng.random::<u128>(), rng.random::<u128>()),
            not_before: at(ISSUED) + Duration::from_millis(rng.random_range(0..60_000)),
        })
        .collect();

    println!(
        "fleet: {hosts} hosts, certificates issued within one minute, lifetime 92 d, renew_at 70%"
    );
    println!();
    println!(
        "| jitter | window | hours with renewals | mean per hour | peak hour | peak / mean | peak ÷ mean at 5% | peak minute |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let default_mean = Spread::of(&schedule(&fleet, DEFAULT_JITTER), DEFAULT_JITTER).mean_per_hour;
    let mut default_ratio = 0.0;
    for jitter in [0.0, 0.01, DEFAULT_JITTER, 0.10] {
        let times = schedule(&fleet, jitter);
        let spread = Spread::of(&times, jitter);
        let ratio = spread.peak_hour as f64 / spread.mean_per_hour;
        if jitter == DEFAULT_JITTER {
            default_ratio = ratio;
        }
        println!(
            "| {:.0}% | {} | {} | {:.1} | {} | {:.2} | {:.1} | {} |",
            jitter * 100.0,
            human(spread.window),
            spread.hours_used,
            spread.mean_per_hour,
            spread.peak_hour,
            ratio,
            spread.peak_hour as f64 / default_mean,
            spread.peak_minute,
        );
    }
    println!();
    println!("peak / mean is over the hours of the jitter window (its length rounded up); with");
    println!("jitter off the window is the issuing minute, so the whole fleet renews in one hour,");
    println!("which the column \"peak ÷ mean at 5%\" compares with the default spread.");
    println!();
    println!(
        "Target: with the default jitter the peak hour carries at most 2x the mean hour: {} ({default_ratio:.2}x).",
        if default_ratio <= 2.0 {
            "met"
        } else {
            "MISSED"
        }
    );

    let times = schedule(&fleet, DEFAULT_JITTER);
    let first_hour = times.iter().min().map_or(0, |t| secs(*t) / HOUR);
    let last_hour = times.iter().max().map_or(0, |t| secs(*t) / HOUR);
    let mut per_hour = vec![0usize; (last_hour - first_hour + 1) as usize];
    for t in &times {
        per_hour[(secs(*t) / HOUR - first_hour) as usize] += 1;
    }
    println!();
    println!(
        "renewals per hour with the default jitter (5%), hour 0 = {} h after issue:",
        first_hour - ISSUED / HOUR
    );
    println!("```");
    for (row, chunk) in per_hour.chunks(12).enumerate() {
        let cells: Vec<String> = chunk.iter().map(|c| format!("{c:4}")).collect();
        println!(
            "h{:03}-{:03} {}",
            row * 12,
            row * 12 + chunk.len() - 1,
            cells.join("")
        );
    }
    println!("```");

    let backoff = Backoff::new(Duration::from_secs(30), Duration::from_secs(HOUR))
        .expect("30s..1h are valid bounds");
    println!();
    println!("one-hour connector outage for the whole fleet, retry_min 30s, retry_max 1h:");
    println!();
    println!(
        "| scenario | hosts hit | failed attempts | attempts/min during: mean (peak) | recoveries/min after: mean (peak) | recovered after the outage p50 / p90 / max |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let peak_start = at((first_hour + argmax(&per_hour) as u64) * HOUR);
    let scenarios = [
        (
            "jitter 5%, outage over the peak hour",
            DEFAULT_JITTER,
            peak_start,
        ),
        (
            "jitter off, outage from 10 min before the common minute",
            0.0,
            *schedule(&fleet, 0.0).iter().min().expect("a fleet") - Duration::from_secs(600),
        ),
    ];
    let mut details = Vec::new();
    for (label, jitter, start) in scenarios {
        let outcome = outage(
            &fleet,
            jitter,
            start,
            Duration::from_secs(HOUR),
            backoff,
            &mut rng,
        );
        println!(
            "| {label} | {} | {} | {:.1} ({}) | {:.1} ({}) | {} / {} / {} |",
            outcome.hosts_hit,
            outcome.failed,
            outcome.during_mean,
            outcome.during_peak,
            outcome.after_mean,
            outcome.after_peak,
            human(outcome.recovery[0]),
            human(outcome.recovery[1]),
            human(outcome.recovery[2]),
        );
        details.push((label, outcome.per_ten_minutes));
    }
    for (label, bins) in details {
        println!();
        println!("attempts per 10 minutes from the outage start ({label}):");
        println!("```");
        for (row, chunk) in bins.chunks(6).enumerate() {
            let cells: Vec<String> = chunk.iter().map(|c| format!("{c:6}")).collect();
            println!("+{}h {}", row, cells.join(""));
        }
        println!("```");
    }
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 2 * HOUR {
        format!("{:.1} h", s as f64 / HOUR as f64)
    } else if s >= 120 {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

fn argmax(counts: &[usize]) -> usize {
    counts
        .iter()
        .enumerate()
        .max_by_key(|(_, c)| **c)
        .map_or(0, |(i, _)| i)
}

/// Each host's renewal time, exactly as the daemon computes it on that host.
fn schedule(fleet: &[Host], jitter: f64) -> Vec<SystemTime> {
    fleet
        .iter()
        .map(|h| {
            let seed = jitter_seed(&h.fingerprint, &h.name);
            renewal_time(
                h.not_before,
                h.not_before + LIFETIME,
                RenewPolicy::At(RENEW_AT),
                jitter,
                seed,
            )
        })
        .collect()
}

struct Spread {
    window: Duration,
    hours_used: usize,
    mean_per_hour: f64,
    peak_hour: usize,
    peak_minute: usize,
}

impl Spread {
    fn of(times: &[SystemTime], jitter: f64) -> Spread {
        // The window the schedule aims at: the jitter share of the lifetime plus the
        // issuing minute; its hours are the denominator of the mean.
        let window = LIFETIME.mul_f64(jitter) + Duration::from_secs(60);
        let hours = window.as_secs().div_ceil(HOUR).max(1);
        let count = |unit: u64| {
            let mut bins = std::collections::HashMap::<u64, usize>::new();
            for t in times {
                *bins.entry(secs(*t) / unit).or_default() += 1;
            }
            (bins.len(), bins.values().copied().max().unwrap_or(0))
        };
        let (hours_used, peak_hour) = count(HOUR);
        let (_, peak_minute) = count(60);
        Spread {
            window,
            hours_used,
            mean_per_hour: times.len() as f64 / hours as f64,
            peak_hour,
            peak_minute,
        }
    }
}

struct Outage {
    hosts_hit: usize,
    failed: usize,
    during_mean: f64,
    during_peak: usize,
    after_mean: f64,
    after_peak: usize,
    /// p50, p90 and max of (success time − outage end) over the hosts that were hit.
    recovery: [Duration; 3],
    per_ten_minutes: Vec<usize>,
}

/// Every host attempts at its renewal time; attempts inside the outage fail and are
/// retried after `Backoff::delay`, as the daemon does. Runs until every host succeeded.
fn outage(
    fleet: &[Host],
    jitter: f64,
    start: SystemTime,
    length: Duration,
    backoff: Backoff,
    rng: &mut StdRng,
) -> Outage {
    let end = start + length;
    let times = schedule(fleet, jitter);
    let mut queue: BinaryHeap<Reverse<(SystemTime, usize, u32)>> = times
        .iter()
        .enumerate()
        .map(|(i, t)| Reverse((*t, i, 0)))
        .collect();
    let mut failed = 0;
    let mut hit = vec![false; fleet.len()];
    let mut recovered = Vec::new();
    let mut attempts_during = std::collections::HashMap::<u64, usize>::new();
    let mut attempts_after = std::collections::HashMap::<u64, usize>::new();
    let mut per_ten = Vec::<usize>::new();
    while let Some(Reverse((t, host, failures))) = queue.pop() {
        if t >= start {
            let bin = (t.duration_since(start).map_or(0, |d| d.as_secs()) / 600) as usize;
            if per_ten.len() <= bin {
                per_ten.resize(bin + 1, 0);
            }
            per_ten[bin] += 1;
        }
        if t >= start && t < end {
            *attempts_during.entry(secs(t) / 60).or_default() += 1;
            failed += 1;
            hit[host] = true;
            let failures = failures + 1;
            let not_after = fleet[host].not_before + LIFETIME;
            let delay = backoff.delay(failures, t, not_after, rng.random::<f64>());
            queue.push(Reverse((t + delay, host, failures)));
            continue;
        }
        if hit[host] {
            *attempts_after.entry(secs(t) / 60).or_default() += 1;
            recovered.push(t.duration_since(end).unwrap_or_default());
        }
    }
    // Keep the table to the part that concerns the outage: until the last recovery.
    let last = recovered.iter().max().copied().unwrap_or_default() + length;
    per_ten.truncate((last.as_secs() / 600 + 1) as usize);
    recovered.sort();
    let pick = |q: f64| {
        recovered
            .get(((recovered.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    let minutes_after = recovered.last().map_or(1, |d| d.as_secs() / 60 + 1);
    Outage {
        hosts_hit: hit.iter().filter(|h| **h).count(),
        failed,
        during_mean: failed as f64 / (length.as_secs() / 60) as f64,
        during_peak: attempts_during.values().copied().max().unwrap_or(0),
        after_mean: recovered.len() as f64 / minutes_after as f64,
        after_peak: attempts_after.values().copied().max().unwrap_or(0),
        recovery: [pick(0.5), pick(0.9), pick(1.0)],
        per_ten_minutes: per_ten,
    }
}
