//! Cold start: the time from spawning `kyma-certd run` to its systemd `READY=1`, read
//! from a unix datagram socket passed as `NOTIFY_SOCKET`, the way systemd sees it. The
//! daemon is stopped with SIGTERM after each run. Prints `ready <milliseconds>` and
//! `stopped <milliseconds>` per run.
//!
//! Usage: `coldstart BINARY CONFIG RUNS`.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coldstart: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [binary, config, runs] = args.as_slice() else {
        return Err(anyhow!("usage: coldstart BINARY CONFIG RUNS"));
    };
    let runs: usize = runs.parse().context("RUNS must be a number")?;
    let folder = tempfile::tempdir()?;
    let socket_path = folder.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path)?;
    for _ in 0..runs {
        // Drain anything a previous run left behind.
        socket.set_nonblocking(true)?;
        let mut buf = [0u8; 4096];
        while socket.recv(&mut buf).is_ok() {}
        socket.set_nonblocking(false)?;
        socket.set_read_timeout(Some(Duration::from_secs(60)))?;

        let started = Instant::now();
        let mut child = Command::new(binary)
            .arg("--config")
            .arg(config)
            .arg("run")
            .env("NOTIFY_SOCKET", &socket_path)
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {binary}"))?;
        let ready = loop {
            let n = match socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(anyhow!("no READY=1 within 60 s: {e}"));
                }
            };
            let message = String::from_utf8_lossy(&buf[..n]);
            if message.lines().any(|l| l == "READY=1") {
                break started.elapsed();
            }
        };
        let pid = rustix::process::Pid::from_raw(child.id() as i32)
            .ok_or_else(|| anyhow!("the child has no pid"))?;
        let stopping = Instant::now();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)?;
        let status = child.wait()?;
        let stopped = stopping.elapsed();
        if !status.success() {
            return Err(anyhow!("the daemon exited with {status} after SIGTERM"));
        }
        println!("ready {:.3}", ready.as_secs_f64() * 1000.0);
        println!("stopped {:.3}", stopped.as_secs_f64() * 1000.0);
    }
    Ok(())
}
