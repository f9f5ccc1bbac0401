//! When to renew a certificate, how long to back off after a failure, and how long one
//! sleep may last (DESIGN.md section 5). Pure functions of their arguments: nothing here
//! reads the clock, the disk or the network.

use std::time::{Duration, SystemTime};

use aws_lc_rs::digest;

/// When, within a certificate's lifetime, to renew it (DESIGN.md section 5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RenewPolicy {
    /// Fraction of the lifetime elapsed, in (0, 1).
    At(f64),
    /// Fixed time before notAfter.
    Before(Duration),
}

/// The longest single sleep. Deadlines are recomputed from the wall clock whenever it
/// steps or the machine resumes (the daemon's clock watcher), so a sleep may last until
/// its deadline; the bound only keeps far deadlines inside what a timer can hold (a
/// 92-day certificate renews well within it).
pub const MAX_SLEEP: Duration = Duration::from_secs(180 * 86_400);

/// The shortest wait between two attempts, whatever the configuration or the time left.
pub const MIN_RETRY_DELAY: Duration = Duration::from_secs(1);

/// A retry never waits longer than this fraction of the time left before notAfter, so the
/// attempts get denser as expiry nears (about ten per factor-of-e of remaining time).
pub const MAX_WAIT_FRACTION_OF_REMAINING: f64 = 0.1;

/// A renewal is never scheduled before this fraction of the lifetime has elapsed, so a
/// `renew_before` longer than the issued lifetime cannot turn into a renewal storm.
pub const MIN_ELAPSED_FRACTION: f64 = 0.1;

/// Where a certificate renews when the configured window (with its whole jitter) would
/// leave less than [`MIN_ELAPSED_FRACTION`] of the lifetime: `renew_before = "2h"` on a
/// 1-hour certificate. The default policy's point, so a clamped certificate behaves like
/// one without a renewal setting.
pub const CLAMPED_RENEW_AT: f64 = 0.7;

/// The jitter a clamped window keeps at most (a fraction of the lifetime).
pub const CLAMPED_MAX_JITTER: f64 = 0.2;

/// Errors of this layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("retry_min must be greater than zero")]
    ZeroRetryMin,
    #[error("retry_min ({min:?}) must not exceed retry_max ({max:?})")]
    RetryMinAboveMax { min: Duration, max: Duration },
}

/// When to start renewing a certificate valid from `not_before` to `not_after`.
///
/// With lifetime L = notAfter − notBefore: `At(r)` gives notBefore + r×L − j and
/// `Before(d)` gives notAfter − d − j, where j is uniform in [0, `jitter`×L] and derived
/// from `seed` alone (see [`jitter_seed`]). The point before jitter is never earlier than
/// [`MIN_ELAPSED_FRACTION`] of the lifetime; the result is never before notBefore and
/// always strictly before notAfter. A degenerate certificate (notAfter ≤ notBefore)
/// renews at the earlier of the two.
pub fn renewal_time(
    not_before: SystemTime,
    not_after: SystemTime,
    policy: RenewPolicy,
    jitter: f64,
    seed: u64,
) -> SystemTime {
    renewal_time_with(not_before, not_after, policy, jitter, unit_from_seed(seed))
}

/// The earliest [`renewal_time`] any host can compute for this certificate: the whole
/// `jitter` subtracted. Verification refuses a certificate that is already past it.
pub fn earliest_renewal_time(
    not_before: SystemTime,
    not_after: SystemTime,
    policy: RenewPolicy,
    jitter: f64,
) -> SystemTime {
    renewal_time_with(not_before, not_after, policy, jitter, 1.0)
}

/// Whether a `renew_before` window is too long for a certificate of this `lifetime`: it
/// would renew before [`MIN_ELAPSED_FRACTION`] of it has passed (a guide for 92-day
/// certificates applied to 1-hour ones). Such a window is clamped to [`CLAMPED_RENEW_AT`]:
/// the certificate is kept and renewed at a sane point, never thrown away for its window.
/// (`renew_at` is a fraction of the lifetime, and the configuration keeps it above the
/// jitter.)
pub fn window_is_clamped(lifetime: Duration, policy: RenewPolicy) -> bool {
    match policy {
        RenewPolicy::Before(before) => {
            !lifetime.is_zero()
                && lifetime.saturating_sub(before) < lifetime.mul_f64(MIN_ELAPSED_FRACTION)
        }
        RenewPolicy::At(_) => false,
    }
}

/// [`renewal_time`] with the jitter's share `unit` in [0, 1] given directly.
fn renewal_time_with(
    not_before: SystemTime,
    not_after: SystemTime,
    policy: RenewPolicy,
    jitter: f64,
    unit: f64,
) -> SystemTime {
    let Ok(lifetime) = not_after.duration_since(not_before) else {
        return not_after;
    };
    if lifetime.is_zero() {
        return not_before;
    }
    let (policy, jitter) = if window_is_clamped(lifetime, policy) {
        (
            RenewPolicy::At(CLAMPED_RENEW_AT),
            jitter.min(CLAMPED_MAX_JITTER),
        )
    } else {
        (policy, jitter)
    };
    let fraction = |x: f64| lifetime.mul_f64(clamp_unit(x));
    let base = match policy {
        RenewPolicy::At(ratio) => fraction(ratio),
        RenewPolicy::Before(before) => lifetime.saturating_sub(before),
    };
    // The floor holds after the jitter too: a certificate issued now is never due at once.
    let offset = base
        .saturating_sub(fraction(clamp_unit(jitter) * unit))
        .max(fraction(MIN_ELAPSED_FRACTION));
    let latest = not_after
        .checked_sub(Duration::from_nanos(1))
        .unwrap_or(not_before);
    not_before
        .checked_add(offset)
        .map_or(latest, |t| t.min(latest))
        .max(not_before)
}

/// A retry, probe or hook deadline as it may be kept: never further than `longest` (the
/// longest wait the backoff ever asks for) from `now`. A deadline computed under a clock
/// that was days ahead, then corrected, would otherwise keep the daemon from looking at
/// the certificate for those days; brought back, it is met within `longest`.
pub fn bounded_deadline(deadline: SystemTime, now: SystemTime, longest: Duration) -> SystemTime {
    now.checked_add(longest)
        .map_or(deadline, |latest| deadline.min(latest))
}

/// The jitter seed of one certificate on one host: the first 8 bytes of
/// SHA-256(len ‖ fingerprint ‖ host). Stable across restarts; different across a fleet.
/// `fingerprint` may be the raw digest or its hex form, as long as the caller is consistent.
pub fn jitter_seed(fingerprint: impl AsRef<[u8]>, host: &str) -> u64 {
    let fingerprint = fingerprint.as_ref();
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&(fingerprint.len() as u64).to_be_bytes());
    ctx.update(fingerprint);
    ctx.update(host.as_bytes());
    let hash = ctx.finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_ref()[..8]);
    u64::from_be_bytes(first)
}

/// This machine's host name (`uname -n`), for [`jitter_seed`].
pub fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Exponential backoff between failed renewal attempts (`retry_min` .. `retry_max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
}

impl Backoff {
    /// Requires 0 < `min` ≤ `max`.
    pub fn new(min: Duration, max: Duration) -> Result<Self, ScheduleError> {
        if min.is_zero() {
            return Err(ScheduleError::ZeroRetryMin);
        }
        if min > max {
            return Err(ScheduleError::RetryMinAboveMax { min, max });
        }
        Ok(Self { min, max })
    }

    pub fn min(&self) -> Duration {
        self.min
    }

    pub fn max(&self) -> Duration {
        self.max
    }

    /// The ceiling after `consecutive_failures` failures: `min` × 2^n, at most `max`.
    /// Already the first failure spreads retries over [`min`, 2 × `min`]: hosts that
    /// failed in the same second (a connector outage) do not all retry in the same second.
    pub fn ceiling(&self, consecutive_failures: u32) -> Duration {
        let doublings = consecutive_failures;
        if doublings >= 32 {
            return self.max;
        }
        self.min
            .checked_mul(1u32 << doublings)
            .map_or(self.max, |d| d.min(self.max))
    }

    /// How long to wait before the next attempt, after `consecutive_failures` failures.
    ///
    /// Uniform in [`min`, ceiling] (jittered, so a fleet that failed together does not retry
    /// together), where the ceiling doubles per failure up to `max` and is further capped at
    /// [`MAX_WAIT_FRACTION_OF_REMAINING`] of the time left before `not_after`. Never less
    /// than [`MIN_RETRY_DELAY`], also when the certificate has already expired.
    /// `unit_random` is a random number in [0, 1); other values are clamped.
    /// When a certificate revoked in the connector's words is tried again: `max` after
    /// `since`, but no later than its notAfter, so that a lifted revocation heals while
    /// the certificate can still renew, and an expiry is noticed when it happens.
    pub fn revocation_probe(&self, since: SystemTime, not_after: SystemTime) -> SystemTime {
        since
            .checked_add(self.max)
            .map_or(not_after, |at| at.min(not_after))
    }

    pub fn delay(
        &self,
        consecutive_failures: u32,
        now: SystemTime,
        not_after: SystemTime,
        unit_random: f64,
    ) -> Duration {
        let remaining = not_after.duration_since(now).unwrap_or(Duration::ZERO);
        let expiry_cap = remaining.mul_f64(MAX_WAIT_FRACTION_OF_REMAINING);
        let hi = self.ceiling(consecutive_failures).min(expiry_cap);
        let lo = self.min.min(hi);
        let u = clamp_unit(unit_random);
        let delay = lo + (hi - lo).mul_f64(u);
        delay.max(MIN_RETRY_DELAY)
    }
}

/// How long to sleep now to wake at `deadline`: at most [`MAX_SLEEP`], zero when past.
pub fn next_wakeup(now: SystemTime, deadline: SystemTime) -> Duration {
    deadline
        .duration_since(now)
        .unwrap_or(Duration::ZERO)
        .min(MAX_SLEEP)
}

/// Seconds from `from` to `to`, negative when `to` is earlier.
pub fn seconds_between(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(ahead) => ahead.as_secs_f64(),
        Err(behind) => -behind.duration().as_secs_f64(),
    }
}

/// Clamps to [0, 1]; NaN becomes 0.
fn clamp_unit(x: f64) -> f64 {
    if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) }
}

/// Maps a seed to [0, 1): splitmix64 scrambles it first, so neighbouring seeds spread.
fn unit_from_seed(seed: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_revoked_certificate_is_probed_every_retry_max_until_it_expires() {
        let backoff = Backoff::new(Duration::from_secs(30), Duration::from_secs(3600)).unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let far = now + Duration::from_secs(86_400);
        assert_eq!(
            backoff.revocation_probe(now, far),
            now + Duration::from_secs(3600)
        );
        let soon = now + Duration::from_secs(600);
        assert_eq!(backoff.revocation_probe(now, soon), soon);
    }

    use super::*;
    use proptest::prelude::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// A 90-day certificate issued at a realistic time.
    fn ninety_days() -> (SystemTime, SystemTime) {
        let nb = t(1_750_000_000);
        (nb, nb + 90 * DAY)
    }

    #[test]
    fn renew_at_seventy_percent_without_jitter_is_exactly_seventy_percent_in() {
        let (nb, na) = ninety_days();
        let at = renewal_time(nb, na, RenewPolicy::At(0.7), 0.0, 42);
        assert_eq!(at, nb + 63 * DAY);
    }

    #[test]
    fn renew_before_thirty_days_without_jitter_is_thirty_days_before_expiry() {
        let (nb, na) = ninety_days();
        let at = renewal_time(nb, na, RenewPolicy::Before(30 * DAY), 0.0, 42);
        assert_eq!(at, na - 30 * DAY);
    }

    #[test]
    fn renew_before_longer_than_the_lifetime_is_clamped_to_seventy_percent() {
        let (nb, na) = ninety_days();
        // Clamped to 70% of the lifetime, and its jitter to at most 20% of it.
        let at = renewal_time(nb, na, RenewPolicy::Before(365 * DAY), 0.0, 42);
        assert_eq!(at, nb + 63 * DAY);
        let with_jitter = renewal_time(nb, na, RenewPolicy::Before(365 * DAY), 0.5, 42);
        assert!(with_jitter >= nb + 45 * DAY && with_jitter <= at);
        assert!(window_is_clamped(90 * DAY, RenewPolicy::Before(82 * DAY)));
        assert!(!window_is_clamped(90 * DAY, RenewPolicy::Before(80 * DAY)));
        // A window that leaves more than the floor keeps it, the jitter included.
        let at = renewal_time(nb, na, RenewPolicy::Before(80 * DAY), 0.1, u64::MAX);
        assert!(at >= nb + 9 * DAY && at <= nb + 10 * DAY, "{at:?}");
    }

    #[test]
    fn renewal_time_of_a_degenerate_certificate_is_its_earliest_bound() {
        let (nb, na) = ninety_days();
        assert_eq!(renewal_time(nb, nb, RenewPolicy::At(0.7), 0.05, 1), nb);
        assert_eq!(renewal_time(na, nb, RenewPolicy::At(0.7), 0.05, 1), nb);
    }

    #[test]
    fn renewal_time_survives_nan_inputs() {
        let (nb, na) = ninety_days();
        let at = renewal_time(nb, na, RenewPolicy::At(f64::NAN), f64::NAN, 1);
        assert!(at >= nb && at < na);
    }

    #[test]
    fn a_one_second_certificate_still_renews_strictly_before_expiry() {
        let nb = t(1_750_000_000);
        let na = nb + Duration::from_secs(1);
        let at = renewal_time(nb, na, RenewPolicy::Before(Duration::ZERO), 0.0, 1);
        assert!(at < na);
        assert!(at >= nb);
    }

    #[test]
    fn jitter_seed_is_stable_and_depends_on_both_fingerprint_and_host() {
        let a = jitter_seed("ab12", "node-1");
        assert_eq!(a, jitter_seed("ab12", "node-1"));
        assert_eq!(a, jitter_seed(b"ab12".as_slice(), "node-1"));
        assert_ne!(a, jitter_seed("ab12", "node-2"));
        assert_ne!(a, jitter_seed("ab13", "node-1"));
        // The length prefix keeps the boundary between the two inputs.
        assert_ne!(jitter_seed("ab", "12node"), jitter_seed("ab12", "node"));
    }

    #[test]
    fn host_name_is_not_empty() {
        assert!(!host_name().is_empty());
    }

    #[test]
    fn backoff_rejects_zero_minimum_and_minimum_above_maximum() {
        assert_eq!(
            Backoff::new(Duration::ZERO, DAY),
            Err(ScheduleError::ZeroRetryMin)
        );
        assert!(matches!(
            Backoff::new(DAY, Duration::from_secs(1)),
            Err(ScheduleError::RetryMinAboveMax { .. })
        ));
        assert!(Backoff::new(DAY, DAY).is_ok());
    }

    #[test]
    fn backoff_ceiling_doubles_per_failure_up_to_the_maximum() {
        let b = Backoff::new(Duration::from_secs(30), Duration::from_secs(3600)).unwrap();
        let ceilings: Vec<u64> = (0..10).map(|n| b.ceiling(n).as_secs()).collect();
        assert_eq!(
            ceilings,
            [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
        );
        assert_eq!(b.ceiling(u32::MAX), b.max());
    }

    #[test]
    fn backoff_far_from_expiry_spans_minimum_to_ceiling() {
        let b = Backoff::new(Duration::from_secs(30), Duration::from_secs(3600)).unwrap();
        let (now, na) = ninety_days();
        assert_eq!(b.delay(4, now, na, 0.0), Duration::from_secs(30));
        assert_eq!(b.delay(4, now, na, 1.0), Duration::from_secs(480));
        assert_eq!(b.delay(4, now, na, 0.5), Duration::from_secs(255));
        // The first retry is spread too: a fleet that failed together retries apart.
        assert_eq!(b.delay(1, now, na, 1.0), Duration::from_secs(60));
    }

    #[test]
    fn backoff_near_expiry_waits_at_most_a_tenth_of_the_time_left() {
        let b = Backoff::new(Duration::from_secs(30), Duration::from_secs(3600)).unwrap();
        let now = t(1_750_000_000);
        let na = now + Duration::from_secs(600);
        assert_eq!(b.delay(20, now, na, 1.0), Duration::from_secs(60));
        // Below retry_min the cap still wins: 10 s left gives a 1 s wait.
        let na = now + Duration::from_secs(10);
        assert_eq!(b.delay(20, now, na, 1.0), Duration::from_secs(1));
    }

    #[test]
    fn backoff_never_goes_below_one_second_even_when_expired_or_configured_lower() {
        let b = Backoff::new(Duration::from_millis(10), Duration::from_millis(50)).unwrap();
        let now = t(1_750_000_000);
        assert_eq!(b.delay(3, now, now + DAY, 1.0), MIN_RETRY_DELAY);
        let b = Backoff::new(Duration::from_secs(30), Duration::from_secs(3600)).unwrap();
        assert_eq!(b.delay(3, now, now - DAY, 0.9), MIN_RETRY_DELAY);
        assert_eq!(b.delay(3, now, now, f64::NAN), MIN_RETRY_DELAY);
    }

    #[test]
    fn next_wakeup_is_the_time_left_capped_at_max_sleep_and_zero_when_past() {
        let now = t(1_750_000_000);
        assert_eq!(
            next_wakeup(now, now + Duration::from_secs(90)),
            Duration::from_secs(90)
        );
        assert_eq!(next_wakeup(now, now + 40 * DAY), 40 * DAY);
        assert_eq!(next_wakeup(now, now + 400 * DAY), MAX_SLEEP);
        assert_eq!(
            next_wakeup(now, now - Duration::from_secs(5)),
            Duration::ZERO
        );
        assert_eq!(next_wakeup(now, now), Duration::ZERO);
    }

    #[test]
    fn different_seeds_spread_over_the_jitter_window() {
        let (nb, na) = ninety_days();
        let base = renewal_time(nb, na, RenewPolicy::At(0.7), 0.0, 0);
        let window = (90 * DAY).mul_f64(0.1);
        let offsets: Vec<f64> = (0..1000u64)
            .map(|seed| {
                let at = renewal_time(nb, na, RenewPolicy::At(0.7), 0.1, seed);
                base.duration_since(at).unwrap().as_secs_f64() / window.as_secs_f64()
            })
            .collect();
        // Every tenth of the window is hit, and the mean is near the middle.
        for decile in 0..10 {
            let lo = f64::from(decile) / 10.0;
            assert!(
                offsets.iter().any(|&o| o >= lo && o < lo + 0.1),
                "no seed landed in decile {decile}"
            );
        }
        let mean = offsets.iter().sum::<f64>() / offsets.len() as f64;
        assert!((0.45..0.55).contains(&mean), "mean offset {mean}");
    }

    fn policy() -> impl Strategy<Value = RenewPolicy> {
        prop_oneof![
            (0.0001f64..0.9999).prop_map(RenewPolicy::At),
            (0u64..400 * 86_400).prop_map(|s| RenewPolicy::Before(Duration::from_secs(s))),
        ]
    }

    #[test]
    fn a_deadline_set_under_a_clock_days_ahead_is_brought_back_after_the_correction() {
        let now = t(1_750_000_000);
        let max = Duration::from_secs(3600);
        // Computed while the clock said "three days later": three days and an hour away.
        let set_ahead = now + 3 * DAY + max;
        assert_eq!(bounded_deadline(set_ahead, now, max), now + max);
        // A deadline within reach, or already past, is kept.
        assert_eq!(bounded_deadline(now + max / 2, now, max), now + max / 2);
        assert_eq!(bounded_deadline(now - DAY, now, max), now - DAY);
    }

    proptest! {
        #[test]
        fn renewal_time_lies_in_the_validity_window(
            start in 0u64..4_000_000_000,
            life in 1u64..(800 * 86_400),
            policy in policy(),
            jitter in 0.0f64..1.0,
            seed in any::<u64>(),
        ) {
            let nb = t(start);
            let na = nb + Duration::from_secs(life);
            let at = renewal_time(nb, na, policy, jitter, seed);
            prop_assert!(at >= nb);
            prop_assert!(at < na);
        }

        #[test]
        fn renewal_time_is_monotone_in_renew_at(
            life in 1u64..(800 * 86_400),
            a in 0.0001f64..0.9999,
            b in 0.0001f64..0.9999,
            jitter in 0.0f64..0.5,
            seed in any::<u64>(),
        ) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let nb = t(1_750_000_000);
            let na = nb + Duration::from_secs(life);
            prop_assert!(
                renewal_time(nb, na, RenewPolicy::At(lo), jitter, seed)
                    <= renewal_time(nb, na, RenewPolicy::At(hi), jitter, seed)
            );
        }

        #[test]
        fn jitter_moves_the_time_earlier_by_at_most_its_share_of_the_lifetime(
            life in 60u64..(800 * 86_400),
            policy in policy(),
            jitter in 0.0f64..0.5,
            seed in any::<u64>(),
        ) {
            let nb = t(1_750_000_000);
            let na = nb + Duration::from_secs(life);
            let plain = renewal_time(nb, na, policy, 0.0, seed);
            let jittered = renewal_time(nb, na, policy, jitter, seed);
            prop_assert!(jittered <= plain);
            let shift = plain.duration_since(jittered).unwrap();
            // One microsecond of slack for float rounding.
            let window = Duration::from_secs(life).mul_f64(jitter) + Duration::from_micros(1);
            prop_assert!(shift <= window, "shift {shift:?} > window {window:?}");
            prop_assert_eq!(jittered, renewal_time(nb, na, policy, jitter, seed));
        }

        #[test]
        fn backoff_stays_within_its_bounds_and_the_expiry_cap(
            min_ms in 1u64..120_000,
            extra_ms in 0u64..7_200_000,
            failures in 0u32..100,
            remaining in 0u64..(30 * 86_400),
            u in 0.0f64..1.0,
        ) {
            let min = Duration::from_millis(min_ms);
            let b = Backoff::new(min, min + Duration::from_millis(extra_ms)).unwrap();
            let now = t(1_750_000_000);
            let na = now + Duration::from_secs(remaining);
            let d = b.delay(failures, now, na, u);
            prop_assert!(d >= MIN_RETRY_DELAY);
            prop_assert!(d <= b.max().max(MIN_RETRY_DELAY));
            let cap = Duration::from_secs(remaining).mul_f64(MAX_WAIT_FRACTION_OF_REMAINING);
            prop_assert!(d <= cap.max(MIN_RETRY_DELAY));
            prop_assert!(d >= min.min(cap).max(MIN_RETRY_DELAY));
        }

        #[test]
        fn backoff_does_not_shrink_as_failures_grow(
            failures in 0u32..60,
            u in 0.0f64..1.0,
        ) {
            let b = Backoff::new(Duration::from_secs(30), Duration::from_secs(3600)).unwrap();
            let (now, na) = ninety_days();
            prop_assert!(b.delay(failures, now, na, u) <= b.delay(failures + 1, now, na, u));
        }

        #[test]
        fn backoff_does_not_grow_as_expiry_nears(
            remaining in 0u64..(2 * 86_400),
            closer in 0u64..(2 * 86_400),
            u in 0.0f64..1.0,
        ) {
            let b = Backoff::new(Duration::from_secs(30), Duration::from_secs(3600)).unwrap();
            let now = t(1_750_000_000);
            let far = b.delay(8, now, now + Duration::from_secs(remaining), u);
            let near = b.delay(8, now, now + Duration::from_secs(remaining.saturating_sub(closer)), u);
            prop_assert!(near <= far);
        }
    }
}
