//! TLS strictness of the real binary: a connector whose certificate comes from a CA we do
//! not trust, or names another host, is refused before any request is sent, and the
//! error says which; plain `http://` is refused unless `allow_insecure_http = true`.

#[path = "support/reliability.rs"]
mod harness;
#[path = "support/results.rs"]
mod results;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use harness::{Daemon, Layout, Proto, Scrape, Sim, Workspace, wait_for};

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

fn error_line(output: &std::process::Output) -> String {
    harness::text(output)
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
    let sim = Sim::ecdsa(Duration::from_secs(3600));
    let other = Sim::ecdsa(Duration::from_secs(3600));
    let workspace = Workspace::new();
    let good = workspace.cert("good", &sim, Proto::Compass, Layout::Symlink);
    // Trusts another simulator's server CA: the same name, another key.
    let untrusted = workspace.cert("untrusted", &sim, Proto::Compass, Layout::Symlink);
    std::fs::write(&untrusted.server_ca, other.server_ca_pem()).unwrap();
    // Trusts an unrelated CA (the simulator's client CA).
    let unknown = workspace.cert("unknown", &sim, Proto::Compass, Layout::Symlink);
    std::fs::write(&unknown.server_ca, sim.client_ca_pem()).unwrap();
    let token_fwd = forward_from_127_0_0_2(sim.token_addr());
    let mtls_fwd = forward_from_127_0_0_2(sim.mtls_addr());
    let mut wrong_host = workspace.cert("wronghost", &sim, Proto::Compass, Layout::Symlink);
    wrong_host.connector_url = Some(format!("https://{token_fwd}/connector/graphql"));
    let certs = [
        good.clone(),
        untrusted.clone(),
        unknown.clone(),
        wrong_host.clone(),
    ];
    workspace.write_config(&certs);

    // Enrolling: refused at the handshake, before the token could be sent.
    let before = sim.request_counts().total();
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
        let output = workspace.enroll_command(&sim, cert).output().unwrap();
        let line = error_line(&output);
        assert_eq!(output.status.code(), Some(1), "{}", harness::text(&output));
        assert!(
            line.contains(says),
            "{}: expected {says:?} in {line:?}",
            cert.name
        );
        messages.push(line);
        assert!(!cert.dir.join("current").exists());
    }
    assert_eq!(
        sim.request_counts().total(),
        before,
        "a request reached the connector through a refused handshake"
    );

    // Renewing: the same refusals, the old files kept, reason `tls` in the daemon.
    for cert in [&untrusted, &unknown, &wrong_host] {
        let mut trusted = cert.clone();
        trusted.server_ca = good.server_ca.clone();
        trusted.connector_url = good.connector_url.clone();
        workspace.write_config(&[trusted.clone()]);
        workspace.enroll(&sim, &trusted);
    }
    let mtls_url = format!("https://{mtls_fwd}/connector/graphql");
    let wrong_host = wrong_host.with(format!("renewal_url = {mtls_url:?}"));
    let certs = [untrusted.clone(), unknown.clone(), wrong_host.clone()];
    workspace.write_config(&certs);
    let snapshots: Vec<_> = certs.iter().map(|c| c.snapshot()).collect();
    for (cert, says) in [
        (&certs[0], "not trusted"),
        (&certs[1], "not trusted"),
        (&certs[2], "does not match host 127.0.0.2"),
    ] {
        let output = workspace.run(&["renew", "--force", "--name", &cert.name]);
        let line = error_line(&output);
        assert_eq!(output.status.code(), Some(1), "{}", harness::text(&output));
        assert!(line.contains(says), "{line}");
        messages.push(line);
    }
    let daemon = Daemon::start(&workspace, "daemon");
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
    let sim = Sim::ecdsa(Duration::from_secs(3600));
    let (plain, seen) = plain_listener();
    let workspace = Workspace::new();
    let url = format!("http://{plain}/connector/graphql");

    // In the configuration: a usage error with the file and line.
    let mut cert = workspace.cert("orders", &sim, Proto::Compass, Layout::Symlink);
    cert.connector_url = Some(url.clone());
    workspace.write_config(std::slice::from_ref(&cert));
    let output = workspace.run(&["check-config"]);
    assert_eq!(output.status.code(), Some(2), "{}", harness::text(&output));
    let config_error = harness::text(&output);
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
    let cert = workspace.cert("orders", &sim, Proto::Compass, Layout::Symlink);
    workspace.write_config(std::slice::from_ref(&cert));
    let mut command = workspace.enroll_command(&sim, &cert);
    command.args(["--url", &url]);
    let output = command.output().unwrap();
    let refused = error_line(&output);
    assert_eq!(output.status.code(), Some(1), "{}", harness::text(&output));
    assert!(
        refused.contains("refusing plain http url") && refused.contains("allow_insecure_http"),
        "{refused}"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 0, "it connected anyway");

    // Allowed: the request goes out over plain HTTP (and fails on the 503).
    let cert = cert.with("allow_insecure_http = true");
    workspace.write_config(std::slice::from_ref(&cert));
    let check = workspace.run(&["check-config"]);
    assert!(check.status.success(), "{}", harness::text(&check));
    assert!(
        harness::text(&check).contains("allow_insecure_http is set"),
        "check-config warns about it"
    );
    let mut command = workspace.enroll_command(&sim, &cert);
    command.args(["--url", &url]);
    let output = command.output().unwrap();
    let allowed = error_line(&output);
    assert_eq!(output.status.code(), Some(1), "{}", harness::text(&output));
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
