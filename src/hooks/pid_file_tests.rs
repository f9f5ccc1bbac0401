//! Tests of the signal hook: the signal reaches the process in the pid file, and a pid
//! file that cannot be trusted is refused: a symlink or a FIFO in its place, one that
//! others may write, one that does not name one process, one that names another user's
//! process, and a process the daemon cannot see. Cases that need root say so and skip
//! without it.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;
use crate::hooks::testutil::{Running, env_for, eventually};
use crate::hooks::{HookConfig, HookKind, run_hooks};

/// Users that are neither root nor the daemon's.
const STRANGER: u32 = 12345;
const OTHER_STRANGER: u32 = 12346;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn term(pid_file: PathBuf) -> HookConfig {
    HookConfig::Signal {
        signal: HookSignal::Term,
        pid_file,
    }
}

/// Runs one signal hook; its error, or `None` when it succeeded.
async fn run_one(hook: HookConfig, dir: &Path) -> Option<String> {
    let outcomes = run_hooks("orders", &[hook], &env_for(dir)).await;
    assert_eq!(outcomes[0].kind, HookKind::Signal);
    outcomes[0].error.clone()
}

fn pid_file_for(dir: &Path, name: &str, target: &Running, owner: Option<u32>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{}\n", target.pid())).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    if let Some(uid) = owner {
        std::os::unix::fs::chown(&path, Some(uid), Some(uid)).unwrap();
    }
    path
}

/// A symlink lends the pid file its target's owner: whoever may write the link's folder
/// could point it at root's pid file of another process. It is refused, never followed.
#[tokio::test]
async fn signal_hook_refuses_a_pid_file_that_is_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let mut target = Running::sleep(None);
    let real = pid_file_for(dir.path(), "real.pid", &target, None);
    let link = dir.path().join("app.pid");
    std::os::unix::fs::symlink(&real, &link).unwrap();

    let error = run_one(term(link), dir.path()).await.expect("refused");
    assert!(error.contains("app.pid is not trusted"), "{error}");
    assert!(error.contains("is a symlink"), "{error}");
    assert!(target.still_running(), "the process was signalled");

    // The same pid file named directly works: the refusal was about the link.
    assert_eq!(run_one(term(real), dir.path()).await, None);
    assert_eq!(target.ended_by(), Some(15));
}

/// Nobody ever writes into this FIFO: a blocking open would wait for ever, and the hook
/// with it. It is refused at once.
#[tokio::test]
async fn signal_hook_refuses_a_fifo_as_pid_file_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("app.pid");
    let folder = std::fs::File::open(dir.path()).unwrap();
    rustix::fs::mknodat(
        &folder,
        "app.pid",
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();

    let started = Instant::now();
    let error = tokio::time::timeout(SIGNAL_TIMEOUT, run_one(term(fifo), dir.path()))
        .await
        .expect("the hook returned within its timeout")
        .expect("refused");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(error.contains("is not a regular file"), "{error}");
}

/// A user who owns a pid file may name their own processes only: a pid file of one user
/// naming another user's process is refused; the process's own user's is accepted.
#[tokio::test]
async fn as_root_signal_hook_refuses_a_pid_file_naming_another_users_process() {
    if !is_root() {
        eprintln!("skipped: not root, so no process of another user can be started");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut target = Running::sleep(Some(STRANGER));
    let foreign = pid_file_for(dir.path(), "foreign.pid", &target, Some(OTHER_STRANGER));

    let error = run_one(term(foreign), dir.path()).await.expect("refused");
    assert!(error.contains("belongs to uid 12346"), "{error}");
    assert!(error.contains("runs as uid 12345"), "{error}");
    assert!(target.still_running(), "the process was signalled");

    let own = pid_file_for(dir.path(), "own.pid", &target, Some(STRANGER));
    assert_eq!(run_one(term(own), dir.path()).await, None);
    assert_eq!(target.ended_by(), Some(15));
}

/// With `ProtectProc=invisible`, other users' processes are missing from `/proc`: their
/// owner cannot be checked, so they are not signalled (the hook fails, and is retried
/// like any failed hook). Here the daemon's view of processes is an empty folder.
#[test]
fn as_root_signal_hook_does_not_signal_a_process_it_cannot_see() {
    if !is_root() {
        eprintln!("skipped: not root, so the pid file cannot be given to another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hidden_proc = tempfile::tempdir().unwrap();
    let mut target = Running::sleep(Some(STRANGER));
    let pid_file = pid_file_for(dir.path(), "app.pid", &target, Some(STRANGER));

    let error = signal_process(HookSignal::Term, &pid_file, hidden_proc.path()).unwrap_err();
    assert!(matches!(error, HookError::ProcessHidden { .. }), "{error}");
    let message = crate::errors::error_chain(&error);
    assert!(
        message.contains(&format!("cannot see process {}", target.pid())),
        "{message}"
    );
    assert!(message.contains("not signalling it"), "{message}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        target.still_running(),
        "a process it could not see was signalled"
    );

    // The same pid file, with the process in view, is accepted.
    signal_process(HookSignal::Term, &pid_file, Path::new(PROC)).unwrap();
    assert_eq!(target.ended_by(), Some(15));
}

/// A process that ended is never signalled, also when its `/proc` entry would pass the
/// owner check: the pidfd is opened first and the process re-checked after the lookup.
#[test]
fn as_root_a_process_that_ended_is_reported_gone_not_signalled() {
    if !is_root() {
        eprintln!("skipped: not root, so the pid file cannot be given to another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut target = Running::sleep(Some(STRANGER));
    let pid_file = pid_file_for(dir.path(), "app.pid", &target, Some(STRANGER));
    let pid = Pid::from_raw(i32::try_from(target.pid()).unwrap()).unwrap();
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).unwrap();
    let (_, stat) = read_pid_file(&pid_file).unwrap();
    assert!(!has_ended(&pidfd));
    check_pid_file_owner(&pid_file, &stat, pid, &pidfd, Path::new(PROC)).unwrap();

    // Ended but not reaped: its /proc entry (a zombie's) is still there and still its
    // user's, yet the check says gone.
    rustix::process::kill_process(pid, Signal::KILL).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !has_ended(&pidfd) {
        assert!(Instant::now() < deadline, "the process did not end");
        std::thread::sleep(Duration::from_millis(10));
    }
    let error = check_pid_file_owner(&pid_file, &stat, pid, &pidfd, Path::new(PROC)).unwrap_err();
    assert!(matches!(error, HookError::ProcessGone { .. }), "{error}");
    let _ = target.0.wait();
}

fn read_lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

#[tokio::test]
async fn signal_hook_delivers_the_signal_to_the_process_in_the_pid_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hups");
    let pid_file = dir.path().join("app.pid");
    let script = r#"trap 'echo hup >> "$1"' HUP
echo $$ > "$2.tmp" && mv "$2.tmp" "$2"
while :; do sleep 1 & wait $!; done"#;
    let _helper = Running(
        std::process::Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(&log)
            .arg(&pid_file)
            .spawn()
            .unwrap(),
    );
    eventually("the helper's pid file", || pid_file.exists()).await;

    let hook = HookConfig::Signal {
        signal: HookSignal::Hup,
        pid_file: pid_file.clone(),
    };
    // One run at a time: two signals sent back to back may reach the shell as one.
    for handled in 1..=2 {
        let outcomes = run_hooks("orders", std::slice::from_ref(&hook), &env_for(dir.path())).await;
        assert_eq!(outcomes.len(), 1);
        assert_eq!(outcomes[0].kind, HookKind::Signal);
        assert!(outcomes[0].ok, "{:?}", outcomes[0].error);
        eventually("the HUP handled", || read_lines(&log) >= handled).await;
    }
    assert_eq!(read_lines(&log), 2);
}

#[tokio::test]
async fn signal_hook_with_a_stale_pid_file_reports_the_process_gone() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let pid_file = dir.path().join("stale.pid");
    std::fs::write(&pid_file, format!("{pid}\n")).unwrap();

    let hook = HookConfig::Signal {
        signal: HookSignal::Term,
        pid_file,
    };
    let outcomes = run_hooks("orders", &[hook], &env_for(dir.path())).await;

    assert!(!outcomes[0].ok);
    let error = outcomes[0].error.as_deref().unwrap();
    assert!(error.contains("does not exist (stale pid file)"), "{error}");
}

/// A pid file anyone may write, or one owned by a user other than root, the daemon's
/// user or the target's, could name any process: the signal is not sent.
#[tokio::test]
async fn signal_hook_refuses_a_pid_file_from_someone_who_may_not_signal_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut target = Running::sleep(None);
    let pid_file = pid_file_for(dir.path(), "app.pid", &target, None);
    let hook = term(pid_file.clone());

    std::fs::set_permissions(&pid_file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let outcomes = run_hooks("orders", std::slice::from_ref(&hook), &env_for(dir.path())).await;
    let error = outcomes[0].error.as_deref().unwrap();
    assert!(error.contains("other users may write it"), "{error}");

    std::fs::set_permissions(&pid_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    if is_root() {
        // Owned by a stranger while the process runs as root.
        std::os::unix::fs::chown(&pid_file, Some(STRANGER), None).unwrap();
        let outcomes = run_hooks("orders", std::slice::from_ref(&hook), &env_for(dir.path())).await;
        let error = outcomes[0].error.as_deref().unwrap();
        assert!(error.contains("belongs to uid 12345"), "{error}");
        std::os::unix::fs::chown(&pid_file, Some(0), None).unwrap();
    }
    assert!(target.still_running(), "no signal was sent so far");
    // The daemon's own (or root's) pid file is trusted.
    let outcomes = run_hooks("orders", &[hook], &env_for(dir.path())).await;
    assert!(outcomes[0].ok, "{:?}", outcomes[0].error);
    assert_eq!(target.ended_by(), Some(15));
}

#[tokio::test]
async fn signal_hook_refuses_pid_files_that_do_not_name_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("", "is empty"),
        ("  \n", "is empty"),
        ("nginx", "does not hold"),
        ("0", "does not hold"),
        ("-1", "does not hold"),
        ("+1", "does not hold"),
        ("12 34", "does not hold"),
        ("99999999999", "does not hold"),
        (&"7".repeat(5000), "does not hold"),
    ];
    for (content, expected) in cases {
        let pid_file = dir.path().join("bad.pid");
        std::fs::write(&pid_file, content).unwrap();
        let hook = HookConfig::Signal {
            signal: HookSignal::Hup,
            pid_file,
        };
        let outcomes = run_hooks("orders", &[hook], &env_for(dir.path())).await;
        let error = outcomes[0].error.as_deref().unwrap_or("");
        assert!(!outcomes[0].ok, "{content:?} was accepted");
        assert!(error.contains(expected), "{content:?}: {error}");
    }
}
