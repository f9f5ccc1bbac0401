//! The wall clock that renewal decisions read. In production it is the system clock;
//! a test may shift it by days ahead or behind, and step it at will, without touching
//! the machine's clock (which needs root and disturbs everything else running). Does
//! not sleep: sleeps are monotonic, and a step only tells the daemon to decide again.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

/// A handle on the wall clock; cheap to clone (one pointer).
#[derive(Clone, Default)]
pub struct Clock {
    shift: Option<Arc<Shift>>,
}

#[derive(Default)]
struct Shift {
    /// How far this clock is from the system clock, in seconds (negative: behind).
    seconds: AtomicI64,
    stepped: Notify,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that starts at the system clock and moves only by [`Clock::step`].
    pub fn shifted() -> Clock {
        Clock {
            shift: Some(Arc::default()),
        }
    }

    pub fn now(&self) -> SystemTime {
        let now = SystemTime::now();
        let Some(shift) = &self.shift else {
            return now;
        };
        let seconds = shift.seconds.load(Ordering::SeqCst);
        let by = Duration::from_secs(seconds.unsigned_abs());
        if seconds >= 0 {
            now.checked_add(by).unwrap_or(now)
        } else {
            now.checked_sub(by).unwrap_or(SystemTime::UNIX_EPOCH)
        }
    }

    /// Moves a shifted clock by `seconds` (negative: back) and wakes [`Clock::stepped`],
    /// as the kernel's clock-change notice does for the system clock. No effect on the
    /// system clock.
    pub fn step(&self, seconds: i64) {
        if let Some(shift) = &self.shift {
            shift.seconds.fetch_add(seconds, Ordering::SeqCst);
            shift.stepped.notify_one();
        }
    }

    /// Completes after the next [`Clock::step`] of a shifted clock; never for the system
    /// clock, whose steps the kernel reports (see `daemon::clock`).
    pub async fn stepped(&self) {
        match &self.shift {
            Some(shift) => shift.stepped.notified().await,
            None => std::future::pending().await,
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.shift {
            None => f.write_str("Clock::system"),
            Some(shift) => write!(
                f,
                "Clock::shifted({}s)",
                shift.seconds.load(Ordering::SeqCst)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shifted_clock_moves_by_its_steps_and_the_system_clock_does_not() {
        let clock = Clock::shifted();
        clock.step(3 * 86_400);
        let ahead = clock.now().duration_since(SystemTime::now()).unwrap();
        assert!(ahead > Duration::from_secs(3 * 86_400 - 60), "{ahead:?}");
        clock.step(-6 * 86_400);
        let behind = SystemTime::now().duration_since(clock.now()).unwrap();
        assert!(behind > Duration::from_secs(3 * 86_400 - 60), "{behind:?}");
        let system = Clock::system();
        system.step(86_400);
        let drift = seconds_apart(system.now(), SystemTime::now());
        assert!(drift < 60, "{drift}");
    }

    fn seconds_apart(a: SystemTime, b: SystemTime) -> u64 {
        a.duration_since(b)
            .or_else(|_| b.duration_since(a))
            .unwrap()
            .as_secs()
    }
}
