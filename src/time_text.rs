//! Times as logs, messages and hooks show them: RFC 3339 in UTC, to the second. Knows
//! nothing about certificates.

use std::time::{Duration, SystemTime};

/// RFC 3339 UTC, seconds precision. Times outside 1970..=9999 (possible in a hostile
/// certificate) are clamped instead of failing.
pub fn timestamp(time: SystemTime) -> String {
    // 9999-12-31T23:59:59Z
    let latest = SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    let time = time.clamp(SystemTime::UNIX_EPOCH, latest);
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_outside_the_printable_range_are_clamped_not_panicking() {
        let before_epoch = SystemTime::UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(timestamp(before_epoch), "1970-01-01T00:00:00Z");
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(timestamp(far), "9999-12-31T23:59:59Z");
    }
}
