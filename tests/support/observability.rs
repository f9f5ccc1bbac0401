//! Harness for the observability tests: a temporary configuration that starts the real
//! `kyma-certd run` as a [`Daemon`] (see `running.rs`), with the shared simulator, HTTP
//! client and scrape reader. Tests stay synchronous; only the simulator runs async,
//! on its own runtime.
#![allow(dead_code)] // Each test binary uses a different part of this module.

#[path = "base.rs"]
mod base;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[allow(unused_imports)] // Not every suite uses every shared piece.
pub use base::*;

// ---------------------------------------------------------------------------------------
// Configuration and the command line

/// One `[[certificate]]` of the generated configuration.
#[derive(Debug, Clone)]
pub struct Cert {
    pub name: String,
    pub protocol: &'static str,
    /// More keys for this certificate, as TOML lines.
    pub extra: String,
}

impl Cert {
    pub fn compass(name: &str) -> Cert {
        Cert {
            name: name.to_owned(),
            protocol: "compass",
            extra: String::new(),
        }
    }

    pub fn rest(name: &str) -> Cert {
        Cert {
            name: name.to_owned(),
            protocol: "kyma-rest",
            extra: String::new(),
        }
    }

    pub fn of(protocol: &'static str, name: &str) -> Cert {
        Cert {
            name: name.to_owned(),
            protocol,
            extra: String::new(),
        }
    }

    pub fn with(mut self, toml: &str) -> Cert {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }
}

/// The policy most tests want: RSA-2048 (fast), no jitter, renewal at 70% of the lifetime,
/// and retries far enough apart that only the test triggers attempts.
pub const QUIET_DEFAULTS: &str = r#"key_algorithm = "rsa2048"
renew_at = "70%"
jitter = "0%"
retry_min = "20m"
retry_max = "20m"
timeout = "10s"
"#;

/// A temporary folder with `config.toml` and one directory per certificate.
pub struct Setup {
    pub tmp: tempfile::TempDir,
    pub config: PathBuf,
    pub certs: Vec<Cert>,
    server_ca: Option<PathBuf>,
}

/// A TOML string literal.
pub fn toml_str(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

impl Setup {
    /// Writes a configuration: JSON logs at `info`, metrics on an OS-chosen loopback port,
    /// `defaults` as `[defaults]`, and `certs` (trusting `sim`'s server CA when given).
    pub fn new(sim: Option<&Sim>, defaults: &str, certs: &[Cert]) -> Setup {
        let tmp = tempfile::Builder::new()
            .prefix("kyma-certd-obs-")
            .tempdir()
            .expect("a temporary folder");
        // Readable by an unprivileged daemon too (see `Daemon::start_unprivileged`).
        chmod(tmp.path(), 0o755);
        let server_ca = sim.map(|sim| {
            let copy = tmp.path().join("server-ca.pem");
            fs::write(&copy, sim.server_ca_pem()).expect("copy of the server CA");
            copy
        });
        let mut text = String::from(
            "[daemon]\nlog_format = \"json\"\nlog_level = \"info\"\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n\n",
        );
        text.push_str("[defaults]\n");
        text.push_str(defaults);
        text.push('\n');
        for cert in certs {
            let dir = tmp.path().join(&cert.name);
            text.push_str(&format!(
                "[[certificate]]\nname = {}\nprotocol = {}\ndir = {}\n",
                toml_str(&cert.name),
                toml_str(cert.protocol),
                toml_str(dir.to_str().expect("temporary paths are UTF-8")),
            ));
            if let Some(ca) = &server_ca {
                text.push_str(&format!(
                    "server_ca_file = {}\n",
                    toml_str(ca.to_str().expect("UTF-8"))
                ));
            }
            if let (Some(sim), "compass") = (sim, cert.protocol) {
                text.push_str(&format!(
                    "connector_url = {}\n",
                    toml_str(sim.compass_token_url().as_str())
                ));
            }
            text.push_str(&cert.extra);
            text.push('\n');
        }
        let config = tmp.path().join("config.toml");
        fs::write(&config, text).expect("config.toml");
        Setup {
            tmp,
            config,
            certs: certs.to_vec(),
            server_ca,
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// The directory of certificate `name`.
    pub fn dir(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn cert(&self, name: &str) -> &Cert {
        self.certs
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no certificate {name} in this setup"))
    }

    /// A `kyma-certd` command with this configuration and a clean environment.
    pub fn command(&self, args: &[&str]) -> Command {
        kyma_certd(&self.config, args)
    }

    /// Runs a one-shot command to completion.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = self.command(args);
        command.envs(env.iter().copied());
        command.output().expect("kyma-certd runs")
    }

    /// Enrolls `name` with a fresh one-time token from `sim` (from a token file for
    /// compass, in the configuration URL for kyma-rest); returns the token and the output.
    pub fn enroll_with(&self, sim: &Sim, name: &str, env: &[(&str, &str)]) -> (String, Output) {
        let output = match self.cert(name).protocol {
            "compass" => {
                let token = sim.mint_compass_token();
                let file = self.tmp.path().join(format!("{name}.token"));
                fs::write(&file, &token).expect("token file");
                let out = self.run(
                    &[
                        "enroll",
                        "--name",
                        name,
                        "--token-file",
                        file.to_str().expect("UTF-8"),
                    ],
                    env,
                );
                let _ = fs::remove_file(&file);
                (token, out)
            }
            _ => {
                let (token, url) = sim.mint_rest_token();
                let out = self.run(&["enroll", "--name", name, "--url", url.as_str()], env);
                (token, out)
            }
        };
        assert!(
            output.1.status.success(),
            "enroll {name} failed: {}",
            describe(&output.1)
        );
        output
    }

    /// Enrolls `name`; returns the one-time token it used.
    pub fn enroll(&self, sim: &Sim, name: &str) -> String {
        self.enroll_with(sim, name, &[]).0
    }

    /// `status --json` for one certificate.
    pub fn status(&self, name: &str) -> serde_json::Value {
        let out = self.run(&["status", "--json", "--name", name], &[]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json is JSON ({e}): {}", describe(&out)));
        list[0].clone()
    }

    /// The certificate on disk for `name`.
    pub fn cert_pem(&self, name: &str) -> String {
        fs::read_to_string(self.dir(name).join("cert.pem")).expect("cert.pem")
    }
}

/// Exit status, stdout and stderr of a finished command, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

// ---------------------------------------------------------------------------------------
// Certificates on disk

/// notBefore and notAfter of the first certificate in `pem`, in Unix seconds.
pub fn validity_of(pem: &str) -> (i64, i64) {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("a PEM block");
    let cert = block.parse_x509().expect("an X.509 certificate");
    (
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    )
}

/// The base64 body of every PEM block in `pem`, one string per block, without line breaks.
pub fn pem_bodies(pem: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    let mut current: Option<String> = None;
    for line in pem.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN ") {
            current = Some(String::new());
        } else if line.starts_with("-----END ") {
            bodies.extend(current.take());
        } else if let Some(body) = current.as_mut() {
            body.push_str(line);
        }
    }
    bodies
}

/// Three 40-character slices of `text` (start, middle, end): enough to recognise it
/// anywhere, short enough not to depend on line breaks.
pub fn slices(text: &str) -> Vec<String> {
    const LEN: usize = 40;
    assert!(text.len() >= LEN, "too short to slice: {}", text.len());
    let middle = (text.len() - LEN) / 2;
    [0, middle, text.len() - LEN]
        .into_iter()
        .map(|at| text[at..at + LEN].to_owned())
        .collect()
}

/// Unix seconds of an RFC 3339 timestamp.
pub fn unix_of(rfc3339: &str) -> i64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339:?} is not RFC 3339: {e}"))
        .unix_timestamp()
}

// ---------------------------------------------------------------------------------------
// The daemon

impl Daemon {
    /// Starts `kyma-certd run` with `setup`'s configuration and `env`, and waits until its
    /// metrics endpoint is bound.
    pub fn start(setup: &Setup, env: &[(&str, &str)]) -> Daemon {
        Daemon::spawn_serving(run_command(setup, env))
    }

    /// Like [`Daemon::start`], but as user and group 65534 when the tests run as root, so
    /// that file permissions apply to it. Everything in `setup` is handed to that user.
    pub fn start_unprivileged(setup: &Setup, env: &[(&str, &str)]) -> Daemon {
        let mut command = run_command(setup, env);
        if rustix::process::geteuid().is_root() {
            use std::os::unix::process::CommandExt as _;
            chown_tree(setup.path(), 65534);
            command.uid(65534).gid(65534);
        }
        Daemon::spawn_serving(command)
    }

    /// The observability suites' earlier name for [`Daemon::log_text`].
    pub fn logs(&self) -> String {
        self.log_text()
    }

    /// The observability suites' earlier name for [`Daemon::metrics`].
    pub fn scrape(&self) -> Scrape {
        self.metrics()
    }
}

/// `kyma-certd run` with `setup`'s configuration and `env`.
fn run_command(setup: &Setup, env: &[(&str, &str)]) -> Command {
    let mut command = setup.command(&["run"]);
    command.envs(env.iter().copied());
    command
}

fn chown_tree(path: &Path, id: u32) {
    let raw = Some(rustix::fs::Uid::from_raw(id));
    let group = Some(rustix::fs::Gid::from_raw(id));
    rustix::fs::chown(path, raw, group).expect("chown");
    if path.is_dir() && !path.is_symlink() {
        for entry in fs::read_dir(path).expect("read_dir") {
            chown_tree(&entry.expect("entry").path(), id);
        }
    }
}

/// Whether `program` can be run; else, unless `KYMA_CERTD_NO_PROMETHEUS=1`, fails the test
/// with what to install. Returns `false` when the test should be skipped.
pub fn prometheus_installed(program: &str) -> bool {
    if Path::new(program).is_file() || which(program) {
        return true;
    }
    if std::env::var("KYMA_CERTD_NO_PROMETHEUS").as_deref() == Ok("1") {
        eprintln!("skipped: {program} is not installed and KYMA_CERTD_NO_PROMETHEUS=1");
        return false;
    }
    panic!(
        "{program} is not installed: install Debian's `prometheus` package (it ships prometheus \
         and promtool), or set KYMA_CERTD_NO_PROMETHEUS=1 to skip the tests that need it"
    );
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
