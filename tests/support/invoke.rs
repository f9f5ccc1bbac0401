//! How every test starts the binary under test: an [`Invocation`] of `kyma-certd` with
//! an environment that cannot change its behaviour behind the test's back, built up
//! (arguments, environment, standard input, umask, user), then either run to completion
//! ([`Invocation::run`], a [`Run`]) or started as a daemon ([`Invocation::spawn`],
//! [`Invocation::serving`], [`Invocation::ready`], a [`Daemon`]). A test that must own
//! the process itself (kill it at a random moment, close one of its pipes, read the
//! demo's narration as it comes) takes the finished [`Invocation::command`].

use std::ffi::OsStr;
use std::io::Write as _;
use std::ops::Deref;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::running::Daemon;

/// The `kyma-certd` built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_kyma-certd");

/// Variables that would change the binary's behaviour: the log filter, the configuration
/// path, systemd's notify socket and watchdog.
const INHERITED: [&str; 5] = [
    "RUST_LOG",
    "KYMA_CERTD_CONFIG",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
];

/// `kyma-certd --config <config> args...`.
pub fn kyma_certd(config: &Path, args: &[&str]) -> Invocation {
    Invocation::new(&[]).arg("--config").arg(config).args(args)
}

/// One start of the binary, being put together.
pub struct Invocation {
    command: Command,
    stdin: Option<String>,
    /// Programs that start the binary, innermost first: each runs the rest of the line.
    wrappers: Vec<Vec<String>>,
    user: Option<u32>,
    label: String,
}

impl Invocation {
    /// `kyma-certd args...` with no configuration (the demo needs none).
    pub fn new(args: &[&str]) -> Invocation {
        let mut command = Command::new(BIN);
        command.args(args);
        for var in INHERITED {
            command.env_remove(var);
        }
        Invocation {
            command,
            stdin: None,
            wrappers: Vec::new(),
            user: None,
            label: "kyma-certd".to_owned(),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Invocation {
        self.command.arg(arg);
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Invocation {
        self.command.args(args);
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Invocation {
        self.command.env(key, value);
        self
    }

    pub fn envs(mut self, vars: &[(&str, &str)]) -> Invocation {
        self.command.envs(vars.iter().copied());
        self
    }

    pub fn env_remove(mut self, key: &str) -> Invocation {
        self.command.env_remove(key);
        self
    }

    /// `text` on standard input (else it is empty).
    pub fn stdin(mut self, text: &str) -> Invocation {
        self.stdin = Some(text.to_owned());
        self
    }

    /// Starts under this umask (through `sh`, which sets it and becomes the binary).
    pub fn umask(self, umask: u32) -> Invocation {
        self.shell(&format!("umask {umask:03o};"))
    }

    /// Started by `sh -c '<prefix> exec "$0" "$@"'`: for what only the process that
    /// becomes the binary can set, such as `WATCHDOG_PID=$$` (its own pid, as systemd
    /// sets it).
    pub fn shell(self, prefix: &str) -> Invocation {
        self.through(&["sh", "-c", &format!("{prefix} exec \"$0\" \"$@\"")])
    }

    /// Started by `wrapper`, which gets the binary and its arguments as its last
    /// arguments (a namespace, another user) and ends by executing them.
    pub fn through(mut self, wrapper: &[&str]) -> Invocation {
        self.wrappers
            .push(wrapper.iter().map(|w| w.to_string()).collect());
        self
    }

    /// As user and group `id` (the tests must run as root). Who owns the files is the
    /// test's business.
    pub fn user(mut self, id: u32) -> Invocation {
        self.user = Some(id);
        self
    }

    /// Names the daemon in the log printed when the test fails, for tests that run several.
    pub fn label(mut self, label: &str) -> Invocation {
        self.label = label.to_owned();
        self
    }

    /// The finished command, for a test that owns the process: standard input is null,
    /// standard output and error are the test's to set.
    pub fn command(self) -> Command {
        let mut command = self.command;
        for wrapper in &self.wrappers {
            let mut outer = Command::new(&wrapper[0]);
            outer
                .args(&wrapper[1..])
                .arg(command.get_program())
                .args(command.get_args());
            for (key, value) in command.get_envs() {
                match value {
                    Some(value) => outer.env(key, value),
                    None => outer.env_remove(key),
                };
            }
            command = outer;
        }
        if let Some(id) = self.user {
            command.uid(id).gid(id);
        }
        command.stdin(Stdio::null());
        command
    }

    /// Runs to completion, with standard output and error captured.
    pub fn run(mut self) -> Run {
        let stdin = self.stdin.take();
        let mut command = self.command();
        command
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("kyma-certd starts");
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .expect("stdin is piped")
                .write_all(text.as_bytes())
                .expect("stdin written");
        }
        Run(child.wait_with_output().expect("kyma-certd finishes"))
    }

    /// Starts it as a [`Daemon`] (its output captured) and returns at once.
    pub fn spawn(self) -> Daemon {
        let label = self.label.clone();
        Daemon::spawn(self.command(), &label)
    }

    /// Starts it and waits until its metrics endpoint is bound.
    pub fn serving(self) -> Daemon {
        let daemon = self.spawn();
        daemon.metrics_addr();
        daemon
    }

    /// Starts it and waits for its `ready` line: every certificate has its first
    /// schedule and the signal handlers are installed.
    pub fn ready(self) -> Daemon {
        let daemon = self.spawn();
        daemon.wait_ready();
        daemon
    }
}

/// A finished command.
pub struct Run(pub Output);

impl Deref for Run {
    type Target = Output;

    fn deref(&self) -> &Output {
        &self.0
    }
}

impl Run {
    /// The exit code; -1 when a signal ended it.
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    /// Standard output, then standard error.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout(), self.stderr())
    }

    /// Exit status and both outputs, for assertion messages.
    pub fn describe(&self) -> String {
        describe(&self.0)
    }

    /// Asserts success, showing the output otherwise.
    pub fn ok(self) -> Run {
        assert_eq!(self.code(), 0, "expected success: {}", self.describe());
        self
    }

    /// Asserts exit code `code`, showing the output otherwise.
    pub fn fails_with(self, code: i32) -> Run {
        assert_eq!(
            self.code(),
            code,
            "expected exit {code}: {}",
            self.describe()
        );
        self
    }
}

/// Exit status, stdout and stderr of any finished program, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
