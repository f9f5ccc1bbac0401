//! The `signal` hook: reads a pid file it can trust, opens the process it names as a pidfd,
//! checks that the pid file's owner may signal that process, and signals it. Never follows
//! a symlink, never blocks on a FIFO, and never hits a process that ended or a reused pid.

use std::io::Read as _;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use rustix::process::{Pid, Signal};

use super::error::HookError;
use super::kind::HookSignal;

/// How long a signal hook may take, the pid file's read included: a pid file on a file
/// system that hangs must not hold up the next hook nor the daemon.
pub const SIGNAL_TIMEOUT: Duration = Duration::from_secs(10);

/// A pid file longer than this is not a pid file.
const PID_FILE_LIMIT: u64 = 4096;

/// Where processes are looked up to learn who owns them.
const PROC: &str = "/proc";

fn signal_of(signal: HookSignal) -> Signal {
    match signal {
        HookSignal::Hup => Signal::HUP,
        HookSignal::Usr1 => Signal::USR1,
        HookSignal::Usr2 => Signal::USR2,
        HookSignal::Term => Signal::TERM,
        HookSignal::Int => Signal::INT,
        HookSignal::Quit => Signal::QUIT,
    }
}

/// Sends `signal` to the process in `pid_file`, within [`SIGNAL_TIMEOUT`]. The file
/// system work runs on the blocking pool: a pid file on a hung mount times out instead
/// of stopping the event loop.
pub(super) async fn send_signal(signal: HookSignal, pid_file: &Path) -> Result<(), HookError> {
    let path = pid_file.to_owned();
    let work = tokio::task::spawn_blocking(move || signal_process(signal, &path, Path::new(PROC)));
    match tokio::time::timeout(SIGNAL_TIMEOUT, work).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) | Err(_) => Err(HookError::SignalTimedOut {
            path: pid_file.to_owned(),
            timeout: SIGNAL_TIMEOUT,
        }),
    }
}

/// Reads `pid_file`, opens the process it names as a pidfd, checks that the pid file's
/// owner may name that process, and signals it through the pidfd: a process that ended
/// meanwhile, and a pid that was reused since, are never hit. `proc` is where processes
/// are looked up (`/proc`).
fn signal_process(signal: HookSignal, pid_file: &Path, proc: &Path) -> Result<(), HookError> {
    let (pid, stat) = read_pid_file(pid_file)?;
    let raw = pid.as_raw_nonzero().get();
    let gone = || HookError::ProcessGone {
        pid: raw,
        path: pid_file.to_owned(),
    };
    let pidfd = match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return Err(gone()),
        Err(errno) => {
            return Err(HookError::ProcessOpen {
                pid: raw,
                path: pid_file.to_owned(),
                source: errno.into(),
            });
        }
    };
    check_pid_file_owner(pid_file, &stat, pid, &pidfd, proc)?;
    let (sig, label) = (signal_of(signal), signal.name());
    rustix::process::pidfd_send_signal(&pidfd, sig).map_err(|errno| {
        if errno == rustix::io::Errno::SRCH {
            gone()
        } else {
            HookError::Kill {
                signal: label,
                pid: raw,
                path: pid_file.to_owned(),
                source: errno.into(),
            }
        }
    })
}

/// Whether the process behind `pidfd` has ended (its pidfd turns readable then).
fn has_ended(pidfd: &OwnedFd) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match rustix::event::poll(&mut fds, Some(&now)) {
        Ok(ready) => ready > 0,
        // Cannot tell: treat it as gone, which sends nothing.
        Err(_) => true,
    }
}

/// A pid file decides which process gets a signal, so it must come from someone who
/// may signal that process anyway: root, this daemon's user, or the process's own user.
/// A file others may write could name any process. The owner checked is the file's own
/// (it was opened without following a symlink), and a process whose owner cannot be
/// seen is not signalled.
fn check_pid_file_owner(
    path: &Path,
    stat: &rustix::fs::Stat,
    pid: Pid,
    pidfd: &OwnedFd,
    proc: &Path,
) -> Result<(), HookError> {
    use std::os::unix::fs::MetadataExt as _;
    let untrusted = |why: String| HookError::PidFileUntrusted {
        path: path.to_owned(),
        why,
    };
    if stat.st_mode & 0o002 != 0 {
        return Err(untrusted("other users may write it".into()));
    }
    let owner = stat.st_uid;
    if owner == 0 || owner == rustix::process::geteuid().as_raw() {
        return Ok(());
    }
    let raw = pid.as_raw_nonzero().get();
    let gone = || HookError::ProcessGone {
        pid: raw,
        path: path.to_owned(),
    };
    let process_owner = std::fs::metadata(proc.join(raw.to_string())).map(|m| m.uid());
    // The pidfd holds the process the pid named when it was opened: if that process is
    // still running now, the entry just read was its own, not a successor's.
    if has_ended(pidfd) {
        return Err(gone());
    }
    match process_owner {
        Ok(uid) if uid == owner => Ok(()),
        Ok(uid) => Err(untrusted(format!(
            "it belongs to uid {owner}, but process {raw} runs as uid {uid}"
        ))),
        Err(source) => Err(HookError::ProcessHidden {
            pid: raw,
            path: path.to_owned(),
            source,
        }),
    }
}

/// Reads a pid file: one positive decimal number, surrounding whitespace allowed. Zero and
/// negative numbers are refused: `kill` would read them as a process group or as "all".
/// The file is opened `O_NOFOLLOW|O_NONBLOCK` and must be a regular file: a symlink
/// could lend it another file's owner, and a FIFO would block the read for ever.
fn read_pid_file(path: &Path) -> Result<(Pid, rustix::fs::Stat), HookError> {
    use rustix::fs::{FileType, Mode, OFlags};
    let read_err = |source| HookError::PidFileRead {
        path: path.to_owned(),
        source,
    };
    let untrusted = |why: &str| HookError::PidFileUntrusted {
        path: path.to_owned(),
        why: why.to_owned(),
    };
    let fd = match rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::LOOP) => {
            return Err(untrusted(
                "it is a symlink; name the pid file itself in the configuration",
            ));
        }
        Err(errno) => return Err(read_err(errno.into())),
    };
    let stat = rustix::fs::fstat(&fd).map_err(|e| read_err(e.into()))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(untrusted("it is not a regular file"));
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(PID_FILE_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    let invalid = || HookError::PidFileInvalid {
        path: path.to_owned(),
    };
    if bytes.len() as u64 > PID_FILE_LIMIT {
        return Err(invalid());
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?.trim();
    if text.is_empty() {
        return Err(HookError::PidFileEmpty {
            path: path.to_owned(),
        });
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let raw: i32 = text.parse().map_err(|_| invalid())?;
    if raw <= 0 {
        return Err(invalid());
    }
    let pid = Pid::from_raw(raw).ok_or_else(invalid)?;
    Ok((pid, stat))
}

#[cfg(test)]
#[path = "pid_file_tests.rs"]
mod tests;
