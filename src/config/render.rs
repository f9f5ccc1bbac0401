//! Renders the resolved configuration (defaults filled in) as TOML-like text for
//! `check-config`. Does not validate.

use std::fmt::Write as _;
use std::path::Path;

use super::model::*;
use super::values::{format_duration, format_percent};
use crate::protocol::redacted_proxy;

fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

fn path(p: &Path) -> String {
    quoted(&p.to_string_lossy())
}

/// What `check-config` says of a file without a `[[certificate]]` table.
pub const NO_CERTIFICATES: &str =
    "# no certificates configured: add a [[certificate]] table, then enroll it";

impl Config {
    /// The resolved values, one `key = value` line each, in the layout of the file.
    /// Unset optional keys appear as comments saying what applies instead.
    pub fn render_resolved(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# resolved from {}", self.path.display());
        let _ = writeln!(out, "\n[daemon]");
        let format = match self.daemon.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        let _ = writeln!(out, "log_format = {}", quoted(format));
        let _ = writeln!(out, "log_level = {}", quoted(&self.daemon.log_level));
        let _ = writeln!(
            out,
            "max_concurrent_renewals = {}",
            self.daemon.max_concurrent_renewals
        );
        let _ = writeln!(out, "watch_config = {}", self.daemon.watch_config);
        let _ = writeln!(out, "\n[metrics]");
        match self.metrics.listen {
            Some(addr) => {
                let _ = writeln!(out, "listen = {}", quoted(&addr.to_string()));
            }
            None => {
                let _ = writeln!(out, "listen = \"\"  # disabled");
            }
        }
        if self.certificates.is_empty() {
            let _ = writeln!(out, "\n{NO_CERTIFICATES}");
        }
        for cert in &self.certificates {
            render_certificate(&mut out, cert);
        }
        out
    }
}

fn render_certificate(out: &mut String, cert: &CertificateConfig) {
    let _ = writeln!(out, "\n[[certificate]]");
    let _ = writeln!(out, "name = {}", quoted(&cert.name));
    let _ = writeln!(out, "protocol = {}", quoted(cert.protocol.as_str()));
    let _ = writeln!(out, "dir = {}", path(&cert.dir));
    match cert.owner {
        Some(uid) => {
            let _ = writeln!(out, "owner = {uid}");
        }
        None => {
            let _ = writeln!(out, "# owner: unchanged (the daemon's user)");
        }
    }
    match cert.group {
        Some(gid) => {
            let _ = writeln!(out, "group = {gid}");
        }
        None => {
            let _ = writeln!(out, "# group: unchanged (the daemon's group)");
        }
    }
    let _ = writeln!(out, "cert_mode = \"{:04o}\"", cert.cert_mode);
    let _ = writeln!(out, "key_mode = \"{:04o}\"", cert.key_mode);
    match &cert.server_ca_file {
        Some(p) => {
            let _ = writeln!(out, "server_ca_file = {}", path(p));
        }
        None => {
            let _ = writeln!(out, "# server_ca_file: the system roots");
        }
    }
    match &cert.connector_url {
        Some(url) => {
            let _ = writeln!(out, "connector_url = {}", quoted(url.as_str()));
        }
        None => {
            let _ = writeln!(out, "# connector_url: none (give `enroll --url`)");
        }
    }
    match &cert.renewal_url {
        Some(url) => {
            let _ = writeln!(out, "renewal_url = {}", quoted(url.as_str()));
        }
        None => {
            let _ = writeln!(out, "# renewal_url: learned at enrollment");
        }
    }
    match &cert.token_file {
        Some(p) => {
            let _ = writeln!(out, "token_file = {}", path(p));
        }
        None => {
            let _ = writeln!(out, "# token_file: none (enroll by hand)");
        }
    }
    let _ = writeln!(out, "allow_insecure_http = {}", cert.allow_insecure_http);
    match cert.renew {
        RenewPolicy::At(fraction) => {
            let _ = writeln!(out, "renew_at = {}", quoted(&format_percent(fraction)));
        }
        RenewPolicy::Before(before) => {
            let _ = writeln!(out, "renew_before = {}", quoted(&format_duration(before)));
        }
    }
    let _ = writeln!(out, "jitter = {}", quoted(&format_percent(cert.jitter)));
    let _ = writeln!(
        out,
        "retry_min = {}",
        quoted(&format_duration(cert.retry_min))
    );
    let _ = writeln!(
        out,
        "retry_max = {}",
        quoted(&format_duration(cert.retry_max))
    );
    let _ = writeln!(
        out,
        "key_algorithm = {}",
        quoted(cert.key_algorithm.as_str())
    );
    let _ = writeln!(out, "rotate_key = {}", cert.rotate_key);
    let _ = writeln!(out, "timeout = {}", quoted(&format_duration(cert.timeout)));
    match &cert.proxy {
        ProxySetting::Environment => {
            let _ = writeln!(out, "# proxy: from HTTPS_PROXY / ALL_PROXY / NO_PROXY");
        }
        ProxySetting::Direct => {
            let _ = writeln!(out, "proxy = \"none\"");
        }
        ProxySetting::Url(url) => {
            let _ = writeln!(out, "proxy = {}", quoted(&redacted_proxy(url)));
        }
    }
    match &cert.layout {
        Layout::Symlink => {
            let _ = writeln!(out, "layout = \"symlink\"");
        }
        Layout::Files(files) => {
            let _ = writeln!(out, "layout = \"files\"");
            let _ = writeln!(out, "cert_file = {}", path(&files.cert_file));
            let _ = writeln!(out, "key_file = {}", path(&files.key_file));
            let _ = writeln!(out, "chain_file = {}", path(&files.chain_file));
            let _ = writeln!(out, "ca_file = {}", path(&files.ca_file));
        }
    }
    for output in &cert.outputs {
        render_output(out, output);
    }
    for hook in &cert.on_renew {
        let _ = writeln!(out, "\n[[certificate.on_renew]]");
        match hook {
            HookConfig::Signal { signal, pid_file } => {
                let _ = writeln!(out, "signal = {}", quoted(signal.name()));
                let _ = writeln!(out, "pid_file = {}", path(pid_file));
            }
            HookConfig::SystemdUnit { unit, timeout } => {
                let _ = writeln!(out, "systemd_unit = {}", quoted(unit));
                let _ = writeln!(out, "timeout = {}", quoted(&format_duration(*timeout)));
            }
            HookConfig::Command { argv, timeout } => {
                let list: Vec<String> = argv.iter().map(|a| quoted(a)).collect();
                let _ = writeln!(out, "command = [{}]", list.join(", "));
                let _ = writeln!(out, "timeout = {}", quoted(&format_duration(*timeout)));
            }
        }
    }
}

fn render_output(out: &mut String, output: &OutputConfig) {
    let _ = writeln!(out, "\n[[certificate.output]]");
    match output {
        OutputConfig::PemBundle { file, parts } => {
            let _ = writeln!(out, "kind = \"pem-bundle\"");
            let _ = writeln!(out, "file = {}", quoted(file));
            let list: Vec<String> = parts.iter().map(|p| quoted(p.as_str())).collect();
            let _ = writeln!(out, "parts = [{}]", list.join(", "));
        }
        OutputConfig::Pkcs12 {
            file,
            password_file,
            truststore,
        } => {
            let _ = writeln!(out, "kind = \"pkcs12\"");
            let _ = writeln!(out, "file = {}", quoted(file));
            let _ = writeln!(out, "password_file = {}", path(password_file));
            match truststore {
                Some(name) => {
                    let _ = writeln!(out, "truststore = {}", quoted(name));
                }
                None => {
                    let _ = writeln!(out, "# truststore: none");
                }
            }
        }
    }
}
