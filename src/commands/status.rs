//! `status`: what is on disk and in `state.json`, without network. A table on a
//! terminal (coloured), JSON with `--json`. Exits 3 when a certificate needs a new
//! enrollment (missing, expired, revoked), so scripts can alert on it; a refused one is
//! still valid and retried, and exits 0 like a backoff.

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::config::CertificateConfig;
use crate::exit::{CommandError, CommandResult};
use crate::flow;
use crate::pki::verify::timestamp;
use crate::store::Store;

/// One certificate's status, as printed in JSON.
#[derive(Debug, Serialize)]
pub struct CertificateStatus {
    pub name: String,
    pub protocol: &'static str,
    pub state: &'static str,
    /// Why the state is `refused`, `revoked` or `missing`: which refusal, the revocation's
    /// record, or whether the certificate was ever enrolled here.
    pub reason: Option<String>,
    pub dir: String,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub fingerprint_sha256: Option<String>,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    pub seconds_left: Option<i64>,
    pub next_renewal: Option<String>,
    pub consecutive_failures: u32,
    pub last_success: Option<String>,
    pub last_error: Option<String>,
    /// The `on_renew` hooks that have not heard of the current certificate.
    pub hooks_pending: Vec<String>,
    /// Why the last round of hooks failed, when some are pending.
    pub hook_error: Option<String>,
    /// Why the last token from `token_file` did not enroll.
    pub token_error: Option<String>,
}

pub fn status(config_path: &Path, name: Option<&str>, json: bool) -> CommandResult {
    let config = super::load_config(config_path)?;
    let now = SystemTime::now();
    let mut statuses = Vec::new();
    for cert in super::selected(&config, name)? {
        statuses.push(inspect(cert, now).map_err(|e| super::flow_error(&cert.name, e))?);
    }
    if config.certificates.is_empty() && !json {
        println!(
            "no certificates configured in {}: add a [[certificate]] table",
            config.path.display()
        );
        return Ok(());
    }
    if json {
        let text = serde_json::to_string_pretty(&statuses).map_err(CommandError::failed)?;
        println!("{text}");
    } else {
        print!("{}", table(&statuses, std::io::stdout().is_terminal()));
    }
    let needs_enrollment: Vec<&str> = statuses
        .iter()
        .filter(|s| matches!(s.state, "missing" | "expired" | "revoked"))
        .map(|s| s.name.as_str())
        .collect();
    if needs_enrollment.is_empty() {
        Ok(())
    } else {
        Err(CommandError::reenroll(anyhow::anyhow!(
            "re-enrollment needed for {}",
            needs_enrollment.join(", ")
        )))
    }
}

fn inspect(
    cert: &CertificateConfig,
    now: SystemTime,
) -> Result<CertificateStatus, flow::FlowError> {
    let store = Store::new(cert);
    let current = match store.load_current() {
        Ok(current) => current.map(|c| c.info),
        // The key is readable by the daemon's user only (key_mode 0600): a member of its
        // group sees the certificate without the check that the key matches it.
        Err(e) if permission_denied(&e) => store.current_certificate()?,
        Err(e) => return Err(e.into()),
    };
    let state = store.read_state()?;
    let mut status = CertificateStatus {
        name: cert.name.clone(),
        protocol: cert.protocol.as_str(),
        state: "missing",
        reason: None,
        dir: cert.dir.display().to_string(),
        subject: None,
        issuer: None,
        fingerprint_sha256: None,
        not_before: None,
        not_after: None,
        seconds_left: None,
        next_renewal: None,
        consecutive_failures: state.consecutive_failures,
        last_success: state.last_success.map(timestamp),
        last_error: state.last_error.clone(),
        hooks_pending: Vec::new(),
        hook_error: None,
        token_error: state.token_error.clone(),
    };
    let Some(info) = &current else {
        status.reason = Some(match (&state.revoked, state.enrolled_at) {
            // `revoke` removes what it revoked: say so, rather than only "missing".
            (Some(r), _) => format!(
                "{} was revoked at {} and removed with its key; enroll with a new one-time token",
                &r.fingerprint[..r.fingerprint.len().min(16)],
                timestamp(r.at)
            ),
            (None, Some(at)) => format!(
                "enrolled at {}, but no certificate is on disk now",
                timestamp(at)
            ),
            (None, None) => "never enrolled here: run `kyma-certd enroll`".to_owned(),
        });
        return Ok(status);
    };
    let refusal = state.refusal_of(&info.fingerprint_sha256);
    status.state = if info.not_after <= now {
        "expired"
    } else if state.is_revoked(&info.fingerprint_sha256) {
        "revoked"
    } else if refusal.is_some() {
        "refused"
    } else if state.consecutive_failures > 0 {
        "backoff"
    } else {
        "valid"
    };
    let pending = crate::notify::pending(cert, &state, &info.fingerprint_sha256);
    if !pending.is_empty() {
        status.hook_error = pending.last_error;
        status.hooks_pending = pending.hooks;
    }
    status.reason = match status.state {
        "revoked" => state.revoked.as_ref().map(|r| {
            format!(
                "revoked since {}; probed every retry_max until it expires",
                timestamp(r.at)
            )
        }),
        "refused" => refusal.map(str::to_owned),
        _ => None,
    };
    status.subject = Some(info.subject.clone());
    status.issuer = Some(info.issuer.clone());
    status.fingerprint_sha256 = Some(info.fingerprint_sha256.clone());
    status.not_before = Some(timestamp(info.not_before));
    status.not_after = Some(timestamp(info.not_after));
    status.seconds_left = Some(signed_seconds(info.not_after, now));
    if status.state != "expired" {
        let due = info.renewal_due(cert.renew, cert.jitter);
        let next = match state.next_attempt {
            Some(retry) if status.state != "valid" => retry,
            _ => due,
        };
        status.next_renewal = Some(timestamp(next));
    }
    Ok(status)
}

/// Whether reading the store failed only for lack of permission.
fn permission_denied(error: &crate::store::StoreError) -> bool {
    match error {
        crate::store::StoreError::Io { source, .. } => {
            source.kind() == std::io::ErrorKind::PermissionDenied
        }
        _ => false,
    }
}

fn signed_seconds(t: SystemTime, now: SystemTime) -> i64 {
    match t.duration_since(now) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// A human duration with one or two units: `41d 3h`, `5m 2s`, `expired 3h ago`.
pub fn human_left(seconds: i64) -> String {
    let abs = Duration::from_secs(seconds.unsigned_abs());
    let text = two_units(abs);
    if seconds < 0 {
        format!("expired {text} ago")
    } else {
        text
    }
}

fn two_units(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {seconds}s"),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

fn table(statuses: &[CertificateStatus], colour: bool) -> String {
    let paint = |state: &str| -> String {
        if !colour {
            return state.to_owned();
        }
        let code = match state {
            "valid" => "32",
            "renewing" | "backoff" | "refused" => "33",
            _ => "31;1",
        };
        format!("\x1b[{code}m{state:<8}\x1b[0m")
    };
    let mut out = format!(
        "{:<20} {:<8} {:<10} {:<22} {:<16} {}\n",
        "NAME", "STATE", "PROTOCOL", "EXPIRES IN", "NEXT RENEWAL", "FINGERPRINT"
    );
    for s in statuses {
        out.push_str(&format!(
            "{:<20} {:<8} {:<10} {:<22} {:<16} {}\n",
            s.name,
            paint(s.state),
            s.protocol,
            s.seconds_left.map(human_left).unwrap_or_else(|| "-".into()),
            s.next_renewal
                .as_deref()
                .map(in_from_now)
                .unwrap_or_else(|| "-".into()),
            s.fingerprint_sha256
                .as_deref()
                .map(|f| &f[..f.len().min(16)])
                .unwrap_or("-"),
        ));
    }
    for s in statuses {
        out.push_str(&format!("\n{}:\n", s.name));
        let mut line = |key: &str, value: Option<&str>| {
            if let Some(value) = value {
                out.push_str(&format!("  {key:<13} {value}\n"));
            }
        };
        line("reason", s.reason.as_deref());
        line("subject", s.subject.as_deref());
        line("issuer", s.issuer.as_deref());
        line("sha256", s.fingerprint_sha256.as_deref());
        line("not before", s.not_before.as_deref());
        line("not after", s.not_after.as_deref());
        line("next renewal", s.next_renewal.as_deref());
        line("last success", s.last_success.as_deref());
        line("last error", s.last_error.as_deref());
        if !s.hooks_pending.is_empty() {
            let pending = format!("{} ({})", s.hooks_pending.len(), s.hooks_pending.join(", "));
            line("hooks pending", Some(pending.as_str()));
            line("hook error", s.hook_error.as_deref());
        }
        line("token error", s.token_error.as_deref());
        line("directory", Some(&s.dir));
    }
    out
}

fn in_from_now(rfc3339: &str) -> String {
    let Ok(t) =
        time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
    else {
        return rfc3339.to_owned();
    };
    let seconds = (t - time::OffsetDateTime::now_utc()).whole_seconds();
    if seconds <= 0 {
        "now".to_owned()
    } else {
        format!("in {}", two_units(Duration::from_secs(seconds as u64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_reads_in_two_units() {
        assert_eq!(human_left(41 * 86_400 + 3 * 3600 + 59), "41d 3h");
        assert_eq!(human_left(302), "5m 2s");
        assert_eq!(human_left(-3 * 3600 - 60), "expired 3h 1m ago");
        assert_eq!(human_left(9), "9s");
    }
}
