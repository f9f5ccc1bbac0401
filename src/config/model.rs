//! The validated configuration: what the rest of the daemon reads. Built from the raw
//! TOML by `config::load`; never constructed from untrusted input directly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSettings {
    /// `None` when `listen = ""` disables the endpoint.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Compass / UCL connector, GraphQL.
    Compass,
    /// Kyma Application Connector connector-service, REST.
    KymaRest,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Compass => "compass",
            Protocol::KymaRest => "kyma-rest",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EcdsaP256,
}

impl KeyAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa2048 => "rsa2048",
            KeyAlgorithm::Rsa3072 => "rsa3072",
            KeyAlgorithm::Rsa4096 => "rsa4096",
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
        }
    }
}

/// When, within a certificate's lifetime, to renew it (DESIGN.md section 5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RenewPolicy {
    /// Fraction of the lifetime elapsed, in (0, 1).
    At(f64),
    /// Fixed time before notAfter.
    Before(Duration),
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

/// One part of a `pem-bundle` output; the bundle holds the parts in the order given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemPart {
    /// The private key (PKCS#8): makes the bundle a secret.
    Key,
    /// The leaf certificate.
    Cert,
    /// The certificates that follow the leaf in the returned chain (the CA for Kyma).
    Chain,
    /// The CA certificate(s) the connector returned.
    Ca,
}

impl PemPart {
    pub fn as_str(self) -> &'static str {
        match self {
            PemPart::Key => "key",
            PemPart::Cert => "cert",
            PemPart::Chain => "chain",
            PemPart::Ca => "ca",
        }
    }
}

/// One `[[certificate.output]]`: an extra file written into each generation and swapped
/// with the rest. File names are plain names inside the generation directory.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputConfig {
    /// `kind = "pem-bundle"`: PEM parts concatenated (HAProxy, Postfix).
    PemBundle { file: String, parts: Vec<PemPart> },
    /// `kind = "pkcs12"`: key and chain in a PKCS#12 keystore (Java), and optionally the
    /// CA as trusted entries in a second file.
    Pkcs12 {
        file: String,
        /// Read each time the keystore is written; never kept.
        password_file: PathBuf,
        truststore: Option<String>,
    },
}

impl OutputConfig {
    /// The file names this output writes.
    pub fn files(&self) -> Vec<&str> {
        match self {
            OutputConfig::PemBundle { file, .. } => vec![file],
            OutputConfig::Pkcs12 {
                file, truststore, ..
            } => std::iter::once(file.as_str())
                .chain(truststore.as_deref())
                .collect(),
        }
    }
}

/// How the connector is reached: the `proxy` key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ProxySetting {
    /// Unset: `HTTPS_PROXY` / `ALL_PROXY` / `NO_PROXY` from the environment.
    #[default]
    Environment,
    /// `proxy = "none"` (or `""`): always connect directly, whatever the environment says.
    Direct,
    /// `proxy = "http://[user:password@]host:port"`: this proxy for every connector
    /// request; the environment is ignored. May carry credentials: never log it whole.
    Url(Url),
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
