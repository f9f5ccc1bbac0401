//! Runs a certificate's `[[certificate.on_renew]]` hooks after a swap: a signal to a
//! process named by a pid file, a systemd reload, or a command without a shell. Does not
//! decide when hooks run, and never touches the certificate files.

use std::ffi::OsStr;
use std::io::{self, Read as _};
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

/// At most this much of each output stream of a command is kept and logged; the rest is
/// read and counted, so a chatty hook can neither block on a full pipe nor flood the log.
pub const OUTPUT_LIMIT: usize = 64 * 1024;

/// The longest `timeout` a command or systemd hook may have (checked at config load).
pub const MAX_HOOK_TIMEOUT: Duration = Duration::from_secs(600);

/// How long a signal hook may take, the pid file's read included: a pid file on a file
/// system that hangs must not hold up the next hook nor the daemon.
pub const SIGNAL_TIMEOUT: Duration = Duration::from_secs(10);

/// A pid file longer than this is not a pid file.
const PID_FILE_LIMIT: u64 = 4096;

/// Where processes are looked up to learn who owns them.
const PROC: &str = "/proc";

/// How long output readers may run on after the command exited or was killed (a
/// background process it started may keep the pipes open).
const READER_GRACE: Duration = Duration::from_secs(1);

/// A POSIX signal a `signal` hook may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookSignal {
    Hup,
    Usr1,
    Usr2,
    Term,
    Int,
    Quit,
}

/// One `[[certificate.on_renew]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub enum HookConfig {
    /// Send `signal` to the PID read from `pid_file`.
    Signal {
        signal: HookSignal,
        pid_file: PathBuf,
    },
    /// `systemctl try-reload-or-restart <unit>`.
    SystemdUnit { unit: String, timeout: Duration },
    /// Run argv (no shell) with the `KYMA_CERTD_*` environment.
    Command {
        argv: Vec<String>,
        timeout: Duration,
    },
}

/// What a hook learns about the new certificate, through `KYMA_CERTD_*` variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookEnv {
    /// The certificate's name in the configuration.
    pub name: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub chain: PathBuf,
    pub ca: PathBuf,
    /// SHA-256 of the leaf certificate's DER, lower-case hex.
    pub fingerprint: String,
    /// The leaf's notAfter, RFC 3339.
    pub not_after: String,
}

impl HookEnv {
    /// The environment variables a command hook receives, on top of the inherited ones.
    pub fn vars(&self) -> [(&'static str, &OsStr); 7] {
        [
            ("KYMA_CERTD_NAME", OsStr::new(&self.name)),
            ("KYMA_CERTD_CERT", self.cert.as_os_str()),
            ("KYMA_CERTD_KEY", self.key.as_os_str()),
            ("KYMA_CERTD_CHAIN", self.chain.as_os_str()),
            ("KYMA_CERTD_CA", self.ca.as_os_str()),
            ("KYMA_CERTD_FINGERPRINT", OsStr::new(&self.fingerprint)),
            ("KYMA_CERTD_NOT_AFTER", OsStr::new(&self.not_after)),
        ]
    }
}

/// The kind of a hook: the `hook` label of `hook_runs_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookKind {
    Signal,
    Systemd,
    Command,
}

impl HookKind {
    pub const ALL: [HookKind; 3] = [HookKind::Signal, HookKind::Systemd, HookKind::Command];

    pub fn of(hook: &HookConfig) -> Self {
        match hook {
            HookConfig::Signal { .. } => HookKind::Signal,
            HookConfig::SystemdUnit { .. } => HookKind::Systemd,
            HookConfig::Command { .. } => HookKind::Command,
        }
    }

    pub fn as_label(self) -> &'static str {
        match self {
            HookKind::Signal => "signal",
            HookKind::Systemd => "systemd",
            HookKind::Command => "command",
        }
    }
}

/// A stable name for a hook, under which `state.json` records that it was told about a
/// certificate: what it does, not where it stands in the list.
pub fn hook_key(hook: &HookConfig) -> String {
    match hook {
        HookConfig::Signal { signal, pid_file } => {
            format!("signal:{}:{}", signal_of(*signal).1, pid_file.display())
        }
        HookConfig::SystemdUnit { unit, .. } => format!("systemd:{unit}"),
        HookConfig::Command { argv, .. } => format!("command:{}", argv.join(" ")),
    }
}

/// The result of one hook run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookOutcome {
    pub kind: HookKind,
    pub ok: bool,
    /// The error and its causes, `: `-separated, when `ok` is false.
    pub error: Option<String>,
}

/// Why a hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("cannot read pid file {path}")]
    PidFileRead { path: PathBuf, source: io::Error },
    #[error("pid file {path} is empty")]
    PidFileEmpty { path: PathBuf },
    #[error("pid file {path} does not hold a single positive process id")]
    PidFileInvalid { path: PathBuf },
    #[error("process {pid} from pid file {path} does not exist (stale pid file)")]
    ProcessGone { pid: i32, path: PathBuf },
    #[error("pid file {path} is not trusted: {why}")]
    PidFileUntrusted { path: PathBuf, why: String },
    /// The process could not be looked up (hidden by `ProtectProc=`, say): whose it is
    /// is unknown, so it is not signalled.
    #[error(
        "cannot see process {pid} from pid file {path}, so cannot check that its owner owns the pid file; not signalling it (a pid file owned by root, or a view of other users' processes, e.g. ProtectProc=noaccess, lets the check pass)"
    )]
    ProcessHidden {
        pid: i32,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot open process {pid} from pid file {path}")]
    ProcessOpen {
        pid: i32,
        path: PathBuf,
        source: io::Error,
    },
    #[error("signalling the process from pid file {path} did not finish within {timeout:?}")]
    SignalTimedOut { path: PathBuf, timeout: Duration },
    #[error("cannot send SIG{signal} to process {pid} from pid file {path}")]
    Kill {
        signal: &'static str,
        pid: i32,
        path: PathBuf,
        source: io::Error,
    },
    #[error("the command is empty")]
    EmptyCommand,
    #[error("cannot start {program}")]
    Spawn { program: String, source: io::Error },
    #[error("cannot wait for {program}")]
    Wait { program: String, source: io::Error },
    #[error("{program} did not finish within {timeout:?} and was killed")]
    TimedOut { program: String, timeout: Duration },
    #[error("{program} {status}")]
    Failed { program: String, status: String },
}

/// Runs `hooks` in order for certificate `name`; a failing hook never stops the next one.
/// Each outcome is also logged with the certificate name.
pub async fn run_hooks(name: &str, hooks: &[HookConfig], env: &HookEnv) -> Vec<HookOutcome> {
    let mut outcomes = Vec::with_capacity(hooks.len());
    for hook in hooks {
        let kind = HookKind::of(hook);
        let result = match hook {
            HookConfig::Signal { signal, pid_file } => send_signal(*signal, pid_file).await,
            HookConfig::SystemdUnit { unit, timeout } => {
                run_command(name, kind, &systemctl_argv(unit), &[], *timeout)
                    .await
                    .map(drop)
            }
            HookConfig::Command { argv, timeout } => {
                run_command(name, kind, argv, &env.vars(), *timeout)
                    .await
                    .map(drop)
            }
        };
        let outcome = match result {
            Ok(()) => {
                tracing::info!(cert = name, hook = kind.as_label(), "hook succeeded");
                HookOutcome {
                    kind,
                    ok: true,
                    error: None,
                }
            }
            Err(err) => {
                let error = crate::errors::error_chain(&err);
                tracing::warn!(cert = name, hook = kind.as_label(), %error, "hook failed");
                HookOutcome {
                    kind,
                    ok: false,
                    error: Some(error),
                }
            }
        };
        outcomes.push(outcome);
    }
    outcomes
}

fn signal_of(signal: HookSignal) -> (Signal, &'static str) {
    match signal {
        HookSignal::Hup => (Signal::HUP, "HUP"),
        HookSignal::Usr1 => (Signal::USR1, "USR1"),
        HookSignal::Usr2 => (Signal::USR2, "USR2"),
        HookSignal::Term => (Signal::TERM, "TERM"),
        HookSignal::Int => (Signal::INT, "INT"),
        HookSignal::Quit => (Signal::QUIT, "QUIT"),
    }
}

/// Sends `signal` to the process in `pid_file`, within [`SIGNAL_TIMEOUT`]. The file
/// system work runs on the blocking pool: a pid file on a hung mount times out instead
/// of stopping the event loop.
async fn send_signal(signal: HookSignal, pid_file: &Path) -> Result<(), HookError> {
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
    let (sig, label) = signal_of(signal);
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

fn systemctl_argv(unit: &str) -> Vec<String> {
    [
        "systemctl",
        "--no-ask-password",
        "try-reload-or-restart",
        "--",
        unit,
    ]
    .map(String::from)
    .to_vec()
}

/// What a finished command left behind, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CommandReport {
    status: ExitStatus,
    stdout: Captured,
    stderr: Captured,
}

/// How much of one output stream was kept (logged) and how much was dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Captured {
    kept: usize,
    dropped: u64,
    lines: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Runs `argv` without a shell, stdin null, with the inherited environment plus `env`,
/// in its own process group. At `timeout` the whole group is killed and the child reaped.
/// A non-zero exit or a death by signal is an error.
async fn run_command(
    name: &str,
    kind: HookKind,
    argv: &[String],
    env: &[(&str, &OsStr)],
    timeout: Duration,
) -> Result<CommandReport, HookError> {
    let (program, args) = argv.split_first().ok_or(HookError::EmptyCommand)?;
    let deadline = Instant::now() + timeout;
    let mut command = tokio::process::Command::new(program);
    let mut child = without_service_manager_env(&mut command)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| HookError::Spawn {
            program: program.clone(),
            source,
        })?;
    let pid = child.id();
    let mut group = GroupGuard { pid, armed: true };
    let stdout = child
        .stdout
        .take()
        .map(|out| spawn_capture(out, name, kind, Stream::Stdout));
    let stderr = child
        .stderr
        .take()
        .map(|err| spawn_capture(err, name, kind, Stream::Stderr));

    let waited = tokio::time::timeout_at(deadline, child.wait()).await;
    group.armed = false;
    let status = match waited {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(source)) => Err(HookError::Wait {
            program: program.clone(),
            source,
        }),
        Err(_elapsed) => {
            kill_group(pid);
            // `kill` sends SIGKILL to the child (again) and reaps it.
            if let Err(err) = child.kill().await {
                tracing::warn!(cert = name, hook = kind.as_label(), %err, "cannot reap a timed-out hook");
            }
            Err(HookError::TimedOut {
                program: program.clone(),
                timeout,
            })
        }
    };
    let readers_deadline = deadline.max(Instant::now()) + READER_GRACE;
    let stdout = finish_capture(stdout, readers_deadline, name, kind, Stream::Stdout).await;
    let stderr = finish_capture(stderr, readers_deadline, name, kind, Stream::Stderr).await;
    let status = status?;
    if status.success() {
        return Ok(CommandReport {
            status,
            stdout,
            stderr,
        });
    }
    let status = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => format!("ended abnormally ({status})"),
    };
    Err(HookError::Failed {
        program: program.clone(),
        status,
    })
}

/// Variables through which systemd talks to the daemon itself. A hook that inherited them
/// could send notifications in the daemon's name (systemd logs and drops them, "reception
/// only permitted for main PID"), believe it runs under the daemon's watchdog, or take
/// sockets passed to the daemon as its own.
const SERVICE_MANAGER_VARS: [&str; 6] = [
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
];

/// Removes [`SERVICE_MANAGER_VARS`] from what `command` inherits.
fn without_service_manager_env(
    command: &mut tokio::process::Command,
) -> &mut tokio::process::Command {
    for var in SERVICE_MANAGER_VARS {
        command.env_remove(var);
    }
    command
}

/// Kills a hook's process group when the hook is abandoned before it ended (the daemon
/// stops and drops the running hook): `kill_on_drop` alone would reach only the child,
/// leaving whatever it started running after the daemon is gone.
struct GroupGuard {
    pid: Option<u32>,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            kill_group(self.pid);
        }
    }
}

/// SIGKILLs the process group led by `pid` (the hook and anything it started).
fn kill_group(pid: Option<u32>) {
    let group = pid
        .and_then(|p| i32::try_from(p).ok())
        .filter(|&p| p > 0)
        .and_then(Pid::from_raw);
    if let Some(group) = group {
        // ESRCH only means the group is already gone.
        let _ = rustix::process::kill_process_group(group, Signal::KILL);
    }
}

fn spawn_capture<R>(reader: R, name: &str, kind: HookKind, stream: Stream) -> JoinHandle<Captured>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let name = name.to_owned();
    let span = tracing::debug_span!("hook_output", stream = stream.as_str());
    tokio::spawn(async move { capture(reader, &name, kind, stream).await }.instrument(span))
}

async fn finish_capture(
    handle: Option<JoinHandle<Captured>>,
    deadline: Instant,
    name: &str,
    kind: HookKind,
    stream: Stream,
) -> Captured {
    let Some(mut handle) = handle else {
        return Captured::default();
    };
    match tokio::time::timeout_at(deadline, &mut handle).await {
        Ok(Ok(captured)) => captured,
        Ok(Err(_join_error)) => Captured::default(),
        Err(_elapsed) => {
            handle.abort();
            tracing::warn!(
                cert = name,
                hook = kind.as_label(),
                stream = stream.as_str(),
                "hook output still open after the command ended (a background process holds it); stopped reading"
            );
            Captured::default()
        }
    }
}

/// Reads `reader` to its end, logging each line of the first [`OUTPUT_LIMIT`] bytes with
/// the certificate name (stdout at info, stderr at warn), counting the rest.
async fn capture<R: AsyncRead + Unpin>(
    mut reader: R,
    name: &str,
    kind: HookKind,
    stream: Stream,
) -> Captured {
    let mut stats = Captured::default();
    let mut buf = vec![0u8; 8192];
    let mut line = Vec::new();
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let take = n.min(OUTPUT_LIMIT - stats.kept);
        stats.kept += take;
        stats.dropped += (n - take) as u64;
        for piece in buf[..take].split_inclusive(|&b| b == b'\n') {
            match piece.strip_suffix(b"\n") {
                Some(body) => {
                    line.extend_from_slice(body);
                    emit_line(&line, name, kind, stream);
                    stats.lines += 1;
                    line.clear();
                }
                None => line.extend_from_slice(piece),
            }
        }
    }
    if !line.is_empty() {
        emit_line(&line, name, kind, stream);
        stats.lines += 1;
    }
    if stats.dropped > 0 {
        tracing::warn!(
            cert = name,
            hook = kind.as_label(),
            stream = stream.as_str(),
            dropped_bytes = stats.dropped,
            "hook output beyond {OUTPUT_LIMIT} bytes was not logged"
        );
    }
    stats
}

fn emit_line(line: &[u8], name: &str, kind: HookKind, stream: Stream) {
    let text = String::from_utf8_lossy(line);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    let hook = kind.as_label();
    match stream {
        Stream::Stdout => tracing::info!(cert = name, hook, stream = "stdout", "{text}"),
        Stream::Stderr => tracing::warn!(cert = name, hook, stream = "stderr", "{text}"),
    }
}

#[cfg(test)]
mod pid_file_tests;
#[cfg(test)]
mod tests;
