//! Drives the real `kyma-certd` binary against in-process connector simulators for the
//! reliability suite: temporary workspaces, configuration files, enrollment, a daemon with
//! its log and metrics, and checks of what is on disk. Asserts nothing about the daemon
//! itself; the tests do.
#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::ops::Deref;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use kyma_certd::keys::PrivateKey;
use kyma_certd::x509::CertInfo;
use kyma_connector_sim::{SimConfig, Simulator};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_kyma-certd");

/// A simulator served by its own thread, so that tests can stay synchronous and drive
/// processes with plain blocking calls.
pub struct Sim {
    sim: Option<Simulator>,
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sim {
    pub fn start(config: SimConfig) -> Sim {
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("simulator".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the simulator");
                let sim = rt
                    .block_on(Simulator::start(config))
                    .expect("the simulator starts on loopback");
                started_tx
                    .send((sim, rt.handle().clone()))
                    .expect("the test waits for the simulator");
                let _ = rt.block_on(stopped);
            })
            .expect("a thread for the simulator");
        let (sim, handle) = started_rx.recv().expect("the simulator started");
        Sim {
            sim: Some(sim),
            handle,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// A simulator that signs ECDSA P-256 requests too (fast keys) and issues
    /// certificates valid for `validity`.
    pub fn ecdsa(validity: Duration) -> Sim {
        Sim::start(SimConfig {
            validity,
            accept_ecdsa: true,
            ..SimConfig::default()
        })
    }

    /// SHA-256 fingerprints of every certificate it issued.
    pub fn issued_fingerprints(&self) -> HashSet<String> {
        self.issued_certificates()
            .into_iter()
            .map(|c| c.fingerprint)
            .collect()
    }

    /// The runtime the simulator runs on (for helpers that need to spawn beside it).
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        drop(self.sim.take());
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Deref for Sim {
    type Target = Simulator;

    fn deref(&self) -> &Simulator {
        self.sim.as_ref().expect("the simulator runs until dropped")
    }
}

/// Polls `check` every 50 ms until it yields a value; panics with `what` after `timeout`.
pub fn poll<T>(what: &str, timeout: Duration, check: impl FnMut() -> Option<T>) -> T {
    wait_for(timeout, check)
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Polls `check` every 50 ms until it yields a value, or `None` after `timeout`.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
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
    /// lock file and stays.)
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
                    "current",
                    "previous",
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
                    names
                        .into_iter()
                        .filter(|n| n != "state.json" && n != ".lock"),
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

fn toml_path(path: &Path) -> String {
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

    /// `kyma-certd --config <config> args...`, with a clean logging environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("KYMA_CERTD_CONFIG")
            .stdin(Stdio::null());
        command
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

/// A running `kyma-certd run`, its log in a file, killed when dropped.
pub struct Daemon {
    child: Child,
    pub log: PathBuf,
    pub metrics_addr: SocketAddr,
}

impl Daemon {
    /// Starts `command` (a `run` command from [`Workspace::command`] or wrapped in a
    /// shell), logging to `log`, and waits until the metrics endpoint is bound.
    pub fn spawn(mut command: Command, log: PathBuf) -> Daemon {
        let file = fs::File::create(&log).expect("creating the daemon log");
        command.stdout(Stdio::null()).stderr(file);
        let child = command.spawn().expect("the daemon starts");
        let mut daemon = Daemon {
            child,
            log,
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let addr = poll(
            "the metrics address in the log",
            Duration::from_secs(20),
            || {
                if let Ok(Some(status)) = daemon.child.try_wait() {
                    panic!(
                        "the daemon exited early with {status}:\n{}",
                        daemon.log_text()
                    );
                }
                let log = daemon.log_text();
                let start = log.find("metrics on http://")? + "metrics on http://".len();
                let end = start + log[start..].find("/metrics")?;
                log[start..end].parse().ok()
            },
        );
        daemon.metrics_addr = addr;
        daemon
    }

    /// Waits for the `ready` log line: every certificate has a schedule and the signal
    /// handlers are installed.
    pub fn wait_ready(&self) {
        poll("the daemon to be ready", Duration::from_secs(20), || {
            self.log_text()
                .contains(" ready certificates=")
                .then_some(())
        });
    }

    pub fn start(workspace: &Workspace, name: &str) -> Daemon {
        Daemon::spawn(
            workspace.command(&["run"]),
            workspace.path(&format!("{name}.log")),
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `GET path` on the metrics port.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.metrics_addr, path, Duration::from_secs(10))
    }

    pub fn scrape(&self) -> Scrape {
        let (status, body) = self.get("/metrics").expect("the metrics endpoint answers");
        assert_eq!(status, 200, "{body}");
        Scrape::parse(&body)
    }

    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, signal).expect("signalling the daemon");
    }

    /// SIGTERM, then waits (at most 10 s) for the exit.
    pub fn stop(mut self) -> ExitStatus {
        self.signal(rustix::process::Signal::TERM);
        poll("the daemon to exit", Duration::from_secs(10), || {
            self.child.try_wait().ok().flatten()
        })
    }

    /// Memory of the daemon process from `/proc/<pid>/status`: (VmRSS, VmHWM) in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        memory_kib(self.pid())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// (VmRSS, VmHWM) of a process in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A plain HTTP/1.1 GET; `None` when the connection fails or no status line arrives.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// One scrape of the metrics in the classic text format.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let mut map = BTreeMap::new();
            for pair in labels.split(',').filter(|p| !p.is_empty()) {
                if let Some((k, v)) = pair.split_once('=') {
                    map.insert(k.to_owned(), v.trim_matches('"').to_owned());
                }
            }
            samples.push((name.to_owned(), map, value));
        }
        Scrape { samples }
    }

    /// The sum of the samples of `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, map, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| map.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// The failure reasons counted for certificate `name`, with their counts.
    pub fn failure_reasons(&self, name: &str) -> BTreeMap<String, f64> {
        self.samples
            .iter()
            .filter(|(n, map, v)| {
                n == "kyma_certd_renewal_failures_total"
                    && map.get("name").map(String::as_str) == Some(name)
                    && *v > 0.0
            })
            .map(|(_, map, v)| (map.get("reason").cloned().unwrap_or_default(), *v))
            .collect()
    }

    /// The state whose gauge is 1 for certificate `name`.
    pub fn state(&self, name: &str) -> Option<String> {
        self.samples
            .iter()
            .find(|(n, map, v)| {
                n == "kyma_certd_certificate_state"
                    && map.get("name").map(String::as_str) == Some(name)
                    && *v == 1.0
            })
            .and_then(|(_, map, _)| map.get("state").cloned())
    }

    pub fn successes(&self, name: &str) -> f64 {
        self.sum(
            "kyma_certd_renewals_total",
            &[("name", name), ("result", "success")],
        )
    }

    pub fn failures(&self, name: &str) -> f64 {
        self.sum(
            "kyma_certd_renewals_total",
            &[("name", name), ("result", "failure")],
        )
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
