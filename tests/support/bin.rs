//! The binary under test, started the same way by every suite.
#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The `kyma-certd` built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_kyma-certd");

/// `kyma-certd --config <config> args...` with no stdin and none of the environment
/// that would change its behaviour behind a test's back (log filter, config path,
/// systemd's notify socket and watchdog). Tests set what they need on the result.
pub fn kyma_certd(config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("KYMA_CERTD_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null());
    command
}

/// `kyma-certd run` with `config`, its text log (info and up) on a pipe for the test to
/// read as `child.stderr`.
pub fn run_with_piped_log(config: &Path) -> Child {
    kyma_certd(config, &["run"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kyma-certd run starts")
}
