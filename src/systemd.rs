//! Tells systemd about the daemon through `NOTIFY_SOCKET`: ready, status, reloading,
//! stopping, watchdog pings. Every call is a no-op when the variable is unset. Does not
//! decide when to send them: the event loop does.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(states) {
        tracing::warn!(%err, "cannot notify systemd");
    }
}

/// `READY=1`: startup is complete (the first schedule is computed).
pub fn ready() {
    send(&[NotifyState::Ready]);
}

/// `STATUS=`: a one-line summary for `systemctl status`; newlines become spaces so the
/// text cannot add other assignments to the message.
pub fn status(text: &str) {
    send(&[NotifyState::Status(&one_line(text))]);
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// `RELOADING=1` with `MONOTONIC_USEC` (for `Type=notify-reload`): a reload begins; send
/// [`ready`] when it is done.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(err) => {
            tracing::debug!(%err, "cannot read the monotonic clock for RELOADING");
            send(&[NotifyState::Reloading]);
        }
    }
}

/// `STOPPING=1`: shutdown begins.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// `WATCHDOG=1`: the event loop is alive.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// How often to call [`watchdog`]: half of `WATCHDOG_USEC`, when the watchdog is enabled
/// for this process (`WATCHDOG_PID` unset or equal to our pid); `None` otherwise.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .map(|timeout| timeout / 2)
        .filter(|half| !half.is_zero())
}

/// The `STATUS=` summary: `3 certificates, next renewal orders in 41d`, with
/// `, 1 needs re-enrollment` when some are missing, expired or revoked.
pub fn status_line(certs: usize, next: Option<(&str, Duration)>, not_valid: usize) -> String {
    let mut line = match certs {
        0 => "no certificates".to_owned(),
        1 => "1 certificate".to_owned(),
        n => format!("{n} certificates"),
    };
    match next {
        Some((name, wait)) if wait.is_zero() => {
            line.push_str(&format!(", next renewal {name} due now"));
        }
        Some((name, wait)) => {
            line.push_str(&format!(", next renewal {name} in {}", humanize(wait)));
        }
        None if certs > not_valid => line.push_str(", no renewal scheduled"),
        None => {}
    }
    match not_valid {
        0 => {}
        1 => line.push_str(", 1 needs re-enrollment"),
        n => line.push_str(&format!(", {n} need re-enrollment")),
    }
    line
}

/// A short human form of a duration: the largest unit, plus the next one when the first
/// is below 10 (`41d`, `2d 5h`, `5h 12m`, `12h`, `3m 20s`, `45s`).
pub fn humanize(duration: Duration) -> String {
    let secs = duration.as_secs();
    let units = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3600, "h"),
        (secs % 3600 / 60, "m"),
        (secs % 60, "s"),
    ];
    let Some(first) = units.iter().position(|&(value, _)| value > 0) else {
        return "0s".to_owned();
    };
    let (value, unit) = units[first];
    let mut text = format!("{value}{unit}");
    if value < 10
        && let Some(&(next, next_unit)) = units.get(first + 1).filter(|(next, _)| *next > 0)
    {
        text.push_str(&format!(" {next}{next_unit}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3600;
    const DAY: u64 = 86_400;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn humanize_shows_one_unit_or_two_when_the_first_is_small() {
        let cases = [
            (0, "0s"),
            (45, "45s"),
            (60, "1m"),
            (200, "3m 20s"),
            (12 * 60 + 5, "12m"),
            (5 * HOUR + 12 * 60, "5h 12m"),
            (12 * HOUR + 30 * 60, "12h"),
            (2 * DAY, "2d"),
            (2 * DAY + 5 * HOUR + 7, "2d 5h"),
            (41 * DAY + 3 * HOUR, "41d"),
            (3 * DAY + 59, "3d"),
        ];
        for (s, expected) in cases {
            assert_eq!(humanize(secs(s)), expected, "{s} s");
        }
        assert_eq!(humanize(Duration::from_millis(999)), "0s");
    }

    #[test]
    fn status_line_names_the_next_renewal() {
        assert_eq!(
            status_line(3, Some(("orders", secs(41 * DAY + 100))), 0),
            "3 certificates, next renewal orders in 41d"
        );
        assert_eq!(
            status_line(1, Some(("orders", secs(90))), 0),
            "1 certificate, next renewal orders in 1m 30s"
        );
        assert_eq!(
            status_line(2, Some(("edge", Duration::ZERO)), 0),
            "2 certificates, next renewal edge due now"
        );
    }

    #[test]
    fn status_line_mentions_certificates_needing_re_enrollment() {
        assert_eq!(
            status_line(3, Some(("orders", secs(2 * HOUR))), 1),
            "3 certificates, next renewal orders in 2h, 1 needs re-enrollment"
        );
        assert_eq!(
            status_line(2, None, 2),
            "2 certificates, 2 need re-enrollment"
        );
    }

    #[test]
    fn status_line_without_anything_scheduled_says_so() {
        assert_eq!(status_line(0, None, 0), "no certificates");
        assert_eq!(
            status_line(2, None, 0),
            "2 certificates, no renewal scheduled"
        );
    }

    #[test]
    fn a_status_cannot_smuggle_other_assignments() {
        assert_eq!(one_line("ok\nREADY=1\r\nX=2"), "ok READY=1  X=2");
    }
}
