//! Validates the raw configuration and builds the domain types of `model`, recording
//! every problem with its position. Does not parse TOML (see `raw` and `mod`).

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::model::*;
use super::problems::Problems;
use super::raw::{Inherited, RawCertificate, RawDaemon, RawDefaults, RawMetrics, Src};
use super::values;

mod common;
mod hooks;
mod outputs;
mod overlaps;

pub(super) const DEFAULT_LISTEN: &str = "127.0.0.1:9467";
pub(super) const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// Which checks reach outside the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    /// Everything: `server_ca_file` must be readable and hold a certificate; `owner` and
    /// `group` names must exist in the user database. What the daemon uses.
    Full,
    /// The text alone: no file is read and names that would need the user database are
    /// left unresolved (`None`). For checking example files on another machine; never
    /// for running.
    Syntax,
}

/// The raw sections, each `None` when absent or unreadable.
#[derive(Default)]
pub(super) struct Sections {
    pub daemon: Option<RawDaemon>,
    pub metrics: Option<RawMetrics>,
    pub defaults: Option<RawDefaults>,
    pub certificates: Vec<(Range<usize>, RawCertificate)>,
}

struct Builder<'a> {
    problems: &'a mut Problems,
    checks: Checks,
    base_dir: &'a Path,
}

pub(super) fn build(
    sections: Sections,
    path: &Path,
    base_dir: &Path,
    checks: Checks,
    problems: &mut Problems,
) -> Option<Config> {
    let mut b = Builder {
        problems,
        checks,
        base_dir,
    };
    let daemon = b.daemon(sections.daemon.unwrap_or_default());
    let metrics = b.metrics(sections.metrics.unwrap_or_default());
    let defaults = sections.defaults.unwrap_or_default();
    b.common(&Inherited::defaults_only(&defaults), "[defaults]");

    // No [[certificate]] is valid: the packaged file ships that way, and the daemon
    // then waits for a reload that adds one (see `Config::render_resolved`).
    let mut certificates = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (index, (span, raw)) in sections.certificates.iter().enumerate() {
        if let Some(name) = &raw.name
            && let Some(first) = names.insert(name.get_ref().clone(), name.span().start)
        {
            let line = b.problems.position(first).0;
            b.problems.at(
                name.span(),
                Some(&format!("certificate {:?}", name.get_ref())),
                Some("name"),
                format!("is already used by the certificate on line {line}"),
            );
        }
        if let Some(cert) = b.certificate(index, span.clone(), raw, &defaults) {
            certificates.push((span.clone(), raw, cert));
        }
    }
    b.check_overlaps(&certificates);
    Some(Config {
        path: path.to_owned(),
        daemon,
        metrics,
        certificates: certificates.into_iter().map(|(_, _, c)| c).collect(),
    })
}

fn own<T: Clone>(value: &Option<Spanned<T>>) -> Option<Src<T>> {
    value.clone().map(Src::own)
}

impl Builder<'_> {
    fn fail<T>(&mut self, src: &Src<T>, context: &str, key: &str, message: impl Into<String>) {
        let context = if src.from_defaults {
            "[defaults]"
        } else {
            context
        };
        self.problems
            .at(src.value.span(), Some(context), Some(key), message);
    }

    /// Parses one value if present; a failure is recorded and gives `None`.
    fn check<T, U>(
        &mut self,
        src: Option<Src<T>>,
        context: &str,
        key: &str,
        parse: impl FnOnce(&T) -> Result<U, String>,
    ) -> Option<U> {
        let src = src?;
        match parse(src.get()) {
            Ok(value) => Some(value),
            Err(message) => {
                self.fail(&src, context, key, message);
                None
            }
        }
    }

    fn path(&self, text: &str) -> Result<PathBuf, String> {
        resolve_path(self.base_dir, text)
    }

    fn daemon(&mut self, raw: RawDaemon) -> DaemonSettings {
        let ctx = "[daemon]";
        let log_format = self
            .check(own(&raw.log_format), ctx, "log_format", |s| {
                values::parse_log_format(s)
            })
            .unwrap_or(LogFormat::Text);
        let log_level = self
            .check(own(&raw.log_level), ctx, "log_level", |s| {
                values::check_log_level(s).map(|()| s.clone())
            })
            .unwrap_or_else(|| "info".into());
        let max_concurrent_renewals = self
            .check(
                own(&raw.max_concurrent_renewals),
                ctx,
                "max_concurrent_renewals",
                |n| match usize::try_from(*n) {
                    Ok(n) if (1..=1024).contains(&n) => Ok(n),
                    _ => Err("must be between 1 and 1024".into()),
                },
            )
            .unwrap_or(4);
        DaemonSettings {
            log_format,
            log_level,
            max_concurrent_renewals,
            watch_config: raw.watch_config.as_ref().is_some_and(|s| *s.get_ref()),
        }
    }

    fn metrics(&mut self, raw: RawMetrics) -> MetricsSettings {
        let default = DEFAULT_LISTEN.parse().ok();
        let listen = self
            .check(own(&raw.listen), "[metrics]", "listen", |s| {
                values::parse_listen(s)
            })
            .unwrap_or(default);
        MetricsSettings { listen }
    }

    fn certificate(
        &mut self,
        index: usize,
        span: Range<usize>,
        raw: &RawCertificate,
        defaults: &RawDefaults,
    ) -> Option<CertificateConfig> {
        let before = self.problems.len();
        let ctx = match &raw.name {
            Some(name) => format!("certificate {:?}", name.get_ref()),
            None => format!("certificate #{}", index + 1),
        };
        let ctx = ctx.as_str();
        let name = self.required(&raw.name, &span, ctx, "name", |_, s| {
            values::check_name(s).map(|()| s.clone())
        });
        let protocol = self.required(&raw.protocol, &span, ctx, "protocol", |_, s| {
            values::parse_protocol(s)
        });
        let dir = self.required(&raw.dir, &span, ctx, "dir", |b, s| b.path(s));
        let common = self.common(&Inherited::merge(raw, defaults), ctx);
        let insecure = common.allow_insecure_http;
        let connector_url = self.check(own(&raw.connector_url), ctx, "connector_url", |s| {
            values::parse_url(s, insecure)
        });
        let renewal_url = self.check(own(&raw.renewal_url), ctx, "renewal_url", |s| {
            values::parse_url(s, insecure)
        });
        let base_dir = self.base_dir;
        let token_file = self.check(own(&raw.token_file), ctx, "token_file", |s| {
            resolve_path(base_dir, s)
        });
        let layout = self.layout(raw, &span, ctx, common.files_layout);
        let on_renew = raw
            .on_renew
            .iter()
            .flatten()
            .filter_map(|hook| self.hook(hook, ctx))
            .collect();
        let configured_in_dir = match &layout {
            Some(Layout::Files(files)) => dir.as_ref().map(|dir| files.in_dir(dir)),
            _ => None,
        };
        let outputs = self.outputs(
            raw.output.as_deref().unwrap_or_default(),
            ctx,
            configured_in_dir.as_deref().unwrap_or_default(),
        );
        if self.problems.len() > before {
            return None;
        }
        Some(CertificateConfig {
            name: name?,
            protocol: protocol?,
            dir: dir?,
            owner: common.owner,
            group: common.group,
            cert_mode: common.cert_mode,
            key_mode: common.key_mode,
            server_ca_file: common.server_ca_file,
            connector_url,
            renewal_url,
            token_file,
            allow_insecure_http: common.allow_insecure_http,
            renew: common.renew,
            jitter: common.jitter,
            retry_min: common.retry_min,
            retry_max: common.retry_max,
            key_algorithm: common.key_algorithm,
            rotate_key: common.rotate_key,
            timeout: common.timeout,
            layout: layout?,
            on_renew,
            outputs,
            proxy: common.proxy,
        })
    }

    fn required<U>(
        &mut self,
        value: &Option<Spanned<String>>,
        table: &Range<usize>,
        ctx: &str,
        key: &str,
        parse: impl FnOnce(&Self, &String) -> Result<U, String>,
    ) -> Option<U> {
        let Some(value) = value else {
            self.problems
                .at(table.clone(), Some(ctx), Some(key), "is required");
            return None;
        };
        let parsed = parse(self, value.get_ref());
        self.check(own(&Some(value.clone())), ctx, key, |_| parsed)
    }

    fn layout(
        &mut self,
        raw: &RawCertificate,
        table: &Range<usize>,
        ctx: &str,
        files: bool,
    ) -> Option<Layout> {
        let keys = [
            ("cert_file", &raw.cert_file),
            ("key_file", &raw.key_file),
            ("chain_file", &raw.chain_file),
            ("ca_file", &raw.ca_file),
        ];
        if !files {
            for (key, value) in keys {
                if let Some(value) = value {
                    self.problems.at(
                        value.span(),
                        Some(ctx),
                        Some(key),
                        "only applies with layout = \"files\"; the symlink layout writes into `dir`",
                    );
                }
            }
            return Some(Layout::Symlink);
        }
        let mut paths = Vec::new();
        for (key, value) in keys {
            let path = self.required(value, table, ctx, key, |b, s| b.path(s));
            if let (Some(path), Some(value)) = (&path, value) {
                if let Some((other, _)) = paths.iter().find(|(_, p)| p == path) {
                    self.problems.at(
                        value.span(),
                        Some(ctx),
                        Some(key),
                        format!("is the same file as `{other}`"),
                    );
                }
                paths.push((key, path.clone()));
            }
        }
        let get = |k: &str| {
            paths
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, p)| p.clone())
        };
        Some(Layout::Files(FilePaths {
            cert_file: get("cert_file")?,
            key_file: get("key_file")?,
            chain_file: get("chain_file")?,
            ca_file: get("ca_file")?,
        }))
    }
}

fn resolve_path(base_dir: &Path, text: &str) -> Result<PathBuf, String> {
    if text.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if text.contains('\0') {
        return Err("must not contain a NUL character".into());
    }
    Ok(normalize(&base_dir.join(text)))
}

/// Removes `.` components and repeated separators; `..` is kept (paths may not exist
/// yet, so they are not resolved on disk).
fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}
