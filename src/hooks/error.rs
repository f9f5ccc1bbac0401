//! Why a hook failed, for every kind of hook.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

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
