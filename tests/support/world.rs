//! The world an integration test drives the real binary in: a temporary folder (readable
//! by an unprivileged user) with a connector simulator, the configuration the test asks
//! for and the certificates it names, one-time tokens, and `kyma-certd` invocations on
//! that configuration, the daemon included. Synchronous on purpose: tests poll with
//! deadlines while the simulator serves on its own thread. Asserts nothing itself beyond
//! "the helper worked".

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use kyma_certd::pki::keys::PrivateKey;
use kyma_certd::pki::x509::CertInfo;
use kyma_connector_sim::SimConfig;

use super::disk::{chmod, list};
use super::invoke::{Invocation, Run, kyma_certd};
use super::sim::Sim;

pub use super::settings::Settings;
use super::settings::key_of;

// ---------------------------------------------------------------------------------------
// Certificates

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Compass,
    KymaRest,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Compass => "compass",
            Proto::KymaRest => "kyma-rest",
        }
    }
}

impl From<&str> for Proto {
    fn from(name: &str) -> Proto {
        match name {
            "compass" => Proto::Compass,
            "kyma-rest" => Proto::KymaRest,
            other => panic!("no protocol {other:?}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Symlink,
    Files,
}

impl Layout {
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Symlink => "symlink",
            Layout::Files => "files",
        }
    }
}

/// The four consumer paths, in the order cert, key, chain, ca.
pub const FILE_NAMES: [&str; 4] = ["cert.pem", "key.pem", "chain.pem", "ca.pem"];

/// One `[[certificate]]` of a world's configuration, with the simulator it talks to.
#[derive(Debug, Clone)]
pub struct CertSpec {
    pub name: String,
    pub protocol: Proto,
    pub layout: Layout,
    /// `dir`: generations (symlink layout), `state.json`, the journal.
    pub dir: PathBuf,
    /// Where the files layout puts the four files.
    pub files_dir: PathBuf,
    /// The server CA it trusts: a copy of its simulator's, readable by anyone.
    pub server_ca: PathBuf,
    /// Compass's token-secured URL (compass only; `None` leaves it out).
    pub connector_url: Option<String>,
    /// More `key = value` lines; one for `server_ca_file` or `connector_url` replaces the
    /// world's.
    pub lines: Vec<String>,
    /// Raw TOML after the keys: `[[certificate.on_renew]]` and `[[certificate.output]]`
    /// tables.
    pub tail: String,
    sim: Sim,
}

impl CertSpec {
    /// Adds a `key = value` line (TOML). A key the defaults set too wins for this
    /// certificate.
    pub fn with(mut self, line: impl Into<String>) -> CertSpec {
        self.lines.push(line.into());
        self
    }

    /// The files layout: the four files in `files_dir`, the rest in `dir`.
    pub fn files_layout(mut self) -> CertSpec {
        self.layout = Layout::Files;
        self
    }

    /// Adds a `[[certificate.on_renew]]` table with these `key = value` lines.
    pub fn hook(self, lines: &[String]) -> CertSpec {
        self.table(&format!("[[certificate.on_renew]]\n{}", lines.join("\n")))
    }

    /// Adds a table of this certificate (`[[certificate.output]]`, say), as TOML text.
    pub fn table(mut self, toml: &str) -> CertSpec {
        self.tail.push('\n');
        self.tail.push_str(toml.trim_end());
        self.tail.push('\n');
        self
    }

    /// The simulator it enrolls and renews at.
    pub fn sim(&self) -> &Sim {
        &self.sim
    }

    pub fn toml(&self) -> String {
        let own: BTreeSet<&str> = self.lines.iter().map(|l| key_of(l)).collect();
        let mut out = String::from("[[certificate]]\n");
        out.push_str(&format!("name = {}\n", toml_str(&self.name)));
        out.push_str(&format!(
            "protocol = {}\n",
            toml_str(self.protocol.as_str())
        ));
        out.push_str(&format!("dir = {}\n", toml_path(&self.dir)));
        if !own.contains("server_ca_file") {
            out.push_str(&format!(
                "server_ca_file = {}\n",
                toml_path(&self.server_ca)
            ));
        }
        if let Some(url) = self
            .connector_url
            .as_ref()
            .filter(|_| !own.contains("connector_url"))
        {
            out.push_str(&format!("connector_url = {}\n", toml_str(url)));
        }
        if self.layout == Layout::Files {
            out.push_str("layout = \"files\"\n");
            for (key, file) in ["cert_file", "key_file", "chain_file", "ca_file"]
                .iter()
                .zip(FILE_NAMES)
            {
                out.push_str(&format!(
                    "{key} = {}\n",
                    toml_path(&self.files_dir.join(file))
                ));
            }
        }
        for line in &self.lines {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&self.tail);
        out
    }

    /// The paths consumers read: cert, key, chain, ca.
    pub fn consumer_paths(&self) -> [PathBuf; 4] {
        let base = match self.layout {
            Layout::Symlink => &self.dir,
            Layout::Files => &self.files_dir,
        };
        FILE_NAMES.map(|f| base.join(f))
    }

    pub fn key_path(&self) -> PathBuf {
        self.consumer_paths()[1].clone()
    }

    /// The four consumer files by name; empty where a file is missing.
    pub fn files(&self) -> BTreeMap<&'static str, Vec<u8>> {
        FILE_NAMES
            .into_iter()
            .zip(self.consumer_paths())
            .map(|(name, path)| (name, fs::read(path).unwrap_or_default()))
            .collect()
    }

    /// The bytes of the four consumer files; each must be there.
    pub fn snapshot(&self) -> Vec<Vec<u8>> {
        self.consumer_paths()
            .iter()
            .map(|p| fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display())))
            .collect()
    }

    /// The consumer certificate's fingerprint after checking that the key belongs to it
    /// and the chain starts with it.
    pub fn consistent_pair(&self) -> Result<String, String> {
        let [cert, key, chain, _] = self.consumer_paths();
        let cert_pem = fs::read_to_string(&cert).map_err(|e| format!("{}: {e}", cert.display()))?;
        let key_pem = fs::read_to_string(&key).map_err(|e| format!("{}: {e}", key.display()))?;
        let chain_pem =
            fs::read_to_string(&chain).map_err(|e| format!("{}: {e}", chain.display()))?;
        let info = CertInfo::from_pem(&cert_pem).map_err(|e| format!("certificate: {e}"))?;
        let key = PrivateKey::from_pem(&key_pem).map_err(|e| format!("key: {e}"))?;
        if !key.matches_spki(&info.spki_der) {
            return Err("the key does not belong to the certificate".into());
        }
        if !chain_pem.starts_with(cert_pem.trim_end()) {
            return Err("the chain does not start with the certificate".into());
        }
        Ok(info.fingerprint_sha256)
    }

    /// Entries that should not be there after recovery: temporary files, journals,
    /// generations other than the current and the previous one. (`.lock` is the store's
    /// lock file and `connection.json` what the connector returned: both stay.)
    pub fn leftovers(&self) -> Vec<String> {
        let names = list(&self.dir);
        let mut kept: BTreeSet<String> = ["state.json", ".lock", "connection.json"]
            .map(str::to_owned)
            .into();
        match self.layout {
            Layout::Symlink => {
                kept.extend(["current", "previous"].map(str::to_owned));
                kept.extend(FILE_NAMES.map(str::to_owned));
                for link in ["current", "previous"] {
                    if let Ok(target) = fs::read_link(self.dir.join(link)) {
                        kept.insert(target.to_string_lossy().into_owned());
                    }
                }
                names.into_iter().filter(|n| !kept.contains(n)).collect()
            }
            Layout::Files => names
                .into_iter()
                .filter(|n| !kept.contains(n))
                .chain(
                    list(&self.files_dir)
                        .into_iter()
                        .filter(|n| !FILE_NAMES.contains(&n.as_str()))
                        .map(|n| format!("{}/{n}", self.files_dir.display())),
                )
                .collect(),
        }
    }

    /// `state.json`, if there is one.
    pub fn state_json(&self) -> Option<String> {
        fs::read_to_string(self.dir.join("state.json")).ok()
    }
}

// ---------------------------------------------------------------------------------------
// The world

/// How the folders of worlds begin, in the system's temporary directory.
pub const ROOT_PREFIX: &str = "kyma-certd-test-";

/// A temporary folder with a simulator, a configuration file and the certificates it
/// names.
pub struct World {
    root: tempfile::TempDir,
    /// The simulator certificates talk to unless a test says otherwise.
    pub sim: Sim,
    pub config: PathBuf,
    pub settings: Settings,
    /// Every certificate a configuration of this world named, the latest of each name.
    known: Mutex<Vec<CertSpec>>,
}

impl World {
    /// A world for daemon tests ([`Settings::daemon`]) whose simulator issues
    /// certificates valid for `validity`.
    pub fn new(validity: Duration) -> World {
        World::with(Settings::daemon(), validity)
    }

    /// A world with `settings` whose simulator issues certificates valid for `validity`
    /// to the app `orders-app` and signs ECDSA requests too.
    pub fn with(settings: Settings, validity: Duration) -> World {
        World::with_sim(
            settings,
            SimConfig {
                validity,
                accept_ecdsa: true,
                app: "orders-app".to_owned(),
                ..SimConfig::default()
            },
        )
    }

    /// A world with `settings` and a simulator configured as `sim` says.
    pub fn with_sim(settings: Settings, mut sim: SimConfig) -> World {
        let root = tempfile::Builder::new()
            .prefix(ROOT_PREFIX)
            .tempdir()
            .expect("a temporary folder");
        // Readable by the unprivileged user some tests run the binary as.
        chmod(root.path(), 0o755);
        sim.out_dir = Some(root.path().join("simulator"));
        let config = root.path().join("config.toml");
        World {
            sim: Sim::start(sim),
            config,
            settings,
            known: Mutex::default(),
            root,
        }
    }

    /// The configuration file [`World::write_config`] writes.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    /// The folder of certificate `name` (its `dir`).
    pub fn cert_dir(&self, name: &str) -> PathBuf {
        self.path("certs").join(name)
    }

    /// Certificate `name` of `protocol` at this world's simulator, symlink layout.
    pub fn cert(&self, name: &str, protocol: impl Into<Proto>) -> CertSpec {
        self.cert_at(name, protocol, &self.sim)
    }

    pub fn compass(&self, name: &str) -> CertSpec {
        self.cert(name, Proto::Compass)
    }

    pub fn kyma_rest(&self, name: &str) -> CertSpec {
        self.cert(name, Proto::KymaRest)
    }

    /// Certificate `name` of `protocol` at `sim`, symlink layout.
    pub fn cert_at(&self, name: &str, protocol: impl Into<Proto>, sim: &Sim) -> CertSpec {
        let protocol = protocol.into();
        let server_ca = self.path("server-ca").join(format!("{name}.pem"));
        fs::create_dir_all(server_ca.parent().unwrap()).expect("a folder for server CAs");
        fs::write(&server_ca, sim.server_ca_pem()).expect("writing the server CA");
        chmod(&server_ca, 0o644);
        CertSpec {
            name: name.to_owned(),
            protocol,
            layout: Layout::Symlink,
            dir: self.cert_dir(name),
            files_dir: self.path("tls").join(name),
            server_ca,
            connector_url: (protocol == Proto::Compass)
                .then(|| sim.compass_token_url().to_string()),
            lines: Vec::new(),
            tail: String::new(),
            sim: sim.clone(),
        }
    }

    /// The configuration text for `certs`; the world remembers them, for enrolling by
    /// name ([`World::spec`]).
    pub fn config_text(&self, certs: &[CertSpec]) -> String {
        let mut known = self.known.lock().unwrap();
        for cert in certs {
            known.retain(|k| k.name != cert.name);
            known.push(cert.clone());
        }
        drop(known);
        let settings = &self.settings;
        let mut text = String::new();
        for (header, section) in [
            ("daemon", &settings.daemon),
            ("metrics", &settings.metrics),
            ("defaults", &settings.defaults),
        ] {
            text.push_str(&section.toml(header));
            text.push('\n');
        }
        for cert in certs {
            text.push_str(&cert.toml());
            text.push('\n');
        }
        text
    }

    /// Writes the configuration for `certs`.
    pub fn write_config(&self, certs: &[CertSpec]) {
        fs::write(&self.config, self.config_text(certs)).expect("writing the configuration");
        chmod(&self.config, 0o644);
    }

    /// The certificate `name` as the latest configuration of this world named it.
    pub fn spec(&self, name: &str) -> CertSpec {
        self.known
            .lock()
            .unwrap()
            .iter()
            .find(|c| c.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("no certificate {name} in this world's configuration"))
    }

    /// `kyma-certd --config <config> args...`.
    pub fn command(&self, args: &[&str]) -> Invocation {
        kyma_certd(&self.config, args)
    }

    /// `kyma-certd --config <config> run`.
    pub fn daemon(&self) -> Invocation {
        self.command(&["run"])
    }

    /// `enroll` for certificate `name` with a fresh one-time token from its simulator in
    /// a token file (kyma-rest: the configuration URL without the token on `--url`), and
    /// the token.
    pub fn enroll_command(&self, name: &str) -> (Invocation, String) {
        let cert = self.spec(name);
        let token_file = self.path("tokens").join(name);
        let (token, command) = match cert.protocol {
            Proto::Compass => (
                cert.sim.mint_compass_token(),
                self.command(&["enroll", "--name", name]),
            ),
            Proto::KymaRest => {
                let (token, mut url) = cert.sim.mint_rest_token();
                url.set_query(None);
                (
                    token,
                    self.command(&["enroll", "--name", name, "--url", url.as_str()]),
                )
            }
        };
        fs::create_dir_all(token_file.parent().unwrap()).expect("a folder for tokens");
        fs::write(&token_file, &token).expect("writing the token");
        (command.arg("--token-file").arg(&token_file), token)
    }

    /// Enrolls certificate `name` through the binary; returns the new certificate's
    /// SHA-256 fingerprint.
    pub fn enroll(&self, name: &str) -> String {
        let run = self.try_enroll(name);
        assert!(
            run.status.success(),
            "enroll {name} failed: {}",
            run.describe()
        );
        let stdout = run.stdout();
        let fingerprint = stdout
            .split("sha256 ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .unwrap_or_else(|| panic!("no fingerprint in {stdout:?}"));
        fingerprint.to_owned()
    }

    /// Runs `enroll` for certificate `name`, successful or not.
    pub fn try_enroll(&self, name: &str) -> Run {
        self.enroll_command(name).0.run()
    }

    /// `status --json` for certificate `name`.
    pub fn status(&self, name: &str) -> serde_json::Value {
        let run = self.command(&["status", "--name", name, "--json"]).run();
        let all: serde_json::Value = serde_json::from_slice(&run.stdout)
            .unwrap_or_else(|e| panic!("status --json printed no JSON ({e}): {}", run.text()));
        all[0].clone()
    }

    /// The four consumer files of certificate `name`, by name.
    pub fn files(&self, name: &str) -> BTreeMap<&'static str, Vec<u8>> {
        self.spec(name).files()
    }

    /// The certificate that consumers of `name` read.
    pub fn cert_pem(&self, name: &str) -> String {
        String::from_utf8(self.files(name)["cert.pem"].clone()).expect("a PEM text")
    }
}

// ---------------------------------------------------------------------------------------
// TOML

/// A TOML string literal for `text`.
pub fn toml_str(text: impl AsRef<str>) -> String {
    toml::Value::String(text.as_ref().to_owned()).to_string()
}

/// A TOML string literal for a path.
pub fn toml_path(path: &Path) -> String {
    toml_str(path.to_str().expect("temporary paths are UTF-8"))
}

/// A TOML array of strings.
pub fn toml_argv(argv: &[&str]) -> String {
    let items: Vec<String> = argv.iter().map(toml_str).collect();
    format!("[{}]", items.join(", "))
}
