//! The validated configuration: what the rest of the daemon reads. Built from the raw
//! TOML by `config::load`; never constructed from untrusted input directly. The value
//! types that belong to one part of the daemon (the key algorithm, the protocol and proxy,
//! the hooks, the outputs, the renewal policy, the log format) are defined by that part
//! and re-exported here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

pub use crate::hooks::{HookConfig, HookSignal};
pub use crate::logging::LogFormat;
pub use crate::outputs::{OutputConfig, PemPart};
pub use crate::pki::keys::KeyAlgorithm;
pub use crate::protocol::{Protocol, ProxySetting};
pub use crate::schedule::RenewPolicy;

/// The whole, validated configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was read from (for messages and reloads).
    pub path: PathBuf,
    pub daemon: DaemonSettings,
    pub metrics: MetricsSettings,
    pub certificates: Vec<CertificateConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DaemonSettings {
    pub log_format: LogFormat,
    /// A tracing filter (`info`, `kyma_certd=debug`); `RUST_LOG` overrides it.
    pub log_level: String,
    /// At least 1.
    pub max_concurrent_renewals: usize,
    /// Reload when the configuration file changes (an edit, a ConfigMap update), not
    /// only on SIGHUP.
    pub watch_config: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSettings {
    /// `None` when `listen = ""` disables the endpoint.
    pub listen: Option<SocketAddr>,
}

/// How a certificate's files are laid out on disk (DESIGN.md section 4).
#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    /// `dir/{cert,key,chain,ca}.pem` are symlinks into `dir/current -> gen-.../`.
    Symlink,
    /// Plain files at explicit paths, replaced one by one with a journal.
    Files(FilePaths),
}

#[derive(Debug, Clone, PartialEq)]
pub struct FilePaths {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub chain_file: PathBuf,
    pub ca_file: PathBuf,
}

impl FilePaths {
    /// Those of the four files that live directly in `dir`.
    pub fn in_dir(&self, dir: &std::path::Path) -> Vec<&std::path::Path> {
        [
            &self.cert_file,
            &self.key_file,
            &self.chain_file,
            &self.ca_file,
        ]
        .into_iter()
        .map(PathBuf::as_path)
        .filter(|p| p.parent() == Some(dir))
        .collect()
    }
}

/// One `[[certificate]]`, with `[defaults]` already applied.
#[derive(Debug, Clone, PartialEq)]
pub struct CertificateConfig {
    /// `[a-z0-9_-]+`, unique in the file.
    pub name: String,
    pub protocol: Protocol,
    /// Where generations and `state.json` live (also with `layout = "files"`).
    pub dir: PathBuf,
    /// Numeric ids resolved from `owner`/`group` names at load time.
    pub owner: Option<u32>,
    pub group: Option<u32>,
    pub cert_mode: u32,
    pub key_mode: u32,
    /// Trust for the connector's TLS; `None` means the system roots.
    pub server_ca_file: Option<PathBuf>,
    /// Compass: the token-secured URL used by `enroll`.
    pub connector_url: Option<Url>,
    /// Overrides the renewal URL learned at enrollment.
    pub renewal_url: Option<Url>,
    /// Where a one-time token may appear; the daemon enrolls with it by itself while the
    /// certificate is missing, expired or revoked (once per token).
    pub token_file: Option<PathBuf>,
    pub allow_insecure_http: bool,
    pub renew: RenewPolicy,
    /// Fraction of the lifetime, in [0, 1).
    pub jitter: f64,
    pub retry_min: Duration,
    pub retry_max: Duration,
    pub key_algorithm: KeyAlgorithm,
    pub rotate_key: bool,
    /// Per HTTP request, connect included.
    pub timeout: Duration,
    pub layout: Layout,
    pub on_renew: Vec<HookConfig>,
    /// Extra files in each generation (symlink layout only).
    pub outputs: Vec<OutputConfig>,
    pub proxy: ProxySetting,
}
