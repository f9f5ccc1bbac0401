//! A running `kyma-certd run`: the child process with its stdout and stderr captured line
//! by line (JSON lines parsed, raw text kept), its pid and signals, the metrics address it
//! logs, HTTP and scrape helpers on that port, waits with deadlines for log lines,
//! readiness and exit, and a kill when dropped; and a dependent process beside it.
//! Started only through an `Invocation` (see `invoke.rs`); builds no configuration.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use rustix::process::Signal;

use super::http::{Response, http_get, try_http_get};
use super::scrape::Scrape;
use super::wait::{eventually, try_wait_for, wait_for};

/// How long the daemon may take to bind its metrics port or to log `ready`. Generous:
/// the test machine may be busy building; the tests' own deadlines measure the daemon.
const START_LIMIT: Duration = Duration::from_secs(30);

/// How long `stop` and `terminate` wait for the exit after SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// How long an exited daemon's pipes may stay open: a hook it started may hold them.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// How long `try_get` waits for an answer.
const TRY_GET_LIMIT: Duration = Duration::from_secs(10);

/// The prefix of the startup line naming the metrics address, in either log format.
const METRICS_LINE: &str = "metrics on http://";

/// One line the daemon wrote, with when the test saw it.
#[derive(Clone, Debug)]
pub struct LogLine {
    pub seen: Instant,
    pub text: String,
    /// The line parsed as JSON; `Null` for a text-format or non-JSON line.
    pub json: serde_json::Value,
}

impl LogLine {
    fn new(text: String) -> LogLine {
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        LogLine {
            seen: Instant::now(),
            text,
            json,
        }
    }

    /// The event's message (JSON lines only).
    pub fn message(&self) -> &str {
        self.json["message"].as_str().unwrap_or_default()
    }

    pub fn level(&self) -> &str {
        self.json["level"].as_str().unwrap_or_default()
    }

    /// The certificate the line is about: the span's `cert` field.
    pub fn cert(&self) -> Option<&str> {
        // Span fields are flattened into every event.
        self.json["cert"].as_str()
    }

    /// An event field (flattened to the top level).
    pub fn field(&self, key: &str) -> &serde_json::Value {
        &self.json[key]
    }

    /// The event's own timestamp.
    pub fn timestamp(&self) -> SystemTime {
        let text = self.json["timestamp"].as_str().expect("a timestamp");
        humantime::parse_rfc3339(text).expect("an RFC 3339 timestamp")
    }

    /// Whether this is the `ready` event, in the JSON or the text format.
    pub fn is_ready(&self) -> bool {
        self.message() == "ready" || self.text.contains(" ready certificates=")
    }

    /// The address in the "metrics on http://ADDR/metrics" startup line, in either format.
    fn metrics_addr(&self) -> Option<SocketAddr> {
        let start = self.text.find(METRICS_LINE)? + METRICS_LINE.len();
        let rest = &self.text[start..];
        rest[..rest.find("/metrics")?].parse().ok()
    }
}

/// The lines of one output stream, filled by a reader thread until the stream closes.
struct Capture {
    lines: Arc<Mutex<Vec<LogLine>>>,
    closed: Arc<AtomicBool>,
}

impl Capture {
    fn start(stream: impl Read + Send + 'static) -> Capture {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(AtomicBool::new(false));
        let (sink, done) = (Arc::clone(&lines), Arc::clone(&closed));
        std::thread::spawn(move || {
            let mut stream = BufReader::new(stream);
            let mut raw = Vec::new();
            // Bytes, not `lines()`: a line that is not UTF-8 must not end the capture.
            while stream.read_until(b'\n', &mut raw).is_ok_and(|n| n > 0) {
                let text = String::from_utf8_lossy(&raw);
                let text = text.strip_suffix('\n').unwrap_or(&text).to_owned();
                sink.lock().unwrap().push(LogLine::new(text));
                raw.clear();
            }
            done.store(true, Ordering::Release);
        });
        Capture { lines, closed }
    }

    /// Whether the writing end is closed: every line is in.
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn lines(&self) -> Vec<LogLine> {
        self.lines.lock().unwrap().clone()
    }

    /// The captured text, each line ended by a newline as the daemon wrote it.
    fn text(&self) -> String {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| format!("{}\n", l.text))
            .collect()
    }

    fn find(&self, matches: impl Fn(&LogLine) -> bool) -> Option<LogLine> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| matches(l))
            .cloned()
    }
}

/// A running `kyma-certd run`. Dropping it kills the process; when the test is failing,
/// the captured stderr is printed to help.
pub struct Daemon {
    pub child: Child,
    pub started: Instant,
    stdout: Capture,
    stderr: Capture,
    metrics_addr: OnceLock<SocketAddr>,
    exited: Option<ExitStatus>,
    /// Names the daemon in the log printed on failure, for tests that run several.
    label: String,
}

impl Daemon {
    /// Starts `command` (a `kyma-certd run`, possibly behind an `exec`), capturing its
    /// stdout and stderr; `label` names it in the log printed when the test fails.
    /// Returns at once.
    pub(super) fn spawn(mut command: Command, label: &str) -> Daemon {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = command.spawn().expect("start kyma-certd run");
        let stdout = Capture::start(child.stdout.take().expect("stdout is piped"));
        let stderr = Capture::start(child.stderr.take().expect("stderr is piped"));
        Daemon {
            child,
            started,
            stdout,
            stderr,
            metrics_addr: OnceLock::new(),
            exited: None,
            label: label.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    // -----------------------------------------------------------------------------------
    // What it wrote

    /// Every stderr line so far.
    pub fn log(&self) -> Vec<LogLine> {
        self.stderr.lines()
    }

    /// Everything written to stderr so far, as text.
    pub fn log_text(&self) -> String {
        self.stderr.text()
    }

    /// Everything written to stdout so far, as text.
    pub fn stdout_text(&self) -> String {
        self.stdout.text()
    }

    /// Lines whose message contains `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<LogLine> {
        self.log()
            .into_iter()
            .filter(|l| l.message().contains(needle))
            .collect()
    }

    /// Waits for a stderr line matching `matches` and returns the first one.
    pub fn wait_for_line(
        &self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&LogLine) -> bool,
    ) -> LogLine {
        let found = try_wait_for(timeout, || self.stderr.find(&matches));
        found.unwrap_or_else(|| {
            panic!(
                "no log line {what} within {timeout:?}:\n{}",
                self.log_text()
            )
        })
    }

    /// Waits for a line whose message contains `needle`.
    pub fn wait_for_message(&self, needle: &str, timeout: Duration) -> LogLine {
        self.wait_for_line(&format!("{needle:?}"), timeout, |l| {
            l.message().contains(needle)
        })
    }

    /// Waits for the `ready` line: every certificate has its first schedule and the
    /// signal handlers are installed.
    pub fn wait_ready(&self) {
        self.wait_for_line("ready", START_LIMIT, LogLine::is_ready);
    }

    /// No PEM body and no key in any line logged so far.
    pub fn assert_no_secrets(&self) {
        for line in self.log() {
            assert!(
                !line.text.contains("-----BEGIN") && !line.text.contains("PRIVATE KEY"),
                "secret material in the log: {}",
                line.text
            );
        }
    }

    // -----------------------------------------------------------------------------------
    // Its metrics port

    /// The metrics address, from the startup line; fails the test if the daemon exits or
    /// stays silent first.
    pub fn metrics_addr(&self) -> SocketAddr {
        *self.metrics_addr.get_or_init(|| {
            wait_for("the metrics address in the log", START_LIMIT, || {
                if let Some(addr) = self.stderr.find(|l| l.metrics_addr().is_some()) {
                    return addr.metrics_addr();
                }
                assert!(
                    !self.stderr.closed(),
                    "the daemon closed its stderr without a metrics address:\n{}",
                    self.log_text()
                );
                None
            })
        })
    }

    /// `GET path` on the metrics port, with the headers.
    pub fn response(&self, path: &str) -> Response {
        http_get(self.metrics_addr(), path, &[])
    }

    /// `GET path` on the metrics port: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        let response = self.response(path);
        (response.status, response.body)
    }

    /// `GET path` on the metrics port: (status, body), `None` if it does not answer.
    pub fn try_get(&self, path: &str) -> Option<(u16, String)> {
        try_http_get(self.metrics_addr(), path, &[], TRY_GET_LIMIT)
            .ok()
            .map(|response| (response.status, response.body))
    }

    /// One scrape of `/metrics`.
    pub fn metrics(&self) -> Scrape {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "{body}");
        Scrape::parse(&body)
    }

    /// Scrapes until `check` accepts a scrape; returns that scrape.
    pub fn wait_scrape(
        &self,
        limit: Duration,
        what: &str,
        check: impl Fn(&Scrape) -> bool,
    ) -> Scrape {
        let mut last = String::new();
        let found = try_wait_for(limit, || {
            let scrape = self.metrics();
            if check(&scrape) {
                return Some(scrape);
            }
            last = scrape.text;
            None
        });
        found.unwrap_or_else(|| {
            panic!(
                "timed out after {limit:?} waiting for {what}\n--- last scrape\n{last}\n--- daemon log\n{}",
                self.log_text()
            )
        })
    }

    /// Waits until the state gauge of `name` says `state`.
    pub fn wait_state(&self, name: &str, state: &str, limit: Duration) -> Scrape {
        self.wait_scrape(limit, &format!("{name} to be {state}"), |s| {
            s.state(name).as_deref() == Some(state)
        })
    }

    // -----------------------------------------------------------------------------------
    // The process

    pub fn signal(&self, signal: Signal) {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, signal).expect("signal the daemon");
    }

    /// SIGUSR1: renew every certificate now.
    pub fn renew_now(&self) {
        self.signal(Signal::USR1);
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        if self.exited.is_some() {
            return false;
        }
        match self.child.try_wait().expect("try_wait") {
            Some(status) => {
                self.exited = Some(status);
                false
            }
            None => true,
        }
    }

    /// Waits up to `timeout` for the process to exit; once it has, every line it wrote
    /// is captured.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        eventually(timeout, || !self.alive());
        if self.exited.is_some() {
            // Bounded: a hook the daemon started may still hold the pipes open.
            eventually(DRAIN_LIMIT, || self.stdout.closed() && self.stderr.closed());
        }
        self.exited
    }

    /// SIGTERM (unless it already exited), then the exit status; fails the test if the
    /// daemon does not exit within 10 s.
    pub fn stop(&mut self) -> ExitStatus {
        if self.alive() {
            self.signal(Signal::TERM);
        }
        self.wait_exit(STOP_LIMIT).unwrap_or_else(|| {
            panic!(
                "kyma-certd did not exit on SIGTERM within {STOP_LIMIT:?}:\n{}",
                self.log_text()
            )
        })
    }

    /// SIGTERM, then the exit status and how long the exit took. Also checks that the
    /// whole log held no secret material.
    pub fn terminate(&mut self) -> (ExitStatus, Duration) {
        let asked = Instant::now();
        let status = self.stop();
        let took = asked.elapsed();
        self.assert_no_secrets();
        (status, took)
    }

    /// Memory of the process from `/proc/<pid>/status`: (VmRSS, VmHWM) in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        memory_kib(self.pid())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- {} log ----\n{}----", self.label, self.log_text());
        }
    }
}

/// (VmRSS, VmHWM) of a process in KiB; zeros once it is gone.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
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

/// A dependent process beside the daemon: `sh` that writes its pid file once its HUP
/// trap is set and appends a line to `hups` for every SIGHUP. Killed on drop.
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
}

impl Drop for Dependent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
