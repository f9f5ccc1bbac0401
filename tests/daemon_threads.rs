//! The daemon's threads: however many certificates it starts with, start-up recovery, key
//! generation and durable writes share a small blocking pool sized by
//! `max_concurrent_renewals`, and that pool runs at a lower priority than the event loop.

mod support;

use std::time::Duration;

use support::running::Daemon;
use support::world::{CertSpec, Settings, World};

/// `run` in `world` with `certificates` empty certificate directories, once it logged
/// `ready`.
fn start(world: &mut World, certificates: usize, max_concurrent_renewals: usize) -> Daemon {
    world.settings.daemon.set(&format!(
        "max_concurrent_renewals = {max_concurrent_renewals}"
    ));
    let certs: Vec<CertSpec> = (0..certificates)
        .map(|i| world.compass(&format!("c{i:02}")))
        .collect();
    for cert in &certs {
        std::fs::create_dir_all(&cert.dir).unwrap();
    }
    world.write_config(&certs);
    world.daemon().env("RUST_LOG", "info").ready()
}

/// A world without a metrics listener whose certificates are never enrolled.
fn world() -> World {
    World::with(Settings::one_shot(), Duration::from_secs(3600))
}

/// (thread name, nice value) of every thread of process `pid`, the event loop (the main
/// thread) first.
fn threads(pid: u32) -> Vec<(String, i32)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap();
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue; // The thread ended meanwhile.
        };
        // "tid (comm) state ...": the name may hold spaces; the fields after it are plain.
        let open = stat.find('(').unwrap();
        let close = stat.rfind(')').unwrap();
        let name = stat[open + 1..close].to_owned();
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // Field 19 of stat is the nice value; `fields` starts at field 3.
        let nice: i32 = fields[16].parse().unwrap();
        let main = task.file_name().to_str() == Some(pid.to_string().as_str());
        threads.push((main, name, nice));
    }
    threads.sort_by_key(|(main, _, _)| !*main);
    threads
        .into_iter()
        .map(|(_, name, nice)| (name, nice))
        .collect()
}

/// SIGTERM; the daemon exits cleanly.
fn stop(mut daemon: Daemon) {
    let status = daemon.stop();
    assert!(
        status.success(),
        "the daemon exited with {status} after SIGTERM"
    );
}

#[test]
fn daemon_with_many_certificates_starts_with_a_bounded_number_of_threads() {
    const CERTIFICATES: usize = 64;
    const MAX_CONCURRENT_RENEWALS: usize = 2;
    let mut world = world();
    let daemon = start(&mut world, CERTIFICATES, MAX_CONCURRENT_RENEWALS);

    // Idle blocking threads live on for 10 s, so every thread start-up needed is still
    // there. Fixed threads: the event loop and the file watcher (one spare allowed).
    let threads = threads(daemon.pid()).len();
    let bound = MAX_CONCURRENT_RENEWALS + 2 + 3;
    assert!(
        threads <= bound,
        "{threads} threads for {CERTIFICATES} certificates; expected at most {bound}"
    );
    stop(daemon);
}

#[test]
fn blocking_threads_run_at_a_lower_priority_than_the_event_loop() {
    let mut world = world();
    let daemon = start(&mut world, 8, 2);

    let threads = threads(daemon.pid());
    let (_, event_loop) = threads[0].clone();
    let blocking: Vec<&(String, i32)> = threads
        .iter()
        .filter(|(name, _)| name.starts_with("tokio-r"))
        .collect();
    assert!(
        !blocking.is_empty(),
        "start-up recovery ran on blocking threads: {threads:?}"
    );
    for (name, nice) in blocking {
        assert!(
            *nice >= (event_loop + 10).min(19),
            "{name} runs at nice {nice}, the event loop at {event_loop}: {threads:?}"
        );
    }
    stop(daemon);
}
