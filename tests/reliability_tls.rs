//! TLS strictness of the real binary: a connector whose certificate comes from a CA we do
//! not trust, or names another host, is refused before any request is sent, and the
//! error says which; plain `http://` is refused unless `allow_insecure_http = true`.

mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use support::invoke::Run;
use support::results;
use support::running::Daemon;
use support::scrape::Scrape;
use support::sim::Sim;
use support::wait::wait_for;
use support::world::{Proto, Settings, World};

/// Forwards every connection to 127.0.0.2:<port> to `target`, byte for byte, so that
/// the simulator (which binds 127.0.0.1 and holds a certificate for 127.0.0.1 and
/// localhost) is reached under a name its certificate does not cover.
fn forward_from_127_0_0_2(target: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.2:0").expect("127.0.0.2 is a loopback address");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(target) else {
                continue;
            };
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut s_read, mut c_write) = (server, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_read, &mut s_write);
                let _ = s_write.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_read, &mut c_write);
                let _ = c_write.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    addr
}

/// A plain-HTTP listener that counts connections and answers 503 to anything.
fn plain_listener() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    (addr, seen)
}

fn error_line(output: &Run) -> String {
    output
        .text()
        .lines()
        .find(|l| l.starts_with("kyma-certd: error:"))
        .unwrap_or_default()
        .to_owned()
}

fn scrape(daemon: &Daemon) -> Option<Scrape> {
    let (status, body) = daemon.try_get("/metrics")?;
    (status == 200).then(|| Scrape::parse(&body))
}

#[test]
fn untrusted_or_misnamed_connectors_are_refused_and_the_error_says_which() {
    let other = Sim::ecdsa(Duration::from_secs(3600));
    let world = World::with(Settings::stress(), Duration::from_secs(3600));
    let good = world.cert("good", Proto::Compass);
    // Trusts another simulator's server CA: the same name, another key.
    let untrusted = world.cert("untrusted", Proto::Compass);
    std::fs::write(&untrusted.server_ca, other.server_ca_pem()).unwrap();
    // Trusts an unrelated CA (the simulator's client CA).
    let unknown = world.cert("unknown", Proto::Compass);
    std::fs::write(&unknown.server_ca, world.sim.client_ca_pem()).unwrap();
    let token_fwd = forward_from_127_0_0_2(world.sim.token_addr());
    let mtls_fwd = forward_from_127_0_0_2(world.sim.mtls_addr());
    let mut wrong_host = world.cert("wronghost", Proto::Compass);
    wrong_host.connector_url = Some(format!("https://{token_fwd}/connector/graphql"));
    let certs = [
        good.clone(),
        untrusted.clone(),
        unknown.clone(),
        wrong_host.clone(),
    ];
    world.write_config(&certs);

    // Enrolling: refused at the handshake, before the token could be sent.
    let before = world.sim.request_counts().total();
    let mut messages = Vec::new();
    for (cert, says) in [
        (
            &untrusted,
            "connector's certificate is not trusted: its signature does not verify with the trusted authority's key",
        ),
        (
            &unknown,
            "connector's certificate is not trusted: issued by an authority not in the trusted set",
        ),
        (
            &wrong_host,
            "connector's certificate does not match host 127.0.0.2",
        ),
    ] {
        let output = world.enroll_command(&cert.name).0.run();
        let line = error_line(&output);
        assert_eq!(output.status.code(), Some(1), "{}", output.text());
        assert!(
            line.contains(says),
            "{}: expected {says:?} in {line:?}",
            cert.name
        );
        messages.push(line);
        assert!(!cert.dir.join("current").exists());
    }
    assert_eq!(
        world.sim.request_counts().total(),
        before,
        "a request reached the connector through a refused handshake"
    );

    // Renewing: the same refusals, the old files kept, reason `tls` in the daemon.
    for cert in [&untrusted, &unknown, &wrong_host] {
        let mut trusted = cert.clone();
        trusted.server_ca = good.server_ca.clone();
        trusted.connector_url = good.connector_url.clone();
        world.write_config(&[trusted.clone()]);
        world.enroll(&trusted.name);
    }
    let mtls_url = format!("https://{mtls_fwd}/connector/graphql");
    let wrong_host = wrong_host.with(format!("renewal_url = {mtls_url:?}"));
    let certs = [untrusted.clone(), unknown.clone(), wrong_host.clone()];
    world.write_config(&certs);
    let snapshots: Vec<_> = certs.iter().map(|c| c.snapshot()).collect();
    for (cert, says) in [
        (&certs[0], "not trusted"),
        (&certs[1], "not trusted"),
        (&certs[2], "does not match host 127.0.0.2"),
    ] {
        let output = world
            .command(&["renew", "--force", "--name", &cert.name])
            .run();
        let line = error_line(&output);
        assert_eq!(output.status.code(), Some(1), "{}", output.text());
        assert!(line.contains(says), "{line}");
        messages.push(line);
    }
    let daemon = world.daemon().label("daemon").serving();
    daemon.wait_ready();
    daemon.signal(rustix::process::Signal::USR1);
    let scrape = wait_for(
        "tls failures in the daemon",
        Duration::from_secs(60),
        || {
            let scrape = scrape(&daemon)?;
            certs
                .iter()
                .all(|c| scrape.failures(&c.name) >= 2.0)
                .then_some(scrape)
        },
    );
    for (cert, before) in certs.iter().zip(&snapshots) {
        assert_eq!(
            scrape
                .failure_reasons(&cert.name)
                .keys()
                .collect::<Vec<_>>(),
            ["tls"],
            "{}",
            cert.name
        );
        assert!(cert.snapshot() == *before, "{}: files changed", cert.name);
    }
    drop(daemon);
    results::record(
        "5a-tls-trust-and-name",
        "a connector certificate from a CA other than `server_ca_file` (an unrelated one, and one of the same name with another key), and one reached as 127.0.0.2 (it names 127.0.0.1 and localhost), for enroll, one-shot renew and the daemon",
        "exit 1 with an error saying \"not trusted\" or \"does not match host\"; no request reached the connector; old files kept; the daemon counts reason `tls`",
        &[
            ("enroll errors", messages[..3].join(" / ")),
            (
                "one-shot renewals refused",
                (messages.len() - 3).to_string(),
            ),
            (
                "daemon failures (reason tls)",
                certs
                    .iter()
                    .map(|c| scrape.failures(&c.name))
                    .sum::<f64>()
                    .to_string(),
            ),
        ],
    );
}

#[test]
fn plain_http_is_refused_unless_allow_insecure_http_is_set() {
    let (plain, seen) = plain_listener();
    let world = World::with(Settings::stress(), Duration::from_secs(3600));
    let url = format!("http://{plain}/connector/graphql");

    // In the configuration: a usage error with the file and line.
    let mut cert = world.cert("orders", Proto::Compass);
    cert.connector_url = Some(url.clone());
    world.write_config(std::slice::from_ref(&cert));
    let output = world.command(&["check-config"]).run();
    assert_eq!(output.status.code(), Some(2), "{}", output.text());
    let config_error = output.text();
    let config_line = config_error
        .lines()
        .find(|l| l.contains("connector_url"))
        .unwrap_or_else(|| panic!("{config_error}"))
        .to_owned();
    assert!(
        config_line.contains("config.toml:") && config_line.contains("plain http"),
        "{config_line}"
    );

    // On the command line: refused before connecting.
    let cert = world.cert("orders", Proto::Compass);
    world.write_config(std::slice::from_ref(&cert));
    let output = world
        .enroll_command(&cert.name)
        .0
        .args(["--url", &url])
        .run();
    let refused = error_line(&output);
    assert_eq!(output.status.code(), Some(1), "{}", output.text());
    assert!(
        refused.contains("refusing plain http url") && refused.contains("allow_insecure_http"),
        "{refused}"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 0, "it connected anyway");

    // Allowed: the request goes out over plain HTTP (and fails on the 503).
    let cert = cert.with("allow_insecure_http = true");
    world.write_config(std::slice::from_ref(&cert));
    let check = world.command(&["check-config"]).run();
    assert!(check.status.success(), "{}", check.text());
    assert!(
        check.text().contains("allow_insecure_http is set"),
        "check-config warns about it"
    );
    let output = world
        .enroll_command(&cert.name)
        .0
        .args(["--url", &url])
        .run();
    let allowed = error_line(&output);
    assert_eq!(output.status.code(), Some(1), "{}", output.text());
    assert!(allowed.contains("503"), "{allowed}");
    assert!(
        seen.load(Ordering::SeqCst) >= 1,
        "no plain connection was made"
    );
    results::record(
        "5b-tls-plain-http",
        "an http:// connector URL in the configuration, on the command line, and with allow_insecure_http = true",
        "check-config exits 2 naming file, line and key; enroll exits 1 before connecting; with the flag the request is sent (and check-config warns)",
        &[
            ("configuration", config_line),
            ("command line", refused),
            ("allowed", allowed),
        ],
    );
}
