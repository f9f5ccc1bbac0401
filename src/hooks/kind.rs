//! What a hook is: its configuration (`[[certificate.on_renew]]`), its kind (the metric
//! label), the stable key `state.json` records it under, and what it learns about the new
//! certificate. Does not run anything.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

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

impl HookSignal {
    /// The signal's name without `SIG`: `HUP`.
    pub fn name(self) -> &'static str {
        match self {
            HookSignal::Hup => "HUP",
            HookSignal::Usr1 => "USR1",
            HookSignal::Usr2 => "USR2",
            HookSignal::Term => "TERM",
            HookSignal::Int => "INT",
            HookSignal::Quit => "QUIT",
        }
    }
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
            format!("signal:{}:{}", signal.name(), pid_file.display())
        }
        HookConfig::SystemdUnit { unit, .. } => format!("systemd:{unit}"),
        HookConfig::Command { argv, .. } => format!("command:{}", argv.join(" ")),
    }
}
