//! The settings a certificate may inherit from `[defaults]` (owner and modes, trust, the
//! renewal policy, retries, the key, the timeout, the layout, the proxy), validated once
//! for `[defaults]` and once for each certificate with its own values merged in.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::super::model::{KeyAlgorithm, ProxySetting, RenewPolicy};
use super::super::raw::Inherited;
use super::super::values::{self, IdKind, ModeKind};
use super::{Builder, Checks, resolve_path};

/// The validated inheritable part of a certificate.
pub(super) struct Common {
    pub(super) owner: Option<u32>,
    pub(super) group: Option<u32>,
    pub(super) cert_mode: u32,
    pub(super) key_mode: u32,
    pub(super) server_ca_file: Option<PathBuf>,
    pub(super) allow_insecure_http: bool,
    pub(super) renew: RenewPolicy,
    pub(super) jitter: f64,
    pub(super) retry_min: Duration,
    pub(super) retry_max: Duration,
    pub(super) key_algorithm: KeyAlgorithm,
    pub(super) rotate_key: bool,
    pub(super) timeout: Duration,
    pub(super) files_layout: bool,
    pub(super) proxy: ProxySetting,
}

impl Builder<'_> {
    pub(super) fn common(&mut self, m: &Inherited, ctx: &str) -> Common {
        let lookup = self.checks == Checks::Full;
        let owner = self
            .check(m.owner.clone(), ctx, "owner", |s| {
                values::resolve_id(s, IdKind::User, lookup)
            })
            .flatten();
        let group = self
            .check(m.group.clone(), ctx, "group", |s| {
                values::resolve_id(s, IdKind::Group, lookup)
            })
            .flatten();
        let cert_mode = self
            .check(m.cert_mode.clone(), ctx, "cert_mode", |s| {
                values::parse_mode(s, ModeKind::Certificate)
            })
            .unwrap_or(0o644);
        let key_mode = self
            .check(m.key_mode.clone(), ctx, "key_mode", |s| {
                values::parse_mode(s, ModeKind::Key)
            })
            .unwrap_or(0o600);
        let base_dir = self.base_dir;
        let server_ca_file = self.check(m.server_ca_file.clone(), ctx, "server_ca_file", |s| {
            resolve_path(base_dir, s)
        });
        if let (Some(path), Some(src), Checks::Full) =
            (&server_ca_file, &m.server_ca_file, self.checks)
            && let Err(message) = check_ca_file(path)
        {
            self.fail(src, ctx, "server_ca_file", message);
        }
        let allow_insecure_http = m.allow_insecure_http.as_ref().is_some_and(|s| *s.get());

        let renew_at = self.check(m.renew_at.clone(), ctx, "renew_at", |s| {
            values::parse_percent(s).and_then(|f| {
                if f > 0.0 && f < 1.0 {
                    Ok(f)
                } else {
                    Err("must be between 0% and 100% (exclusive)".into())
                }
            })
        });
        let renew_before = self.check(m.renew_before.clone(), ctx, "renew_before", |s| {
            values::parse_duration(s)
        });
        if let (Some(_), Some(src)) = (&m.renew_at, &m.renew_before) {
            self.fail(
                src,
                ctx,
                "renew_before",
                "cannot be combined with `renew_at`",
            );
        }
        let renew = match (renew_at, renew_before) {
            (_, Some(before)) if m.renew_at.is_none() => RenewPolicy::Before(before),
            (Some(at), _) => RenewPolicy::At(at),
            _ => RenewPolicy::At(0.7),
        };
        let jitter = self
            .check(m.jitter.clone(), ctx, "jitter", |s| {
                values::parse_percent(s).and_then(|f| {
                    if (0.0..=0.5).contains(&f) {
                        Ok(f)
                    } else {
                        Err("must be between 0% and 50%".into())
                    }
                })
            })
            .unwrap_or(0.05);
        if let RenewPolicy::At(at) = renew
            && jitter >= at
        {
            let src = m.jitter.as_ref().or(m.renew_at.as_ref());
            if let Some(src) = src {
                self.fail(
                    src,
                    ctx,
                    "jitter",
                    "must be smaller than `renew_at`, or a fresh certificate would be due at once",
                );
            }
        }
        let retry_min = self
            .check(m.retry_min.clone(), ctx, "retry_min", |s| {
                values::parse_duration(s)
            })
            .unwrap_or(Duration::from_secs(30));
        let retry_max = self
            .check(m.retry_max.clone(), ctx, "retry_max", |s| {
                values::parse_duration(s)
            })
            .unwrap_or(Duration::from_secs(3600));
        if retry_min > retry_max
            && let Some(src) = m.retry_min.as_ref().or(m.retry_max.as_ref())
        {
            self.fail(
                src,
                ctx,
                "retry_min",
                format!(
                    "{} is longer than retry_max {}",
                    values::format_duration(retry_min),
                    values::format_duration(retry_max)
                ),
            );
        }
        let key_algorithm = self
            .check(m.key_algorithm.clone(), ctx, "key_algorithm", |s| {
                values::parse_key_algorithm(s)
            })
            .unwrap_or(KeyAlgorithm::Rsa4096);
        let rotate_key = m.rotate_key.as_ref().is_none_or(|s| *s.get());
        let timeout = self
            .check(m.timeout.clone(), ctx, "timeout", |s| {
                values::parse_duration(s)
            })
            .unwrap_or(Duration::from_secs(30));
        let files_layout = self
            .check(m.layout.clone(), ctx, "layout", |s| match s.as_str() {
                "symlink" => Ok(false),
                "files" => Ok(true),
                _ => Err("must be \"symlink\" or \"files\"".into()),
            })
            .unwrap_or(false);
        let proxy = self
            .check(m.proxy.clone(), ctx, "proxy", |s| values::parse_proxy(s))
            .unwrap_or_default();
        Common {
            owner,
            group,
            cert_mode,
            key_mode,
            server_ca_file,
            allow_insecure_http,
            renew,
            jitter,
            retry_min,
            retry_max,
            key_algorithm,
            rotate_key,
            timeout,
            files_layout,
            proxy,
        }
    }
}

/// The trust file for the connector's TLS must be readable and hold certificates.
fn check_ca_file(path: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot be read: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| "is not PEM text".to_string())?;
    crate::pki::x509::parse_pem_bundle(&text)
        .map(|_| ())
        .map_err(|e| format!("holds no usable PEM certificate: {e}"))
}
