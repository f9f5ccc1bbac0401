//! Validates `[[certificate.on_renew]]` entries. Does not run hooks.

use toml::Spanned;

use super::super::model::HookConfig;
use super::super::raw::RawHook;
use super::super::values;
use super::{Builder, DEFAULT_HOOK_TIMEOUT, own};
use crate::hooks::MAX_HOOK_TIMEOUT;

impl Builder<'_> {
    pub(super) fn hook(&mut self, hook: &Spanned<RawHook>, ctx: &str) -> Option<HookConfig> {
        let span = hook.span();
        let raw = hook.get_ref();
        let ctx = format!("{ctx}: on_renew");
        let ctx = ctx.as_str();
        let kinds = [
            raw.signal.is_some() || raw.pid_file.is_some(),
            raw.systemd_unit.is_some(),
            raw.command.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            self.problems.at(
                span,
                Some(ctx),
                None,
                "needs exactly one of `signal` (with `pid_file`), `systemd_unit` or `command`",
            );
            return None;
        }
        let timeout = self
            .check(own(&raw.timeout), ctx, "timeout", |s| {
                let timeout = values::parse_duration(s)?;
                // A hook holds up the next one and the daemon's drain: a bound keeps a
                // typo like "30d" from disabling notifications (and timers from overflowing).
                if timeout.is_zero() || timeout > MAX_HOOK_TIMEOUT {
                    return Err(format!(
                        "must be more than zero and at most {}",
                        humantime::format_duration(MAX_HOOK_TIMEOUT)
                    ));
                }
                Ok(timeout)
            })
            .unwrap_or(DEFAULT_HOOK_TIMEOUT);
        if raw.signal.is_some() || raw.pid_file.is_some() {
            if let Some(t) = &raw.timeout {
                self.problems.at(
                    t.span(),
                    Some(ctx),
                    Some("timeout"),
                    "has no effect on a signal hook (bounded at 10s)",
                );
            }
            let signal = self.required(&raw.signal, &span, ctx, "signal", |_, s| {
                values::parse_signal(s)
            });
            let pid_file = self.required(&raw.pid_file, &span, ctx, "pid_file", |b, s| b.path(s));
            return Some(HookConfig::Signal {
                signal: signal?,
                pid_file: pid_file?,
            });
        }
        if let Some(unit) = &raw.systemd_unit {
            let unit = self.check(own(&Some(unit.clone())), ctx, "systemd_unit", |s| {
                values::check_unit_name(s).map(|()| s.clone())
            })?;
            return Some(HookConfig::SystemdUnit { unit, timeout });
        }
        let argv = self.check(own(&raw.command), ctx, "command", |argv| {
            if argv.first().is_none_or(|program| program.trim().is_empty()) {
                Err("must name a program: [\"/path/to/program\", \"arg\", ...]".into())
            } else if argv.iter().any(|a| a.contains('\0')) {
                Err("must not contain NUL characters".into())
            } else {
                Ok(argv.clone())
            }
        })?;
        Some(HookConfig::Command { argv, timeout })
    }
}
