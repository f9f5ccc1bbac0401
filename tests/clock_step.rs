//! Steps of the wall clock reach every certificate's task without polling: the kernel
//! reports them on a cancel-on-set timer, and the daemon recomputes its sleeps once the
//! clock moved a second or more. Smaller steps (a virtual machine's time agent steps the
//! clock by milliseconds, several times a second) are let pass.
//!
//! Setting the clock needs CAP_SYS_TIME (root); without it the test says so and passes.
//! It is a test binary of its own, so that no other test runs while the clock is two
//! seconds ahead (for well under a second), and it steps the clock back by as much.

mod support;

use std::time::Duration;

use rustix::time::{ClockId, Timespec, clock_gettime, clock_settime};
use support::world::World;

/// Moves the wall clock by `seconds`; false if this process may not.
fn step_clock(seconds: i64) -> bool {
    let now = clock_gettime(ClockId::Realtime);
    let to = Timespec {
        tv_sec: now.tv_sec + seconds,
        tv_nsec: now.tv_nsec,
    };
    match clock_settime(ClockId::Realtime, to) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("cannot set the clock here ({e}): the clock-step path is not exercised");
            false
        }
    }
}

#[test]
fn a_wall_clock_step_of_seconds_makes_the_daemon_recompute_and_a_tiny_one_does_not() {
    let world = World::new(Duration::from_secs(3600));
    world.write_config(&[world.compass("orders"), world.kyma_rest("billing")]);
    world.enroll("orders");
    world.enroll("billing");
    let daemon = world.daemon().ready();

    // A step of microseconds (to the current time): noticed, too small to matter.
    if !step_clock(0) {
        return;
    }
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        daemon.lines_with("wall clock moved").is_empty(),
        "a step of microseconds made the daemon recompute:\n{}",
        daemon.log_text()
    );

    // Two seconds ahead, and back as soon as the daemon said so.
    assert!(step_clock(2));
    let ahead = daemon.wait_for_message("wall clock moved", Duration::from_secs(5));
    assert!(step_clock(-2));
    assert!(ahead.message().contains("+2.0 s"), "{}", ahead.text);
    // The step back is reported too, at most a second after the first.
    let back = daemon.wait_for_message("wall clock moved -2.0 s", Duration::from_secs(5));
    assert!(
        back.seen.duration_since(ahead.seen) >= Duration::from_millis(900),
        "two reports within a second"
    );

    // Each task measured its sleep again and found nothing due: no renewal, no failure.
    std::thread::sleep(Duration::from_millis(500));
    assert!(world.sim.renewals().is_empty());
    assert!(daemon.lines_with("renewal failed").is_empty());
    assert_eq!(daemon.lines_with("wall clock moved").len(), 2);
}
