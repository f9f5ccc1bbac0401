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

/// A number in [0, 1) derived from `seed` alone: a backoff's jitter that is the same each
/// time it is computed from the same facts (see [`jitter_seed`]).
pub fn seeded_unit(seed: u64) -> f64 {
    unit_from_seed(seed)
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
#[path = "schedule_tests.rs"]
mod tests;
