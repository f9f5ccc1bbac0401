//! Polling with deadlines: tests wait for what a separate process does, never sleep a
//! fixed time and hope.

use std::time::{Duration, Instant};

/// How often a condition is probed.
const PROBE_EVERY: Duration = Duration::from_millis(25);

/// Probes until `probe` yields a value, or `None` once `timeout` has passed.
pub fn try_wait_for<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(PROBE_EVERY);
    }
}

/// Probes until `probe` yields a value; fails the test naming `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, probe: impl FnMut() -> Option<T>) -> T {
    try_wait_for(timeout, probe)
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Whether `condition` came to hold within `timeout`.
pub fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    try_wait_for(timeout, || condition().then_some(())).is_some()
}
