//! What the hook tests share: the environment a hook is given, command hooks, a child
//! process that is killed when its test ends, and polling for what a process did.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use super::{HookConfig, HookEnv};

/// How long [`eventually`] waits.
const POLL_LIMIT: Duration = Duration::from_secs(10);

/// The environment of a certificate `orders` whose files are in `dir`.
pub(super) fn env_for(dir: &Path) -> HookEnv {
    HookEnv {
        name: "orders".into(),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        chain: dir.join("chain.pem"),
        ca: dir.join("ca.pem"),
        fingerprint: "ab".repeat(32),
        not_after: "2030-01-02T03:04:05Z".into(),
    }
}

pub(super) fn command(args: &[&str], timeout: Duration) -> HookConfig {
    HookConfig::Command {
        argv: args.iter().map(|s| s.to_string()).collect(),
        timeout,
    }
}

/// `script` run by `sh -c` with `arg` as `$1`.
pub(super) fn sh(script: &str, arg: &Path, timeout: Duration) -> HookConfig {
    command(&["sh", "-c", script, "sh", arg.to_str().unwrap()], timeout)
}

/// Polls `check` every 20 ms until it holds or [`POLL_LIMIT`] passes.
pub(super) async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + POLL_LIMIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A child process that is killed (and reaped) when the test ends, also when it fails.
pub(super) struct Running(pub(super) Child);

impl Running {
    /// A `sleep 60`, as user and group `uid` when given.
    pub(super) fn sleep(uid: Option<u32>) -> Running {
        use std::os::unix::process::CommandExt as _;
        let mut command = std::process::Command::new("sleep");
        command.arg("60");
        if let Some(uid) = uid {
            command.uid(uid).gid(uid);
        }
        Running(command.spawn().unwrap())
    }

    pub(super) fn pid(&self) -> u32 {
        self.0.id()
    }

    pub(super) fn still_running(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }

    /// The signal that ended it, waiting at most 10 s.
    pub(super) fn ended_by(&mut self) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt as _;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status.signal();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
