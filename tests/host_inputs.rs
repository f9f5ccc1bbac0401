//! Host inputs that must neither freeze the daemon nor cost a certificate: a FIFO as
//! `state.json`, a FIFO in place of the certificate, and the directory lock held by
//! someone else. The event loop keeps answering `/healthz`, an unreadable file is an
//! error that is retried (never "missing", never a reason to spend the token in
//! `token_file`, never set aside), and a held lock is reported by name and waited out.
//! Plus a signal hook under a `/proc` that hides other users' processes, as the unit's
//! `ProtectProc=invisible` does (in a private mount namespace, as root).

mod support;

use std::fs;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::fs::{FileType, FlockOperation, Mode};
use support::disk::{chown_tree, list};
use support::invoke::Invocation;
use support::running::Daemon;
use support::wait::wait_for;
use support::world::{Proto, Settings, World, toml_path, toml_str};

fn mkfifo(path: &Path) {
    let (parent, name) = (path.parent().unwrap(), path.file_name().unwrap());
    let dir = fs::File::open(parent).unwrap();
    rustix::fs::mknodat(&dir, name, FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
}

fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt as _;
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// `/healthz` answers 200 quickly: the event loop is not stuck on the disk.
fn assert_healthy_quickly(daemon: &Daemon) {
    let started = Instant::now();
    let answer = daemon.try_get("/healthz");
    assert_eq!(
        answer.map(|(status, _)| status),
        Some(200),
        "/healthz did not answer\n{}",
        daemon.log_text()
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "/healthz took {:?}",
        started.elapsed()
    );
}

/// The first log line containing `needle`, waiting at most 15 s.
fn wait_for_text(daemon: &Daemon, needle: &str) -> String {
    daemon
        .wait_for_line(needle, Duration::from_secs(15), |l| l.text.contains(needle))
        .text
}

#[test]
fn a_fifo_as_state_json_freezes_nothing_and_renewals_go_on() {
    let world = World::with(Settings::stress(), Duration::from_secs(3600));
    let told = world.path("told");
    let script = format!("echo \"$KYMA_CERTD_FINGERPRINT\" >> '{}'", told.display());
    let cert = world
        .cert("orders", Proto::Compass)
        .hook(&[format!("command = [\"sh\", \"-c\", {}]", toml_str(script))]);
    world.write_config(std::slice::from_ref(&cert));
    world.enroll(&cert.name);
    let state = cert.dir.join("state.json");
    let _ = fs::remove_file(&state);
    mkfifo(&state);

    let daemon = world.daemon().label("fifo-state").serving();
    daemon.wait_ready();
    assert_healthy_quickly(&daemon);
    assert_eq!(daemon.metrics().state("orders").as_deref(), Some("valid"));
    let line = wait_for_text(&daemon, "ignoring state.json");
    assert!(line.contains("state.json is a FIFO"), "{line}");

    // state.json is bookkeeping: a renewal does not need it.
    let before = cert.snapshot();
    daemon.renew_now();
    wait_for("a renewal", Duration::from_secs(30), || {
        (daemon.metrics().successes("orders") >= 1.0).then_some(())
    });
    assert_ne!(cert.snapshot(), before, "the certificate was not renewed");
    assert_healthy_quickly(&daemon);
    assert!(is_fifo(&state), "the FIFO was replaced or set aside");
    // Which hooks were told cannot be recorded: each certificate is told once (the
    // enrolled one at start, the renewed one), not at every look (one a second here).
    let renewed = cert.consistent_pair().unwrap();
    wait_for(
        "the hook told of the renewal",
        Duration::from_secs(15),
        || {
            fs::read_to_string(&told)
                .ok()
                .filter(|t| t.contains(&renewed))
        },
    );
    let looks = daemon.log_text().matches("ignoring state.json").count();
    wait_for("three more looks", Duration::from_secs(15), || {
        let now = daemon.log_text().matches("ignoring state.json").count();
        (now >= looks + 3).then_some(())
    });
    let lines: Vec<String> = fs::read_to_string(&told)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[1], renewed);
    assert!(
        !list(&cert.dir)
            .iter()
            .any(|n| n.starts_with("state.json.corrupt-")),
        "{:?}",
        list(&cert.dir)
    );
}

#[test]
fn an_unreadable_certificate_is_not_missing_and_the_token_file_is_left_alone() {
    let world = World::with(Settings::stress(), Duration::from_secs(3600));
    let token_file = world.path("orders.next-token");
    let cert = world
        .cert("orders", Proto::Compass)
        .with(format!("token_file = {}", toml_path(&token_file)));
    world.write_config(std::slice::from_ref(&cert));
    world.enroll(&cert.name);
    let requests = world.sim.signing_requests();
    // A token waits in token_file: it must be spent only on a certificate that is truly
    // missing, expired or revoked.
    fs::write(&token_file, world.sim.mint_compass_token()).unwrap();
    let generation = fs::read_link(cert.dir.join("current")).unwrap();
    let leaf = cert.dir.join(generation).join("cert.pem");
    let saved = fs::read(&leaf).unwrap();
    fs::remove_file(&leaf).unwrap();
    mkfifo(&leaf);

    let daemon = world.daemon().label("fifo-cert").serving();
    daemon.wait_ready();
    assert_healthy_quickly(&daemon);
    let line = wait_for_text(&daemon, "cannot read the certificate files");
    assert!(line.contains("cert.pem is a FIFO"), "{line}");
    assert_eq!(daemon.metrics().state("orders").as_deref(), Some("backoff"));
    // Several looks later (retry_min 500ms), still no enrollment.
    wait_for("more looks", Duration::from_secs(10), || {
        let looks = daemon
            .log_text()
            .matches("cannot read the certificate files")
            .count();
        (looks >= 3).then_some(())
    });
    assert_eq!(
        world.sim.signing_requests(),
        requests,
        "the token was spent"
    );
    assert!(
        !daemon.log_text().contains("enrolling"),
        "{}",
        daemon.log_text()
    );
    assert_ne!(daemon.metrics().state("orders").as_deref(), Some("missing"));

    // The file is back: the next look finds the certificate valid.
    fs::remove_file(&leaf).unwrap();
    fs::write(&leaf, saved).unwrap();
    daemon.wait_state("orders", "valid", Duration::from_secs(15));
    assert_eq!(world.sim.signing_requests(), requests);
}

#[test]
fn a_held_lock_is_reported_by_name_and_the_renewal_retried_once_it_is_free() {
    let world = World::with(Settings::stress(), Duration::from_secs(3600));
    let cert = world.cert("orders", Proto::Compass);
    world.write_config(std::slice::from_ref(&cert));
    world.enroll(&cert.name);
    let lock = cert.dir.join(".lock");
    let holder = fs::File::open(&lock).unwrap();
    rustix::fs::flock(&holder, FlockOperation::LockExclusive).unwrap();

    let daemon = world.daemon().label("held-lock").serving();
    daemon.wait_ready();
    let before = cert.snapshot();
    daemon.renew_now();
    wait_for("a failed attempt", Duration::from_secs(30), || {
        (daemon.metrics().failures("orders") >= 1.0).then_some(())
    });
    let line = wait_for_text(&daemon, "renewal failed");
    assert!(line.contains("held by another process"), "{line}");
    assert!(line.contains(lock.to_str().unwrap()), "{line}");
    // While the next attempt waits for the lock, the event loop answers.
    assert_healthy_quickly(&daemon);
    assert_eq!(cert.snapshot(), before, "swapped under someone else's lock");
    assert_eq!(daemon.metrics().successes("orders"), 0.0);

    drop(holder);
    wait_for(
        "a renewal after the lock was freed",
        Duration::from_secs(30),
        || (daemon.metrics().successes("orders") >= 1.0).then_some(()),
    );
    assert_ne!(cert.snapshot(), before);
}

/// The user the binary runs as below, with `CAP_KILL` like the documented drop-in.
const SERVICE_UID: u32 = 23456;
/// The consumer: owns the signalled process and its pid file.
const CONSUMER_UID: u32 = 12345;

/// `command` as [`SERVICE_UID`] holding `CAP_KILL`, in a mount namespace of its own whose
/// `/proc` is mounted with `hidepid=<hidepid>` (see [`private_proc_works`]).
fn with_private_proc(command: Invocation, hidepid: &str) -> Invocation {
    let script = format!(
        "mount -t proc -o hidepid={hidepid} proc /proc && exec setpriv --reuid {SERVICE_UID} \
         --regid {SERVICE_UID} --clear-groups --inh-caps +kill --ambient-caps +kill \"$@\""
    );
    command.through(&[
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
        "sh",
    ])
}

/// Whether a private `/proc` with `hidepid` can be mounted here.
fn private_proc_works() -> Result<(), String> {
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount -t proc -o hidepid=invisible proc /proc && setpriv --help >/dev/null")
        .output()
        .map_err(|e| format!("cannot run unshare: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

/// The service user holds `CAP_KILL` and may signal the consumer's process. With the
/// unit's `ProtectProc=invisible` it cannot see that process, so it cannot check that
/// the pid file's owner owns it, and it sends nothing (the hook fails: exit 4, retried).
/// With `ProtectProc=noaccess` (the drop-in) it sees the owner, and the signal goes.
#[test]
fn as_root_a_signal_hook_never_signals_a_process_hidden_from_the_daemon() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: not root, so no mount namespace and no other users");
        return;
    }
    if let Err(reason) = private_proc_works() {
        eprintln!("skipped: cannot mount a private /proc here: {reason}");
        return;
    }
    let world = World::with(Settings::stress(), Duration::from_secs(3600));
    let pid_file = world.path("app.pid");
    let cert = world.cert("orders", Proto::Compass).hook(&[
        "signal = \"TERM\"".to_owned(),
        format!("pid_file = {}", toml_path(&pid_file)),
    ]);
    world.write_config(std::slice::from_ref(&cert));
    world.enroll(&cert.name);
    chown_tree(world.root(), SERVICE_UID);

    let mut consumer = Command::new("sleep");
    consumer.arg("60").uid(CONSUMER_UID).gid(CONSUMER_UID);
    let mut consumer = consumer.spawn().unwrap();
    fs::write(&pid_file, format!("{}\n", consumer.id())).unwrap();
    std::os::unix::fs::chown(&pid_file, Some(CONSUMER_UID), Some(CONSUMER_UID)).unwrap();
    let renew = || world.command(&["renew", "--force", "--name", "orders"]);

    let hidden = with_private_proc(renew(), "invisible").run();
    let text = hidden.text();
    let still_running = consumer.try_wait().unwrap().is_none();
    if !still_running {
        let _ = consumer.wait();
    }
    assert_eq!(hidden.status.code(), Some(4), "{text}");
    assert!(text.contains("renewed"), "{text}");
    assert!(
        text.contains(&format!("cannot see process {}", consumer.id())),
        "{text}"
    );
    assert!(
        still_running,
        "a process the daemon could not see was signalled"
    );

    let seen = with_private_proc(renew(), "noaccess").run();
    let text = seen.text();
    let _ = consumer.kill();
    let status = consumer.wait().unwrap();
    assert_eq!(seen.status.code(), Some(0), "{text}");
    assert_eq!(
        status.signal(),
        Some(15),
        "the hook's SIGTERM did not arrive: {text}"
    );
}
