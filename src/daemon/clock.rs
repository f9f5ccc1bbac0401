//! Notices when the wall clock jumps: a clock step (an administrator, NTP stepping) or a
//! resume from suspend, without polling. A `CLOCK_REALTIME` timerfd armed with
//! `TFD_TIMER_CANCEL_ON_SET` for a time that never comes is cancelled by the kernel on
//! every discontinuous change of the clock, and on resume (the kernel treats a resume
//! as a clock change for these timers). Certificate tasks sleep on monotonic timers
//! until their exact deadline, so between renewals the daemon does not wake at all;
//! this watcher is what makes them recompute their deadlines from the wall clock when
//! the monotonic clock and the wall clock part by a second or more. Does not schedule
//! anything itself.

use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant, SystemTime};

use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
    timerfd_settime,
};
use tokio::io::unix::AsyncFd;

/// An absolute `CLOCK_REALTIME` time that is never reached (year 10000; the kernel clamps
/// it to its own largest time, in 2262): the timer is only ever cancelled.
const NEVER: i64 = 253_402_300_800;

/// The receiving end of clock-change notices.
pub struct ClockWatcher {
    fd: AsyncFd<OwnedFd>,
}

impl ClockWatcher {
    pub fn new() -> io::Result<ClockWatcher> {
        let fd = timerfd_create(
            TimerfdClockId::Realtime,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        arm(&fd)?;
        // `AsyncFd::new` is deprecated because an arbitrary `AsRawFd` may close or swap
        // its descriptor behind the reactor's back; an `OwnedFd` owned by the `AsyncFd`
        // cannot, and `register` would need `unsafe` for the same guarantee.
        #[allow(deprecated)]
        let fd = AsyncFd::new(fd)?;
        Ok(ClockWatcher { fd })
    }

    /// Completes when the wall clock was stepped or the machine resumed since the last
    /// call (or since `new`), and re-arms for the next change.
    pub async fn changed(&mut self) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut expirations = [0u8; 8];
            match rustix::io::read(guard.get_inner(), &mut expirations) {
                // Cancelled: the clock changed. The timer must be armed again.
                Err(rustix::io::Errno::CANCELED) => {
                    arm(guard.get_inner())?;
                    return Ok(());
                }
                Err(rustix::io::Errno::AGAIN) => guard.clear_ready(),
                // An expiry of a timer set centuries ahead means the clock jumped
                // there: a change as well.
                Ok(_) => {
                    arm(guard.get_inner())?;
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// How often the clocks are compared where the kernel cannot report clock changes.
const POLL_FALLBACK: Duration = Duration::from_secs(3600);

/// Moves of the wall clock smaller than this are not worth recomputing every schedule
/// for: the time-sync agent of a virtual machine may step the clock by milliseconds
/// several times a second. Small steps add up until they reach it.
const MOVE_MIN: Duration = Duration::from_secs(1);

/// However often the clock is stepped, schedules are recomputed at most this often.
const REPORT_MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Reports the wall clock moving against the monotonic clock (which certificate tasks
/// sleep on) by at least `MOVE_MIN`: a step, a run of small steps, or a resume (the
/// monotonic clock stands still while the machine sleeps). Notices come from the
/// timerfd, or, where one cannot be had (another kernel, a sandbox refusing it), from
/// an hourly comparison of the two clocks.
pub struct ClockChanges {
    source: Source,
    /// Both clocks, read together at the last report.
    wall_at: SystemTime,
    mono_at: Instant,
    last_report: Option<Instant>,
    /// A move came too soon after the last report: it is reported at this time.
    report_due: Option<Instant>,
}

enum Source {
    Watched(ClockWatcher),
    Polled(tokio::time::Interval),
}

impl ClockChanges {
    pub fn new() -> ClockChanges {
        let source = match ClockWatcher::new() {
            Ok(watcher) => Source::Watched(watcher),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the wall clock; comparing it with the monotonic clock every hour instead");
                Source::polled()
            }
        };
        ClockChanges {
            source,
            wall_at: SystemTime::now(),
            mono_at: Instant::now(),
            last_report: None,
            report_due: None,
        }
    }

    /// Completes when the wall clock has moved by at least `MOVE_MIN` against the
    /// monotonic clock since the last report, with how far it moved, in seconds
    /// (negative: backwards). Cancel-safe, as a branch of the supervisor's `select!`
    /// must be: a move seen but not yet reported is remembered in `self`.
    pub async fn changed(&mut self) -> f64 {
        loop {
            if let Some(due) = self.report_due {
                tokio::time::sleep_until(due.into()).await;
                self.report_due = None;
            } else {
                self.source.notice().await;
            }
            let moved = self.moved();
            if moved.abs() < MOVE_MIN.as_secs_f64() {
                tracing::debug!(
                    moved_seconds = moved,
                    "the wall clock changed by less than a second; schedules stay"
                );
                continue;
            }
            // A clock stepped again and again is followed at most once a second; the
            // steps in between are read as one.
            if let Some(last) = self.last_report
                && last.elapsed() < REPORT_MIN_INTERVAL
            {
                self.report_due = Some(last + REPORT_MIN_INTERVAL);
                continue;
            }
            self.wall_at = SystemTime::now();
            self.mono_at = Instant::now();
            self.last_report = Some(self.mono_at);
            return moved;
        }
    }

    /// How far the wall clock moved beyond the monotonic clock since the last report.
    fn moved(&self) -> f64 {
        drift(
            self.wall_at,
            self.mono_at,
            SystemTime::now(),
            Instant::now(),
        )
    }
}

/// Seconds the wall clock advanced beyond the monotonic clock between two readings of
/// both.
fn drift(
    wall_then: SystemTime,
    mono_then: Instant,
    wall_now: SystemTime,
    mono_now: Instant,
) -> f64 {
    crate::schedule::seconds_between(wall_then, wall_now)
        - mono_now.duration_since(mono_then).as_secs_f64()
}

impl Source {
    fn polled() -> Source {
        let start = tokio::time::Instant::now() + POLL_FALLBACK;
        Source::Polled(tokio::time::interval_at(start, POLL_FALLBACK))
    }

    /// Completes at the next clock-change notice (or tick, when polling).
    async fn notice(&mut self) {
        match self {
            Source::Watched(watcher) => {
                if let Err(e) = watcher.changed().await {
                    tracing::warn!(error = %e, "the wall-clock watcher failed; comparing the clocks every hour instead");
                    *self = Source::polled();
                }
            }
            Source::Polled(tick) => {
                tick.tick().await;
            }
        }
    }
}

fn arm(fd: &OwnedFd) -> io::Result<()> {
    let never = Itimerspec {
        it_interval: Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: Timespec {
            tv_sec: NEVER,
            tv_nsec: 0,
        },
    };
    timerfd_settime(
        fd,
        TimerfdTimerFlags::ABSTIME | TimerfdTimerFlags::CANCEL_ON_SET,
        &never,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a clock change the watcher stays silent: no wakeup, no busy loop.
    #[tokio::test]
    async fn the_watcher_is_silent_while_the_clock_runs_smoothly() {
        let mut watcher = ClockWatcher::new().expect("a timerfd");
        let quiet = tokio::time::timeout(Duration::from_millis(300), watcher.changed()).await;
        assert!(quiet.is_err(), "a clock change was reported without one");
    }

    #[test]
    fn drift_is_how_far_the_wall_clock_moved_beyond_the_monotonic_clock() {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mono = Instant::now();
        let later = mono + Duration::from_secs(10);
        // Both advanced by 10 s: no move.
        assert_eq!(
            drift(wall, mono, wall + Duration::from_secs(10), later),
            0.0
        );
        // A 2 s step forward, or a resume after 2 s asleep (the monotonic clock stood).
        assert_eq!(
            drift(wall, mono, wall + Duration::from_secs(12), later),
            2.0
        );
        // A step back by more than the time that passed.
        assert_eq!(
            drift(wall, mono, wall - Duration::from_secs(5), later),
            -15.0
        );
    }

    /// The timer is armed for a time that never comes, with cancel-on-set: what makes
    /// the kernel report a clock step or a resume on it.
    #[test]
    fn the_timer_is_armed_far_ahead_and_cancelled_by_clock_changes() {
        let fd = timerfd_create(
            TimerfdClockId::Realtime,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )
        .unwrap();
        arm(&fd).unwrap();
        let armed = rustix::time::timerfd_gettime(&fd).unwrap();
        // Relative time left: centuries.
        assert!(
            armed.it_value.tv_sec > 200 * 365 * 86_400,
            "{}",
            armed.it_value.tv_sec
        );
        let mut buf = [0u8; 8];
        assert_eq!(
            rustix::io::read(&fd, &mut buf),
            Err(rustix::io::Errno::AGAIN)
        );
    }
}
