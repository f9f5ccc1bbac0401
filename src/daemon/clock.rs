//! Notices when the wall clock jumps: a clock step (an administrator, NTP stepping) or a
//! resume from suspend, without polling. A `CLOCK_REALTIME` timerfd armed with
//! `TFD_TIMER_CANCEL_ON_SET` for a time that never comes is cancelled by the kernel on
//! every discontinuous change of the clock, and on resume (the kernel treats a resume
//! as a clock change for these timers). Certificate tasks sleep on monotonic timers
//! until their exact deadline, so between renewals the daemon does not wake at all;
//! this watcher is what makes them recompute their deadlines from the wall clock when
//! the monotonic clock and the wall clock part. Does not schedule anything itself.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

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

/// How often deadlines are recomputed where the kernel cannot report clock changes.
const POLL_FALLBACK: Duration = Duration::from_secs(3600);

/// Clock-change notices for the supervisor: from the timerfd, or, where one cannot be
/// had (another kernel, a sandbox refusing it), from an hourly tick as before.
pub enum ClockChanges {
    Watched(ClockWatcher),
    Polled(tokio::time::Interval),
}

impl ClockChanges {
    pub fn new() -> ClockChanges {
        match ClockWatcher::new() {
            Ok(watcher) => ClockChanges::Watched(watcher),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the wall clock; recomputing schedules every hour instead");
                ClockChanges::polled()
            }
        }
    }

    fn polled() -> ClockChanges {
        let start = tokio::time::Instant::now() + POLL_FALLBACK;
        ClockChanges::Polled(tokio::time::interval_at(start, POLL_FALLBACK))
    }

    /// Completes at the next clock change (or tick, when polling).
    pub async fn changed(&mut self) {
        match self {
            ClockChanges::Watched(watcher) => {
                if let Err(e) = watcher.changed().await {
                    tracing::warn!(error = %e, "the wall-clock watcher failed; recomputing schedules every hour instead");
                    *self = ClockChanges::polled();
                }
            }
            ClockChanges::Polled(tick) => {
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
