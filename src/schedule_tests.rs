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
