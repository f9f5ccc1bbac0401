//! The `command` and `systemd` hooks: runs a program without a shell, with the
//! certificate's environment, in its own process group that is killed at the timeout, and
//! logs a bounded share of its output.

use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use super::error::HookError;
use super::kind::HookKind;

/// At most this much of each output stream of a command is kept and logged; the rest is
/// read and counted, so a chatty hook can neither block on a full pipe nor flood the log.
pub const OUTPUT_LIMIT: usize = 64 * 1024;

/// How long output readers may run on after the command exited or was killed (a
/// background process it started may keep the pipes open).
const READER_GRACE: Duration = Duration::from_secs(1);

pub(super) fn systemctl_argv(unit: &str) -> Vec<String> {
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
pub(super) struct CommandReport {
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
pub(super) async fn run_command(
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
#[path = "command_tests.rs"]
mod tests;
