//! Shared pieces of the integration tests: an in-process connector simulator, a
//! temporary folder with a generated config, and the real `kyma-certd` binary.
#![allow(dead_code)]

#[path = "bin.rs"]
pub mod bin;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use kyma_connector_sim::{SimConfig, Simulator};

use bin::kyma_certd;

/// A simulator, a folder and a config file for one test.
pub struct Env {
    pub sim: Simulator,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

/// One `[[certificate]]` of a generated config.
#[derive(Clone)]
pub struct Cert {
    pub name: String,
    pub protocol: &'static str,
    /// Extra `key = value` lines, TOML syntax.
    pub extra: Vec<String>,
}

impl Cert {
    pub fn compass(name: &str) -> Cert {
        Cert {
            name: name.to_owned(),
            protocol: "compass",
            extra: Vec::new(),
        }
    }

    pub fn rest(name: &str) -> Cert {
        Cert {
            name: name.to_owned(),
            protocol: "kyma-rest",
            extra: Vec::new(),
        }
    }

    /// A certificate of `protocol` ("compass" or "kyma-rest").
    pub fn of(protocol: &str, name: &str) -> Cert {
        if protocol == "compass" {
            Cert::compass(name)
        } else {
            Cert::rest(name)
        }
    }

    pub fn with(mut self, line: &str) -> Cert {
        self.extra.push(line.to_owned());
        self
    }
}

impl Env {
    /// A simulator issuing certificates of `validity`.
    pub async fn start(validity: Duration) -> Env {
        Env::start_with(SimConfig {
            validity,
            ..SimConfig::default()
        })
        .await
    }

    pub async fn start_with(mut config: SimConfig) -> Env {
        let dir = tempfile::tempdir().expect("temporary folder");
        config.out_dir = Some(dir.path().join("sim"));
        let sim = Simulator::start(config).await.expect("simulator starts");
        let config = dir.path().join("config.toml");
        Env { sim, dir, config }
    }

    /// The certificate directory of `name`.
    pub fn cert_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join("certs").join(name)
    }

    /// Writes the config file: fast RSA keys, short timeouts, `defaults` lines first.
    pub fn write_config(&self, defaults: &[&str], certs: &[Cert]) {
        let mut text = String::from("[metrics]\nlisten = \"\"\n\n[defaults]\n");
        let base = [
            "key_algorithm = \"rsa2048\"",
            "timeout = \"3s\"",
            "retry_min = \"1s\"",
            "retry_max = \"4s\"",
        ];
        let key = |line: &str| line.split('=').next().unwrap_or("").trim().to_owned();
        for line in base
            .iter()
            .filter(|b| !defaults.iter().any(|d| key(d) == key(b)))
        {
            text.push_str(line);
            text.push('\n');
        }
        for line in defaults {
            text.push_str(line);
            text.push('\n');
        }
        for cert in certs {
            text.push_str(&format!(
                "\n[[certificate]]\nname = \"{}\"\nprotocol = \"{}\"\ndir = {}\nserver_ca_file = {}\nconnector_url = \"{}\"\n",
                cert.name,
                cert.protocol,
                quoted(&self.cert_dir(&cert.name)),
                quoted(&self.sim.server_ca_path()),
                self.sim.compass_token_url(),
            ));
            for line in &cert.extra {
                text.push_str(line);
                text.push('\n');
            }
        }
        std::fs::write(&self.config, text).expect("config written");
    }

    /// `kyma-certd --config <config> args...`, run to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, None, &[])
    }

    pub fn run_with(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
        let mut command = kyma_certd(&self.config, args);
        command
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("kyma-certd starts");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("stdin written");
        }
        Run(child.wait_with_output().expect("kyma-certd finishes"))
    }

    /// Enrolls `name` with a freshly minted token of its protocol.
    pub fn enroll(&self, name: &str, protocol: &str) -> Run {
        match protocol {
            "compass" => {
                let token = self.sim.mint_compass_token();
                self.run_with(
                    &["enroll", "--name", name, "--token-file", "-"],
                    Some(&token),
                    &[],
                )
            }
            _ => {
                let (_, url) = self.sim.mint_rest_token();
                self.run(&["enroll", "--name", name, "--url", url.as_str()])
            }
        }
    }

    /// The four consumer files of a symlink-layout certificate, by name.
    pub fn files(&self, name: &str) -> BTreeMap<&'static str, Vec<u8>> {
        let dir = self.cert_dir(name);
        ["cert.pem", "key.pem", "chain.pem", "ca.pem"]
            .into_iter()
            .map(|f| (f, std::fs::read(dir.join(f)).unwrap_or_default()))
            .collect()
    }

    /// `status --json` for one certificate.
    pub fn status(&self, name: &str) -> serde_json::Value {
        let run = self.run(&["status", "--name", name, "--json"]);
        let all: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap_or_else(|e| {
            panic!(
                "status --json is JSON ({e}): {}{}",
                run.stdout(),
                run.stderr()
            )
        });
        all[0].clone()
    }
}

/// A finished command.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    /// Asserts success, showing the output otherwise.
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code(),
            0,
            "expected success\nstdout: {}\nstderr: {}",
            self.stdout(),
            self.stderr()
        );
        self
    }

    pub fn fails_with(self, code: i32) -> Run {
        assert_eq!(
            self.code(),
            code,
            "expected exit {code}\nstdout: {}\nstderr: {}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

pub fn quoted(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// The SPKI of the first certificate in a PEM text.
pub fn cert_spki(pem: &[u8]) -> Vec<u8> {
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem).expect("a certificate");
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("parses");
    cert.tbs_certificate.subject_pki.raw.to_vec()
}

/// The SPKI of a PKCS#8 PEM key.
pub fn key_spki(pem: &[u8]) -> Vec<u8> {
    let key = kyma_certd::pki::keys::PrivateKey::from_pem(std::str::from_utf8(pem).expect("utf-8"))
        .expect("a key");
    key.public_key_der().to_vec()
}

/// SHA-256 of the first certificate in a PEM text, lower-case hex.
pub fn fingerprint(pem: &[u8]) -> String {
    kyma_certd::pki::x509::CertInfo::from_pem(std::str::from_utf8(pem).expect("utf-8"))
        .expect("a certificate")
        .fingerprint_sha256
}

use rustls_pki_types::pem::PemObject;
