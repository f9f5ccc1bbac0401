//! Drives the real `kyma-certd` binary against in-process connector simulators for the
//! reliability suite: temporary workspaces, configuration files, enrollment, starting a
//! [`Daemon`] (see `running.rs`) on a workspace, and checks of what is on disk. Asserts nothing about the daemon
//! itself; the tests do.
#![allow(dead_code)] // Each test binary uses a different part of this module.

#[path = "base.rs"]
mod base;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kyma_certd::pki::keys::PrivateKey;
use kyma_certd::pki::x509::CertInfo;

#[allow(unused_imports)] // Not every suite uses every shared piece.
pub use base::*;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Compass,
    Rest,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Compass => "compass",
            Proto::Rest => "kyma-rest",
        }
    }
}

/// One `[[certificate]]` of a test configuration.
#[derive(Debug, Clone)]
pub struct CertSpec {
    pub name: String,
    pub protocol: Proto,
    pub layout: Layout,
    /// `dir`: generations (symlink layout), `state.json`, the journal.
    pub dir: PathBuf,
    /// Where the files layout puts the four files.
    pub files_dir: PathBuf,
    /// Copy of the simulator's server CA, readable by anyone.
    pub server_ca: PathBuf,
    /// Compass token-secured URL (compass only).
    pub connector_url: Option<String>,
    /// Extra `key = value` lines.
    pub extra: Vec<String>,
    /// Raw TOML appended after the certificate's keys (`[[certificate.on_renew]]` tables).
    pub tail: String,
}

/// The four consumer paths, in the order cert, key, chain, ca.
pub const FILE_NAMES: [&str; 4] = ["cert.pem", "key.pem", "chain.pem", "ca.pem"];

impl CertSpec {
    /// Adds a `key = value` line (a later line for the same key is a config error: only
    /// add keys the defaults below do not set, or use `without`).
    pub fn with(mut self, line: impl Into<String>) -> Self {
        self.extra.push(line.into());
        self
    }

    /// Settings shared by the suite: fast keys, short timeouts and backoff, a renewal
    /// window early in the lifetime, no jitter.
    fn default_lines(&self) -> BTreeMap<&'static str, String> {
        let mut lines = BTreeMap::new();
        lines.insert("key_algorithm", "\"ecdsa-p256\"".to_owned());
        lines.insert("timeout", "\"2s\"".to_owned());
        lines.insert("retry_min", "\"500ms\"".to_owned());
        lines.insert("retry_max", "\"1s\"".to_owned());
        lines.insert("renew_at", "\"50%\"".to_owned());
        lines.insert("jitter", "\"0%\"".to_owned());
        lines
    }

    pub fn toml(&self) -> String {
        let mut out = String::from("[[certificate]]\n");
        out.push_str(&format!("name = {:?}\n", self.name));
        out.push_str(&format!("protocol = {:?}\n", self.protocol.as_str()));
        out.push_str(&format!("dir = {}\n", toml_path(&self.dir)));
        out.push_str(&format!(
            "server_ca_file = {}\n",
            toml_path(&self.server_ca)
        ));
        if let Some(url) = &self.connector_url {
            out.push_str(&format!("connector_url = {url:?}\n"));
        }
        let overridden: HashSet<&str> = self
            .extra
            .iter()
            .filter_map(|l| l.split('=').next())
            .map(str::trim)
            .collect();
        for (key, value) in self.default_lines() {
            let replaced = overridden.contains(key)
                || (key == "renew_at" && overridden.contains("renew_before"));
            if !replaced {
                out.push_str(&format!("{key} = {value}\n"));
            }
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
        for line in &self.extra {
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

    /// The bytes of the four consumer files.
    pub fn snapshot(&self) -> Vec<Vec<u8>> {
        self.consumer_paths()
            .iter()
            .map(|p| fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display())))
            .collect()
    }

    /// The consumer certificate's fingerprint after checking that the key belongs to it.
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
        let mut unexpected = Vec::new();
        let names = list(&self.dir);
        match self.layout {
            Layout::Symlink => {
                let mut allowed: BTreeSet<String> = [
                    "cert.pem",
                    "key.pem",
                    "chain.pem",
                    "ca.pem",
                    "connection.json",
                    "current",
                    "previous",
                    "connection.json",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                allowed.insert("state.json".into());
                allowed.insert(".lock".into());
                for link in ["current", "previous"] {
                    if let Ok(target) = fs::read_link(self.dir.join(link)) {
                        allowed.insert(target.to_string_lossy().into_owned());
                    }
                }
                unexpected.extend(names.into_iter().filter(|n| !allowed.contains(n)));
            }
            Layout::Files => {
                unexpected.extend(
                    names.into_iter().filter(|n| {
                        !["state.json", ".lock", "connection.json"].contains(&n.as_str())
                    }),
                );
                let files: Vec<String> = list(&self.files_dir);
                unexpected.extend(
                    files
                        .into_iter()
                        .filter(|n| !FILE_NAMES.contains(&n.as_str()))
                        .map(|n| format!("{}/{n}", self.files_dir.display())),
                );
            }
        }
        unexpected
    }

    /// `state.json`, if there is one.
    pub fn state_json(&self) -> Option<String> {
        fs::read_to_string(self.dir.join("state.json")).ok()
    }
}

/// The names in a directory, sorted (empty when it does not exist).
pub fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

pub fn toml_path(path: &Path) -> String {
    format!("{:?}", path.to_str().expect("temporary paths are UTF-8"))
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// The mode bits of a file, following symlinks.
pub fn mode_of(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// A temporary folder holding one configuration and the certificates it names.
pub struct Workspace {
    pub root: tempfile::TempDir,
    pub config: PathBuf,
    /// `[daemon]` and `[metrics]` sections.
    pub header: String,
}

impl Workspace {
    pub fn new() -> Workspace {
        let root = tempfile::Builder::new()
            .prefix("kyma-certd-rel-")
            .tempdir()
            .expect("a temporary folder");
        // Readable by the unprivileged user some tests run the binary as.
        chmod(root.path(), 0o755);
        let config = root.path().join("config.toml");
        Workspace {
            root,
            config,
            header: "[daemon]\nlog_level = \"info\"\nmax_concurrent_renewals = 32\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n\n".to_owned(),
        }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    /// A certificate `name` at `sim`, in `root/name/` (files layout: `root/name/tls/`).
    pub fn cert(&self, name: &str, sim: &Sim, protocol: Proto, layout: Layout) -> CertSpec {
        let base = self.path(name);
        let server_ca = self.path(&format!("{name}-server-ca.pem"));
        fs::write(&server_ca, sim.server_ca_pem()).expect("writing the server CA");
        chmod(&server_ca, 0o644);
        CertSpec {
            name: name.to_owned(),
            protocol,
            layout,
            dir: match layout {
                Layout::Symlink => base.clone(),
                Layout::Files => base.join("state"),
            },
            files_dir: base.join("tls"),
            server_ca,
            connector_url: match protocol {
                Proto::Compass => Some(sim.compass_token_url().to_string()),
                Proto::Rest => None,
            },
            extra: Vec::new(),
            tail: String::new(),
        }
    }

    pub fn write_config(&self, certs: &[CertSpec]) {
        let mut text = self.header.clone();
        for cert in certs {
            text.push_str(&cert.toml());
            text.push('\n');
        }
        fs::write(&self.config, text).expect("writing the configuration");
        chmod(&self.config, 0o644);
    }

    /// `kyma-certd --config <config> args...`, with a clean environment.
    pub fn command(&self, args: &[&str]) -> Command {
        kyma_certd(&self.config, args)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("the binary runs")
    }

    /// Enrolls `cert` at `sim` through the binary; panics unless it succeeds.
    pub fn enroll(&self, sim: &Sim, cert: &CertSpec) -> Output {
        let output = self
            .enroll_command(sim, cert)
            .output()
            .expect("enroll runs");
        assert!(
            output.status.success(),
            "enrolling {} failed: {}",
            cert.name,
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// The `enroll` command for `cert` with a fresh token from `sim` in a token file.
    pub fn enroll_command(&self, sim: &Sim, cert: &CertSpec) -> Command {
        let token_file = self.path(&format!("{}.token", cert.name));
        let mut command = match cert.protocol {
            Proto::Compass => {
                fs::write(&token_file, sim.mint_compass_token()).expect("writing the token");
                self.command(&["enroll", "--name", &cert.name])
            }
            Proto::Rest => {
                let (token, mut url) = sim.mint_rest_token();
                url.set_query(None);
                fs::write(&token_file, token).expect("writing the token");
                self.command(&["enroll", "--name", &cert.name, "--url", url.as_str()])
            }
        };
        command.arg("--token-file").arg(&token_file);
        command
    }
}

impl Default for Workspace {
    fn default() -> Self {
        Workspace::new()
    }
}

/// Text of an output's stdout and stderr.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

impl Daemon {
    /// Starts `kyma-certd run` on `workspace`'s configuration and waits until its metrics
    /// endpoint is bound; `name` labels its log in a failing test's output.
    pub fn start(workspace: &Workspace, name: &str) -> Daemon {
        Daemon::spawn_serving(workspace.command(&["run"])).labelled(name)
    }

    /// The reliability suites' earlier name for [`Daemon::alive`].
    pub fn is_running(&mut self) -> bool {
        self.alive()
    }

    /// The reliability suites' earlier name for [`Daemon::metrics`].
    pub fn scrape(&self) -> Scrape {
        self.metrics()
    }
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped; `Err` with the
/// reason when this machine does not allow it (not root, no mount namespace rights).
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    pub fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755")])
            .arg("tmpfs")
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            path: path.to_owned(),
        })
    }
}

/// Writes filler files into `dir` until its file system reports it is full; returns them.
pub fn fill_file_system(dir: &Path) -> Vec<PathBuf> {
    let mut fillers = Vec::new();
    for chunk in [64 * 1024, 4096, 512, 1] {
        loop {
            let path = dir.join(format!(".filler-{}", fillers.len()));
            let written = fs::write(&path, vec![0u8; chunk]);
            fillers.push(path);
            if written.is_err() {
                break;
            }
        }
    }
    fillers
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Runs `command` through `sh -c 'umask <umask>; exec "$0" "$@"'`.
pub fn with_umask(command: &Command, umask: u32) -> Command {
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg(format!("umask {umask:03o}; exec \"$0\" \"$@\""))
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => shell.env(key, value),
            None => shell.env_remove(key),
        };
    }
    shell.stdin(Stdio::null());
    shell
}
