//! Crash consistency: renewals killed with SIGKILL at random moments, in both layouts, as
//! one-shot `renew --force` runs and as a renewing daemon. After every kill the consumer
//! paths must hold a key and a certificate that belong together (the files layout may
//! be mid-journal, which the next start completes), and after a restart everything is
//! consistent, issued by the simulator, and free of leftovers.
//!
//! Long by design, so `#[ignore]`d: `cargo test --world -- --ignored` runs it.
//! `KYMA_CERTD_KILLS` sets the kills per layout (default 200);
//! `KYMA_CERTD_KILL_SEED` replays a sequence of delays.

mod support;

use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::results;
use support::scrape::Scrape;
use support::wait::wait_for;
use support::world::{CertSpec, Layout, Proto, Settings, World, toml_path};

/// A small deterministic generator for the kill delays (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A delay in `[0, 1.2 * typical)`, half of the time packed into the last fifth of
    /// a typical run, where the swap happens.
    fn delay(&mut self, typical: Duration) -> Duration {
        let fraction = if self.next().is_multiple_of(2) {
            self.unit() * 1.2
        } else {
            0.8 + self.unit() * 0.25
        };
        typical.mul_f64(fraction)
    }
}

/// What a kill interrupted, judged from the disk before recovery.
#[derive(Debug, Default)]
struct Tally {
    kills: usize,
    /// The process was still running when the signal arrived.
    killed_running: usize,
    /// Leftovers (temporary files, an extra generation, a journal) were on disk.
    mid_swap: usize,
    /// The new certificate was in place although the process never finished.
    after_swap: usize,
    /// Files layout: key and certificate disagreed until the journal was completed.
    journal_completed: usize,
}

struct Setup {
    world: World,
    certs: Vec<CertSpec>,
    issued_at_start: usize,
}

fn setup() -> Setup {
    let world = World::with(Settings::stress(), Duration::from_secs(3600));
    let announced = world.path("announced");
    let hook = [format!(
        "command = [\"sh\", \"-c\", \"echo \\\"$KYMA_CERTD_NAME $KYMA_CERTD_FINGERPRINT\\\" >> \\\"$0\\\"\", {}]",
        toml_path(&announced)
    )];
    let certs: Vec<CertSpec> = [
        world.cert("sym", Proto::Compass),
        world.cert("files", Proto::KymaRest).files_layout(),
    ]
    .map(|cert| cert.hook(&hook))
    .into();
    world.write_config(&certs);
    for cert in &certs {
        world.enroll(&cert.name);
    }
    let issued_at_start = world.sim.issued_certificates().len();
    Setup {
        world,
        certs,
        issued_at_start,
    }
}

/// Right after a kill, before anything recovers: the symlink layout is always
/// consistent; the files layout is, unless its journal says a swap is half done.
/// `killed`: the signal found the process still running.
fn check_after_kill(
    cert: &CertSpec,
    issued: &HashSet<String>,
    before: &str,
    killed: bool,
    tally: &mut Tally,
) {
    tally.kills += 1;
    if killed {
        tally.killed_running += 1;
    }
    let journal = cert.dir.join("journal.json").exists();
    let leftovers = cert.leftovers();
    match cert.consistent_pair() {
        Ok(fingerprint) => {
            assert!(
                issued.contains(&fingerprint),
                "{}: after a kill the certificate {fingerprint} is not one the simulator issued",
                cert.name
            );
            if killed && leftovers.is_empty() && fingerprint != before {
                tally.after_swap += 1;
            }
        }
        Err(problem) => {
            assert!(
                cert.layout == Layout::Files && journal,
                "{}: after a kill the consumer files are inconsistent without a journal to finish: {problem}",
                cert.name
            );
            tally.journal_completed += 1;
        }
    }
    if !leftovers.is_empty() {
        tally.mid_swap += 1;
    }
}

/// After a restart has recovered: consistent, issued by the simulator, nothing left over.
fn check_recovered(cert: &CertSpec, issued: &HashSet<String>) -> String {
    let fingerprint = cert
        .consistent_pair()
        .unwrap_or_else(|e| panic!("{}: inconsistent after recovery: {e}", cert.name));
    assert!(
        issued.contains(&fingerprint),
        "{}: {fingerprint} was not issued by the simulator",
        cert.name
    );
    let leftovers = cert.leftovers();
    assert!(
        leftovers.is_empty(),
        "{}: leftovers after recovery: {leftovers:?}",
        cert.name
    );
    assert!(
        !cert.dir.join("journal.json").exists(),
        "{}: the journal was not completed",
        cert.name
    );
    if let Some(state) = cert.state_json() {
        serde_json::from_str::<serde_json::Value>(&state)
            .unwrap_or_else(|e| panic!("{}: state.json is not JSON after a kill: {e}", cert.name));
    }
    fingerprint
}

/// Runs `renew --name` without `--force`: recovery, then "not due", then the hooks that
/// a kill kept from hearing of the current certificate. Afterwards the current
/// certificate has been announced to the hook, whatever the kill interrupted.
fn restart_one_shot(setup: &Setup, cert: &CertSpec) {
    let output = setup.world.command(&["renew", "--name", &cert.name]).run();
    assert!(
        output.status.success(),
        "{}: the restart after a kill failed: {}",
        cert.name,
        output.text()
    );
    let current = cert
        .consistent_pair()
        .unwrap_or_else(|e| panic!("{}: inconsistent after the restart: {e}", cert.name));
    let announced = std::fs::read_to_string(setup.world.path("announced")).unwrap_or_default();
    assert!(
        announced
            .lines()
            .any(|line| line == format!("{} {current}", cert.name)),
        "{}: the current certificate {current} was never announced to the hook",
        cert.name
    );
}

/// Median wall time of an uninterrupted `renew --force --name`.
fn typical_renewal(setup: &Setup, cert: &CertSpec) -> Duration {
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let started = Instant::now();
            let output = setup
                .world
                .command(&["renew", "--force", "--name", &cert.name])
                .run();
            assert!(output.status.success(), "{}", output.text());
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn kill_one_shot(
    setup: &Setup,
    cert: &CertSpec,
    rng: &mut Rng,
    typical: Duration,
    tally: &mut Tally,
) {
    let before = cert.consistent_pair().expect("consistent before the kill");
    let stderr = setup.world.path(&format!("{}.stderr", cert.name));
    let mut child = setup
        .world
        .command(&["renew", "--force", "--name", &cert.name])
        .command()
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("renew starts");
    std::thread::sleep(rng.delay(typical));
    let _ = child.kill();
    let status = child.wait().expect("renew is reaped");
    let killed = status.signal() == Some(9);
    if !killed {
        assert!(
            status.success(),
            "{}: an unkilled renewal failed: {}",
            cert.name,
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
    }
    let issued = setup.world.sim.issued_fingerprints();
    check_after_kill(cert, &issued, &before, killed, tally);
    restart_one_shot(setup, cert);
    check_recovered(cert, &issued);
}

/// One daemon life: start (which recovers), wait until both certificates are valid,
/// SIGUSR1, kill at a random moment of the renewals.
fn kill_daemon(setup: &Setup, rng: &mut Rng, typical: Duration, tallies: &mut [Tally]) {
    // No check before the start: the previous kill may have left the files layout
    // mid-journal, which only this start completes.
    let mut daemon = setup.world.daemon().label("daemon").serving();
    let issued = setup.world.sim.issued_fingerprints();
    wait_for(
        "both certificates valid in the daemon and their hooks told",
        Duration::from_secs(20),
        || {
            let (_, body) = daemon.try_get("/metrics")?;
            let scrape = Scrape::parse(&body);
            // A kill before the hooks left them owed: the daemon tells them at its start
            // and records it (state.json written), and only then is the store at rest.
            let told =
                |name: &str| scrape.get("kyma_certd_hooks_pending", &[("name", name)]) == Some(0.0);
            setup
                .certs
                .iter()
                .all(|c| scrape.state(&c.name).as_deref() == Some("valid") && told(&c.name))
                .then_some(())
        },
    );
    // The daemon recovered at its start: what the previous kill left is gone.
    let befores: Vec<String> = setup
        .certs
        .iter()
        .map(|cert| check_recovered(cert, &issued))
        .collect();
    daemon.signal(rustix::process::Signal::USR1);
    std::thread::sleep(rng.delay(typical));
    let running = daemon.alive();
    drop(daemon);
    let issued = setup.world.sim.issued_fingerprints();
    for ((cert, tally), before) in setup.certs.iter().zip(tallies.iter_mut()).zip(&befores) {
        check_after_kill(cert, &issued, before, running, tally);
    }
}

fn kills_per_layout() -> usize {
    std::env::var("KYMA_CERTD_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

#[test]
#[ignore = "long: run with `cargo test --world -- --ignored`"]
fn renewals_survive_sigkill_at_random_moments_in_both_layouts() {
    let started = Instant::now();
    let setup = setup();
    let seed = std::env::var("KYMA_CERTD_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("kill delays from KYMA_CERTD_KILL_SEED={seed}");
    let mut rng = Rng(seed);
    let per_layout = kills_per_layout();
    let daemon_kills = per_layout / 4;
    let one_shot_kills = per_layout - daemon_kills;

    let typical: Vec<Duration> = setup
        .certs
        .iter()
        .map(|c| typical_renewal(&setup, c))
        .collect();
    let mut tallies: Vec<Tally> = setup.certs.iter().map(|_| Tally::default()).collect();
    for round in 0..one_shot_kills {
        for (index, cert) in setup.certs.iter().enumerate() {
            kill_one_shot(&setup, cert, &mut rng, typical[index], &mut tallies[index]);
        }
        if round % 50 == 49 {
            eprintln!(
                "{} one-shot kills per layout, {:.0}s",
                round + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }

    // A daemon renewing on SIGUSR1: its renewal starts after start-up and readiness.
    let daemon_typical = typical.iter().max().copied().unwrap_or_default() * 2;
    for _ in 0..daemon_kills {
        kill_daemon(&setup, &mut rng, daemon_typical, &mut tallies);
    }
    let issued = setup.world.sim.issued_fingerprints();
    for cert in &setup.certs {
        restart_one_shot(&setup, cert);
        check_recovered(cert, &issued);
        let status = setup.world.command(&["status", "--name", &cert.name]).run();
        assert!(status.status.success(), "{}", status.text());
    }

    let elapsed = started.elapsed();
    let renewed = setup.world.sim.issued_certificates().len() - setup.issued_at_start;
    for (cert, tally) in setup.certs.iter().zip(&tallies) {
        eprintln!("{} layout: {tally:?}", cert.layout.as_str());
    }
    let sym = &tallies[0];
    let files = &tallies[1];
    let total: usize = tallies.iter().map(|t| t.kills).sum();
    eprintln!(
        "survived {total} kills ({} symlink, {} files) in {:.1}s; {renewed} certificates issued",
        sym.kills,
        files.kills,
        elapsed.as_secs_f64()
    );
    let layout_numbers = |t: &Tally| {
        format!(
            "{} kills, {} mid-run, {} mid-swap, {} after the swap",
            t.kills, t.killed_running, t.mid_swap, t.after_swap
        )
    };
    results::record(
        "1-crash",
        "SIGKILL at random moments of `renew --force` and of a daemon renewing on SIGUSR1, symlink (compass) and files (kyma-rest) layouts",
        "after each kill: key and certificate belong together (files layout: unless its journal is pending) and were issued by the simulator; after each restart (`renew`, or the daemon's own start): consistent, issued, no temporary file, journal or generation beyond current and previous; after each `renew` restart: the current certificate was announced to the on_renew hook",
        &[
            ("kills survived", total.to_string()),
            ("symlink", layout_numbers(sym)),
            ("files", layout_numbers(files)),
            (
                "journals completed at restart",
                files.journal_completed.to_string(),
            ),
            ("certificates issued", renewed.to_string()),
            ("time", format!("{:.0} s", elapsed.as_secs_f64())),
        ],
    );
}
