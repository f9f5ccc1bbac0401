//! Disk trouble: a full file system, a read-only mount, a directory the process may not
//! write (read-only mode or another owner), and a directory that vanished. A renewal
//! fails with an error naming the path, the old files stay byte-identical, and the
//! daemon keeps running, retries (reason `write`) and renews once the trouble is gone.
//!
//! Permission checks do not apply to root, so the binary runs as `nobody` where it
//! matters; mounts need root, and a test says so and skips when it cannot mount.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::disk::Tmpfs;
use support::disk::{chmod, chown_tree, fill_file_system, is_root};
use support::invoke::Invocation;
use support::results;
use support::running::Daemon;
use support::scrape::Scrape;
use support::wait::{try_wait_for, wait_for};
use support::world::{CertSpec, Layout, Proto, Settings, World};

const NOBODY: u32 = 65534;
/// An owner that is neither root nor the user the binary runs as.
const STRANGER: u32 = 12345;

fn scrape(daemon: &Daemon) -> Option<Scrape> {
    let (status, body) = daemon.try_get("/metrics")?;
    (status == 200).then(|| Scrape::parse(&body))
}

/// Waits until `names` have failed at least `n` times, all with reason `write`, while
/// the daemon keeps running.
fn wait_for_write_failures(daemon: &mut Daemon, names: &[&str], n: f64) -> Scrape {
    let scrape = wait_for("write failures", Duration::from_secs(60), || {
        let scrape = scrape(daemon)?;
        names
            .iter()
            .all(|name| scrape.failures(name) >= n)
            .then_some(scrape)
    });
    for name in names {
        assert_eq!(
            scrape.failure_reasons(name).keys().collect::<Vec<_>>(),
            ["write"],
            "{name}"
        );
        assert!(
            matches!(scrape.state(name).as_deref(), Some("backoff" | "renewing")),
            "{name}: {:?}",
            scrape.state(name)
        );
    }
    assert!(daemon.alive(), "the daemon died on a write error");
    scrape
}

fn wait_for_success(daemon: &Daemon, names: &[&str]) {
    wait_for(
        "renewals after the trouble ended",
        Duration::from_secs(60),
        || {
            let scrape = scrape(daemon)?;
            names
                .iter()
                .all(|name| scrape.successes(name) >= 1.0)
                .then_some(())
        },
    );
}

/// A one-shot forced renewal that must fail (exit 1) naming `path`, leaving the files.
fn renew_fails_naming(command: Invocation, cert: &CertSpec, path: &Path, cause: &str) -> String {
    let before = cert.snapshot();
    let output = command.run();
    let text = output.text();
    assert_eq!(output.status.code(), Some(1), "{}: {text}", cert.name);
    assert!(
        text.contains(path.to_str().unwrap()),
        "{}: the error does not name {}: {text}",
        cert.name,
        path.display()
    );
    assert!(
        text.contains(cause),
        "{}: expected {cause:?} in: {text}",
        cert.name
    );
    assert!(!text.contains("panicked"), "{text}");
    assert!(
        cert.snapshot() == before,
        "{}: the old files changed",
        cert.name
    );
    text.lines()
        .find(|l| l.starts_with("kyma-certd: error:"))
        .unwrap_or_default()
        .to_owned()
}

/// A file system of 1 MiB: tmpfs, or a loop-mounted ext2 image when tmpfs is not
/// allowed; `Err` says why neither worked.
enum SmallFs {
    Tmpfs(Tmpfs),
    Loop(PathBuf),
}

impl SmallFs {
    fn mount(path: &Path, image: &Path) -> Result<SmallFs, String> {
        let tmpfs_error = match Tmpfs::mount(path, "1m") {
            Ok(fs) => return Ok(SmallFs::Tmpfs(fs)),
            Err(e) => e,
        };
        let made = Command::new("truncate")
            .args(["-s", "1M"])
            .arg(image)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new("mkfs.ext2")
                .args(["-q", "-F"])
                .arg(image)
                .status()
                .is_ok_and(|s| s.success())
            && Command::new("mount")
                .args(["-o", "loop"])
                .arg(image)
                .arg(path)
                .status()
                .is_ok_and(|s| s.success());
        if made {
            Ok(SmallFs::Loop(path.to_owned()))
        } else {
            Err(format!("{tmpfs_error}; a loop-mounted image failed too"))
        }
    }

    fn path(&self) -> &Path {
        match self {
            SmallFs::Tmpfs(fs) => &fs.path,
            SmallFs::Loop(path) => path,
        }
    }

    fn fill(&self) -> Vec<PathBuf> {
        fill_file_system(self.path())
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        if let SmallFs::Loop(path) = self {
            let _ = Command::new("umount").arg("-d").arg(&*path).status();
        }
    }
}

#[test]
fn full_file_system_fails_clearly_keeps_old_files_and_the_daemon_retries() {
    let started = Instant::now();
    let world = World::with(Settings::stress(), Duration::from_secs(120));
    let fs = match SmallFs::mount(&world.path("small"), &world.path("small.img")) {
        Ok(fs) => fs,
        Err(reason) => {
            eprintln!("skipped: cannot mount a small file system here: {reason}");
            results::record(
                "2a-disk-full",
                "a full file system",
                "skipped",
                &[("skipped", reason)],
            );
            return;
        }
    };
    let mut sym = world.cert("sym", Proto::Compass);
    sym.dir = fs.path().join("sym");
    let mut files = world.cert("files", Proto::KymaRest).files_layout();
    files.dir = fs.path().join("files/state");
    files.files_dir = fs.path().join("files/tls");
    let certs = [
        sym.with("renew_at = \"3%\""),
        files.with("renew_at = \"3%\""),
    ];
    world.write_config(&certs);
    for cert in &certs {
        world.enroll(&cert.name);
    }
    let fillers = fs.fill();
    let mut errors = Vec::new();
    for cert in &certs {
        let where_ = match cert.layout {
            Layout::Symlink => &cert.dir,
            Layout::Files => &cert.files_dir,
        };
        errors.push(renew_fails_naming(
            world.command(&["renew", "--force", "--name", &cert.name]),
            cert,
            where_,
            "No space left on device",
        ));
    }

    let snapshots: Vec<_> = certs.iter().map(CertSpec::snapshot).collect();
    let mut daemon = world.daemon().label("daemon").serving();
    wait_for_write_failures(&mut daemon, &["sym", "files"], 2.0);
    let log = daemon.log_text();
    assert!(log.contains("No space left on device"), "{log}");
    assert!(daemon.stop().success());
    for (cert, before) in certs.iter().zip(&snapshots) {
        assert!(cert.snapshot() == *before, "{}: files changed", cert.name);
        assert_eq!(cert.leftovers(), Vec::<String>::new(), "{}", cert.name);
    }

    for filler in &fillers {
        let _ = std::fs::remove_file(filler);
    }
    let daemon = world.daemon().label("daemon-after").serving();
    wait_for_success(&daemon, &["sym", "files"]);
    for cert in &certs {
        assert!(
            world
                .sim
                .issued_fingerprints()
                .contains(&cert.consistent_pair().unwrap())
        );
    }
    drop(daemon);
    results::record(
        "2a-disk-full",
        "a full file system (1 MiB tmpfs, or a loop-mounted image) under both layouts, one-shot and daemon",
        "`renew` exits 1 naming the directory and ENOSPC; files byte-identical, no temporary file left; the daemon keeps running, counts reason `write`, and renews once space is freed",
        &[
            (
                "file system",
                match fs {
                    SmallFs::Tmpfs(_) => "tmpfs".to_owned(),
                    SmallFs::Loop(_) => "loop-mounted ext2".to_owned(),
                },
            ),
            ("error", errors[0].clone()),
            ("time", format!("{:.1} s", started.elapsed().as_secs_f64())),
        ],
    );
}

#[test]
fn unwritable_directories_fail_clearly_keep_old_files_and_the_daemon_retries() {
    if !is_root() {
        let reason = "needs root to run the binary as another user".to_owned();
        eprintln!("skipped: {reason}");
        results::record(
            "2b-disk-unwritable",
            "unwritable directories",
            "skipped",
            &[("skipped", reason)],
        );
        return;
    }
    let started = Instant::now();
    let world = World::with(Settings::stress(), Duration::from_secs(120));
    let certs = [
        world
            .cert("readonly", Proto::Compass)
            .with("renew_at = \"3%\""),
        world
            .cert("foreign", Proto::Compass)
            .with("renew_at = \"3%\""),
        world
            .cert("tls", Proto::KymaRest)
            .files_layout()
            .with("renew_at = \"3%\""),
    ];
    world.write_config(&certs);
    for cert in &certs {
        world.enroll(&cert.name);
    }
    // Everything belongs to `nobody`, who runs the binary; then each directory is made
    // unwritable in its own way.
    for cert in &certs {
        for path in [&cert.dir, &cert.files_dir] {
            if path.exists() {
                chown_tree(path, NOBODY);
            }
        }
    }
    let readonly = &certs[0].dir;
    chmod(readonly, 0o555);
    let foreign = &certs[1].dir;
    std::os::unix::fs::chown(foreign, Some(STRANGER), Some(STRANGER)).unwrap();
    chmod(foreign, 0o755);
    let tls = &certs[2].files_dir;
    chmod(tls, 0o555);

    let mut errors = Vec::new();
    for (cert, path) in certs.iter().zip([readonly, foreign, tls]) {
        errors.push(renew_fails_naming(
            world
                .command(&["renew", "--force", "--name", &cert.name])
                .user(NOBODY),
            cert,
            path,
            "Permission denied",
        ));
    }

    let names = ["readonly", "foreign", "tls"];
    let mut daemon = world.daemon().user(NOBODY).serving();
    wait_for_write_failures(&mut daemon, &names, 2.0);
    for cert in &certs {
        assert_eq!(cert.leftovers(), Vec::<String>::new(), "{}", cert.name);
    }
    // The trouble ends while the daemon runs: it renews at its next retry.
    chmod(readonly, 0o755);
    std::os::unix::fs::chown(foreign, Some(NOBODY), Some(NOBODY)).unwrap();
    chmod(tls, 0o755);
    wait_for_success(&daemon, &names);
    for cert in &certs {
        assert!(
            world
                .sim
                .issued_fingerprints()
                .contains(&cert.consistent_pair().unwrap())
        );
    }
    drop(daemon);
    results::record(
        "2b-disk-unwritable",
        "a directory with mode 0555, one owned by another user (0755), and a files-layout target directory with mode 0555; the binary runs as `nobody`",
        "`renew` exits 1 naming the directory and EACCES; files byte-identical; the daemon keeps running with reason `write` and renews at its next retry once the directories are writable again",
        &[
            ("errors", errors.join(" / ")),
            ("time", format!("{:.1} s", started.elapsed().as_secs_f64())),
        ],
    );
}

#[test]
fn read_only_mount_fails_clearly_and_keeps_old_files() {
    let world = World::with(Settings::stress(), Duration::from_secs(120));
    let cert = world
        .cert("orders", Proto::Compass)
        .with("renew_at = \"3%\"");
    world.write_config(std::slice::from_ref(&cert));
    world.enroll(&cert.name);
    let bound = Command::new("mount")
        .arg("--bind")
        .arg(&cert.dir)
        .arg(&cert.dir)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(&cert.dir)
            .status()
            .is_ok_and(|s| s.success());
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let mount = Unmount(cert.dir.clone());
    if !bound {
        let reason = "cannot bind-mount read-only here".to_owned();
        eprintln!("skipped: {reason}");
        results::record(
            "2c-disk-readonly-mount",
            "a read-only mount",
            "skipped",
            &[("skipped", reason)],
        );
        return;
    }
    let error = renew_fails_naming(
        world.command(&["renew", "--force", "--name", "orders"]),
        &cert,
        &cert.dir,
        "Read-only file system",
    );
    let mut daemon = world.daemon().label("daemon").serving();
    wait_for_write_failures(&mut daemon, &["orders"], 2.0);
    drop(mount);
    wait_for_success(&daemon, &["orders"]);
    drop(daemon);
    results::record(
        "2c-disk-readonly-mount",
        "the certificate directory on a read-only bind mount (EROFS even for root)",
        "`renew` exits 1 naming the directory; files byte-identical; the daemon retries with reason `write` and renews after the remount",
        &[("error", error)],
    );
}

#[test]
fn vanished_directory_means_missing_and_the_daemon_notices_a_new_one() {
    let world = World::with(Settings::stress(), Duration::from_secs(3600));
    let certs = [
        world.cert("sym", Proto::Compass),
        world.cert("files", Proto::KymaRest).files_layout(),
    ];
    world.write_config(&certs);
    for cert in &certs {
        world.enroll(&cert.name);
    }
    let daemon = world.daemon().label("daemon").serving();
    let state_is = |name: &str, want: &str| {
        try_wait_for(Duration::from_secs(10), || {
            (scrape(&daemon)?.state(name).as_deref() == Some(want)).then_some(())
        })
        .unwrap_or_else(|| panic!("{name} never became {want}:\n{}", daemon.log_text()))
    };
    for cert in &certs {
        state_is(&cert.name, "valid");
    }
    let mut messages = Vec::new();
    for cert in &certs {
        // The directory holding the consumer files goes away...
        let home = cert.consumer_paths()[0].parent().unwrap().to_owned();
        let aside = world.path(&format!("{}.aside", cert.name));
        std::fs::rename(&home, &aside).unwrap();

        let output = world
            .command(&["renew", "--force", "--name", &cert.name])
            .run();
        let text = output.text();
        assert_eq!(output.status.code(), Some(3), "{text}");
        assert!(text.contains(home.to_str().unwrap()), "{text}");
        assert!(!text.contains("panicked"), "{text}");
        messages.push(
            text.lines()
                .find(|l| l.starts_with("kyma-certd: error:"))
                .unwrap_or_default()
                .to_owned(),
        );
        assert!(
            !home.exists(),
            "a failed renewal recreated {}",
            home.display()
        );
        let status = world.command(&["status", "--name", &cert.name]).run();
        assert_eq!(status.status.code(), Some(3), "{}", status.text());

        state_is(&cert.name, "missing");
        let (ready, _) = daemon.try_get("/readyz").unwrap();
        assert_eq!(ready, 503);

        // ... and a new one takes its place (a restore from backup, a new enrollment).
        let copied = Command::new("cp")
            .arg("-a")
            .arg(&aside)
            .arg(&home)
            .status()
            .unwrap();
        assert!(copied.success());
        state_is(&cert.name, "valid");
    }
    let (ready, _) = daemon.try_get("/readyz").unwrap();
    assert_eq!(ready, 200);
    let mut daemon = daemon;
    assert!(daemon.alive());
    drop(daemon);
    results::record(
        "2d-disk-vanished",
        "the directory holding the consumer files renamed away under a running daemon, then a copy put in its place (both layouts)",
        "`renew` and `status` exit 3 naming the directory, which a failed renewal does not recreate; the daemon marks the certificate missing, /readyz answers 503, it keeps running, and it sees the new directory's certificate valid within 10 s",
        &[("error", messages.join(" / "))],
    );
}
