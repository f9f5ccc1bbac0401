//! The daemon through wall-clock steps of days, forward and back, with an injected clock
//! (the machine's clock is not touched): a decision made under a wrong clock never
//! outlives its correction, and a valid certificate is never left unrenewed.
//!
//! The daemon runs in this process against the world's simulator; its decisions read a
//! clock shifted by `Clock::step`, which also wakes it as the kernel's clock-change
//! notice does. TLS and the simulator go by the real clock, as the connector would.

mod support;

use std::time::{Duration, Instant, SystemTime};

use kyma_certd::clock::Clock;
use support::in_process::{InProcessDaemon, eventually};
use support::world::World;

const DAY: i64 = 86_400;
/// Certificates live 24 s and renew half-way, at 12 s.
const VALIDITY: Duration = Duration::from_secs(24);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_steps_of_days_either_way_never_leave_a_valid_certificate_unrenewed() {
    let mut world = World::new(VALIDITY);
    world.settings.defaults.set("renew_at = \"50%\"");
    world.settings.defaults.set("jitter = \"0%\"");
    world.write_config(&[world.compass("orders")]);
    world.enroll("orders");
    let enrolled = SystemTime::now();
    let renewals = || world.sim.renewals().len();

    // The daemon starts with its clock three days behind: by that clock the certificate
    // renews in three days.
    let clock = Clock::shifted();
    clock.step(-3 * DAY);
    let daemon = InProcessDaemon::start(world.config_path(), clock.clone()).await;
    let next = eventually(
        "valid, with a renewal time",
        Duration::from_secs(10),
        || async {
            if daemon.state("orders").await.as_deref() != Some("valid") {
                return None;
            }
            daemon.next_renewal("orders").await
        },
    )
    .await;
    assert!(
        next > clock.now() + Duration::from_secs(2 * DAY as u64),
        "by a clock three days behind, the renewal is days away"
    );

    // Real time passes the renewal time; by its clock, nothing is due.
    let past_due = enrolled + VALIDITY / 2 + Duration::from_secs(1);
    tokio::time::sleep(
        past_due
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    )
    .await;
    assert_eq!(renewals(), 0, "renewed by a clock that said not yet");

    // Corrected: the renewal happens at once, not three days later.
    let corrected = Instant::now();
    clock.step(3 * DAY);
    eventually(
        "the renewal after the correction",
        Duration::from_secs(8),
        || async { (renewals() == 1).then_some(()) },
    )
    .await;
    let renewed = SystemTime::now();
    assert!(corrected.elapsed() < Duration::from_secs(8));

    // Ten days ahead, the new certificate is expired by the daemon's clock: it says so
    // and attempts nothing.
    clock.step(10 * DAY);
    eventually("expired by the clock", Duration::from_secs(5), || async {
        (daemon.state("orders").await.as_deref() == Some("expired")).then_some(())
    })
    .await;

    // Back to the right time: valid again, and renewed at its renewal time.
    clock.step(-10 * DAY);
    eventually("valid again", Duration::from_secs(5), || async {
        (daemon.state("orders").await.as_deref() == Some("valid")).then_some(())
    })
    .await;
    assert_eq!(
        renewals(),
        1,
        "nothing was attempted while expired by the clock"
    );
    let second_due = renewed + VALIDITY / 2;
    let limit = second_due
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        + Duration::from_secs(8);
    eventually("the next renewal at its time", limit, || async {
        (renewals() == 2).then_some(())
    })
    .await;

    daemon.stop().await;
}
