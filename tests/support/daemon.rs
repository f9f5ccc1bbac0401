//! Harness for the daemon tests: a temporary world (simulator, configuration, certificate
//! folders, token files) that starts the real `kyma-certd run` as a [`Daemon`] (see
//! `running.rs`), and small readers for `status --json` and the files on disk.
//! Synchronous on purpose: tests poll with deadlines while the simulator serves on its
//! own runtime. Does not assert anything itself beyond "the helper worked".
#![allow(dead_code)] // Each test binary uses a different part of this module.

#[path = "base.rs"]
mod base;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kyma_certd::pki::x509::CertInfo;
use kyma_connector_sim::SimConfig;
// Re-exported for the tests; not every test binary uses every piece.
#[allow(unused_imports)]
pub use base::*;
#[allow(unused_imports)]
pub use kyma_connector_sim::{AlertName, Endpoint, Fault, FaultScope};
#[allow(unused_imports)]
pub use rustix::process::Signal;

/// Seconds since the Unix epoch, as the metrics show times.
pub fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// One `[[certificate]]` of a test configuration.
#[derive(Clone, Debug)]
pub struct CertSpec {
    pub name: String,
    pub protocol: &'static str,
    /// Extra TOML lines inside the `[[certificate]]` table.
    pub extra: Vec<String>,
    /// Complete `[[certificate.on_renew]]` tables.
    pub hooks: Vec<String>,
}

impl CertSpec {
    pub fn compass(name: &str) -> CertSpec {
        CertSpec {
            name: name.to_owned(),
            protocol: "compass",
            extra: Vec::new(),
            hooks: Vec::new(),
        }
    }

    pub fn kyma_rest(name: &str) -> CertSpec {
        CertSpec {
            protocol: "kyma-rest",
            ..CertSpec::compass(name)
        }
    }

    /// Adds `key = value` (value already TOML) to the table.
    pub fn with(mut self, key: &str, value: &str) -> CertSpec {
        self.extra.push(format!("{key} = {value}"));
        self
    }

    /// Adds a `[[certificate.on_renew]]` table with these `key = value` lines.
    pub fn hook(mut self, lines: &[String]) -> CertSpec {
        self.hooks.push(lines.join("\n"));
        self
    }
}

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

/// A temporary folder with a simulator, a configuration file and certificate folders.
pub struct World {
    pub tmp: tempfile::TempDir,
    pub sim: Sim,
    pub config: PathBuf,
    /// Extra lines for `[daemon]`.
    pub daemon_extra: Vec<String>,
    /// Extra lines for `[defaults]`.
    pub defaults_extra: Vec<String>,
}

impl World {
    /// A world whose simulator issues certificates valid for `validity`.
    pub fn new(validity: Duration) -> World {
        let tmp = tempfile::Builder::new()
            .prefix("kyma-certd-daemon-test-")
            .tempdir()
            .expect("temporary folder");
        // ECDSA too: fast keys keep many short-lived certificates cheap.
        let sim = Sim::start(SimConfig {
            validity,
            accept_ecdsa: true,
            app: "orders-app".to_owned(),
            out_dir: Some(tmp.path().join("simulator")),
            ..SimConfig::default()
        });
        let config = tmp.path().join("config.toml");
        World {
            tmp,
            sim,
            config,
            daemon_extra: Vec::new(),
            defaults_extra: Vec::new(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// The folder of certificate `name`.
    pub fn cert_dir(&self, name: &str) -> PathBuf {
        self.tmp.path().join("certs").join(name)
    }

    /// The configuration text for `certs`: JSON logs, metrics on an OS-chosen port, fast
    /// ECDSA keys, short retries and timeouts, the simulator's server CA trusted.
    pub fn config_text(&self, certs: &[CertSpec]) -> String {
        let mut text = String::new();
        text.push_str("[daemon]\nlog_format = \"json\"\nlog_level = \"info\"\n");
        for line in &self.daemon_extra {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str("\n[metrics]\nlisten = \"127.0.0.1:0\"\n\n[defaults]\n");
        text.push_str("key_algorithm = \"ecdsa-p256\"\nretry_min = \"1s\"\nretry_max = \"2s\"\ntimeout = \"5s\"\n");
        text.push_str(&format!(
            "server_ca_file = {}\n",
            toml_path(&self.sim.server_ca_path())
        ));
        for line in &self.defaults_extra {
            text.push_str(line);
            text.push('\n');
        }
        for cert in certs {
            text.push_str(&format!(
                "\n[[certificate]]\nname = {}\nprotocol = {}\ndir = {}\n",
                toml_str(&cert.name),
                toml_str(cert.protocol),
                toml_path(&self.cert_dir(&cert.name))
            ));
            if cert.protocol == "compass" {
                text.push_str(&format!(
                    "connector_url = {}\n",
                    toml_str(self.sim.compass_token_url().as_str())
                ));
            }
            for line in &cert.extra {
                text.push_str(line);
                text.push('\n');
            }
            for hook in &cert.hooks {
                text.push_str("\n[[certificate.on_renew]]\n");
                text.push_str(hook);
                text.push('\n');
            }
        }
        text
    }

    /// Writes the configuration for `certs`.
    pub fn write_config(&self, certs: &[CertSpec]) {
        std::fs::write(&self.config, self.config_text(certs)).expect("write the configuration");
    }

    /// A `kyma-certd --config <config> args...` command, with a clean environment.
    pub fn command(&self, args: &[&str]) -> Command {
        kyma_certd(&self.config, args)
    }

    /// Enrolls certificate `name` (as configured) with a fresh one-time token through the
    /// binary; returns the new certificate's SHA-256 fingerprint.
    pub fn enroll(&self, name: &str, protocol: &str) -> String {
        let token_file = self.path(&format!("token-{name}"));
        let mut command = match protocol {
            "compass" => {
                std::fs::write(&token_file, self.sim.mint_compass_token()).unwrap();
                let mut c = self.command(&["enroll", "--name", name, "--token-file"]);
                c.arg(&token_file);
                c
            }
            _ => {
                let (token, url) = self.sim.mint_rest_token();
                std::fs::write(&token_file, token).unwrap();
                let mut c = self.command(&["enroll", "--name", name, "--token-file"]);
                c.arg(&token_file).arg("--url").arg(url.as_str());
                c
            }
        };
        let output = command.output().expect("run enroll");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "enroll {name} failed: {}\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let fingerprint = stdout
            .split("sha256 ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .unwrap_or_else(|| panic!("no fingerprint in {stdout:?}"));
        fingerprint.to_owned()
    }

    /// `status --json` for every certificate, by name.
    pub fn status(&self) -> BTreeMap<String, serde_json::Value> {
        let output = self
            .command(&["status", "--json"])
            .output()
            .expect("run status");
        let all: Vec<serde_json::Value> =
            serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
                panic!(
                    "status --json printed no JSON ({e}): {}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                )
            });
        all.into_iter()
            .map(|s| (s["name"].as_str().unwrap().to_owned(), s))
            .collect()
    }

    /// Starts `kyma-certd run` on the current configuration.
    pub fn run(&self) -> Daemon {
        self.run_with(|_| {})
    }

    /// Starts `kyma-certd run`, letting `setup` adjust the command (environment).
    pub fn run_with(&self, setup: impl FnOnce(&mut Command)) -> Daemon {
        let mut command = self.command(&["run"]);
        setup(&mut command);
        Daemon::spawn(command)
    }
}

/// What is on disk for a symlink-layout certificate folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnDisk {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub chain: Vec<u8>,
    pub ca: Vec<u8>,
}

impl OnDisk {
    /// Reads the four consumer paths of `dir`.
    pub fn read(dir: &Path) -> OnDisk {
        let read = |file: &str| {
            std::fs::read(dir.join(file))
                .unwrap_or_else(|e| panic!("read {file} in {}: {e}", dir.display()))
        };
        OnDisk {
            cert: read("cert.pem"),
            key: read("key.pem"),
            chain: read("chain.pem"),
            ca: read("ca.pem"),
        }
    }

    pub fn info(&self) -> CertInfo {
        CertInfo::from_pem(std::str::from_utf8(&self.cert).unwrap()).expect("a certificate")
    }

    pub fn fingerprint(&self) -> String {
        self.info().fingerprint_sha256
    }

    /// Whether the key belongs to the certificate.
    pub fn key_matches(&self) -> bool {
        let key =
            kyma_certd::pki::keys::PrivateKey::from_pem(std::str::from_utf8(&self.key).unwrap())
                .expect("a private key");
        key.matches_spki(&self.info().spki_der)
    }
}

/// The fingerprint of the certificate at `dir/cert.pem`, if one is readable.
pub fn fingerprint_on_disk(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("cert.pem")).ok()?;
    CertInfo::from_pem(&text).ok().map(|i| i.fingerprint_sha256)
}

/// Names in `dir` that only exist in the middle of a write.
pub fn temporary_leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        // `.lock` is the store's permanent lock file, not a leftover.
        .filter(|n| n != ".lock")
        .filter(|n| n.contains(".tmp") || n.contains("tmp-") || n.starts_with('.'))
        .collect()
}

/// A dependent process: `sh` that writes its pid file once its HUP trap is set and
/// appends a line to `hups` for every SIGHUP. Killed on drop.
pub struct Dependent {
    child: Child,
    pub pid_file: PathBuf,
    pub hups: PathBuf,
}

impl Dependent {
    pub fn start(dir: &Path) -> Dependent {
        let pid_file = dir.join("dependent.pid");
        let hups = dir.join("dependent.hups");
        std::fs::write(&hups, "").unwrap();
        let script = r#"trap 'echo hup >> "$2"' HUP; echo $$ > "$1.tmp"; mv "$1.tmp" "$1"; while :; do sleep 1 & wait $!; done"#;
        let child = Command::new("sh")
            .args(["-c", script, "dependent"])
            .arg(&pid_file)
            .arg(&hups)
            .stdin(Stdio::null())
            .spawn()
            .expect("start sh");
        let ready = eventually(Duration::from_secs(5), || pid_file.exists());
        assert!(ready, "the dependent did not write its pid file");
        Dependent {
            child,
            pid_file,
            hups,
        }
    }

    /// How many SIGHUPs it has received.
    pub fn hups(&self) -> usize {
        std::fs::read_to_string(&self.hups)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }
}

impl Drop for Dependent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
