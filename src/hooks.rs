//! Runs a certificate's `[[certificate.on_renew]]` hooks after a swap: a signal to a
//! process named by a pid file (`signal`), a systemd reload or a command without a shell
//! (`command`). Does not decide when hooks run, and never touches the certificate files.

use std::time::Duration;

mod command;
mod error;
mod kind;
mod signal;

pub use command::OUTPUT_LIMIT;
pub use error::HookError;
pub use kind::{HookConfig, HookEnv, HookKind, HookSignal, hook_key};
pub use signal::SIGNAL_TIMEOUT;

/// The longest `timeout` a command or systemd hook may have (checked at config load).
pub const MAX_HOOK_TIMEOUT: Duration = Duration::from_secs(600);

/// The result of one hook run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookOutcome {
    pub kind: HookKind,
    pub ok: bool,
    /// The error and its causes, `: `-separated, when `ok` is false.
    pub error: Option<String>,
}

/// Runs `hooks` in order for certificate `name`; a failing hook never stops the next one.
/// Each outcome is also logged with the certificate name.
pub async fn run_hooks(name: &str, hooks: &[HookConfig], env: &HookEnv) -> Vec<HookOutcome> {
    let mut outcomes = Vec::with_capacity(hooks.len());
    for hook in hooks {
        let kind = HookKind::of(hook);
        let result = match hook {
            HookConfig::Signal { signal, pid_file } => signal::send_signal(*signal, pid_file).await,
            HookConfig::SystemdUnit { unit, timeout } => {
                command::run_command(name, kind, &command::systemctl_argv(unit), &[], *timeout)
                    .await
                    .map(drop)
            }
            HookConfig::Command { argv, timeout } => {
                command::run_command(name, kind, argv, &env.vars(), *timeout)
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

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;
