//! The connector reached through a real HTTPS (CONNECT) proxy: Debian's tinyproxy, started
//! on a loopback port with a config file written by the test, with basic authentication.
//! The `proxy` setting wins over `HTTPS_PROXY`, `proxy = "none"` connects directly, the
//! environment applies without the setting, and the proxy's password is never shown.

mod support;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::invoke::Run;
use support::wait::wait_for;
use support::world::{Settings, World};

const USER: &str = "certd";
const PASSWORD: &str = "Pr0xy-pa55-w0rd";

/// A tinyproxy process on 127.0.0.1 that needs `USER`/`PASSWORD`, logging to a file.
struct Tinyproxy {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Tinyproxy {
    fn start(dir: &std::path::Path) -> Tinyproxy {
        let port = free_port();
        let log = dir.join("tinyproxy.log");
        let config = dir.join("tinyproxy.conf");
        // No ConnectPort line: CONNECT is allowed to any port (the simulator's are random).
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{}\"\nLogLevel Info\n\
                 MaxClients 20\nAllow 127.0.0.1\nBasicAuth {USER} {PASSWORD}\nDisableViaHeader Yes\n",
                log.display()
            ),
        )
        .unwrap();
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy is installed (Debian package tinyproxy-bin)");
        let proxy = Tinyproxy { child, port, log };
        wait_until("tinyproxy listens", || {
            TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
        });
        proxy
    }

    fn url(&self, password: &str) -> String {
        format!("http://{USER}:{password}@127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// CONNECT requests the proxy logged towards `target`.
    fn connects_to(&self, target: SocketAddr) -> usize {
        let needle = format!("CONNECT {target} ");
        self.log().lines().filter(|l| l.contains(&needle)).count()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    wait_for(what, Duration::from_secs(10), || done().then_some(()));
}

/// `kyma-certd args...` at trace level, with only the proxy variables in `vars` set.
fn run(world: &World, args: &[&str], stdin: Option<&str>, vars: &[(&str, &str)]) -> Run {
    let mut command = world.command(args);
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        command = command.env_remove(var);
    }
    command = command.env("RUST_LOG", "trace").envs(vars);
    if let Some(text) = stdin {
        command = command.stdin(text);
    }
    let run = command.run();
    let shown = run.text();
    assert!(
        !shown.contains(PASSWORD),
        "the proxy password was shown: {shown}"
    );
    run
}

fn enroll(world: &World, vars: &[(&str, &str)]) -> Run {
    let token = world.sim.mint_compass_token();
    run(
        world,
        &["enroll", "--name", "app", "--token-file", "-"],
        Some(&token),
        vars,
    )
}

fn world_with(proxy_line: Option<String>) -> World {
    let world = World::with(Settings::one_shot(), Duration::from_secs(3600));
    let mut cert = world.compass("app");
    if let Some(line) = proxy_line {
        cert = cert.with(line);
    }
    world.write_config(&[cert]);
    world
}

#[test]
fn configured_proxy_carries_enrollment_and_renewal_and_wins_over_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = Tinyproxy::start(dir.path());
    let world = world_with(Some(format!("proxy = \"{}\"", proxy.url(PASSWORD))));
    // A dead proxy in the environment: used, it would fail every request.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let vars = [("HTTPS_PROXY", dead.as_str()), ("ALL_PROXY", dead.as_str())];

    enroll(&world, &vars).ok();
    wait_until("the proxy logs the enrollment's CONNECT", || {
        proxy.connects_to(world.sim.token_addr()) >= 1
    });
    run(&world, &["renew", "--name", "app", "--force"], None, &vars).ok();
    wait_until("the proxy logs the renewal's CONNECT", || {
        proxy.connects_to(world.sim.mtls_addr()) >= 1
    });
    assert!(!proxy.log().contains(PASSWORD));
    let shown = run(&world, &["check-config"], None, &[]).ok().stdout();
    assert!(shown.contains(&proxy.url("redacted")), "{shown}");
}

#[test]
fn proxy_none_connects_directly_and_no_setting_uses_https_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = Tinyproxy::start(dir.path());
    let from_env = proxy.url(PASSWORD);
    let vars = [("HTTPS_PROXY", from_env.as_str())];

    let direct = world_with(Some("proxy = \"none\"".into()));
    enroll(&direct, &vars).ok();
    assert_eq!(
        proxy.connects_to(direct.sim.token_addr()),
        0,
        "proxy = \"none\" ignores HTTPS_PROXY: {}",
        proxy.log()
    );

    let environment = world_with(None);
    enroll(&environment, &vars).ok();
    wait_until("the proxy logs the CONNECT from HTTPS_PROXY", || {
        proxy.connects_to(environment.sim.token_addr()) >= 1
    });
}

#[test]
fn a_proxy_refusing_the_credentials_fails_the_command_without_showing_them() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = Tinyproxy::start(dir.path());
    let wrong = "Wr0ng-pa55-w0rd";
    let world = world_with(Some(format!("proxy = \"{}\"", proxy.url(wrong))));
    let run = enroll(&world, &[]).fails_with(1);
    let shown = format!("{}{}", run.stdout(), run.stderr());
    assert!(!shown.contains(wrong), "{shown}");
    assert!(
        run.stderr().contains("tunnel error"),
        "the proxy's refusal is named: {}",
        run.stderr()
    );
    assert_eq!(
        world.sim.request_counts().total(),
        0,
        "nothing reached the connector"
    );
}
