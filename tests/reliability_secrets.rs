//! Secrets and least privilege through the real binary: key files get their final mode
//! whatever the umask, and no file ever shows a key with a wider mode while it is being
//! written; no secret appears in the output, errors, `status` or `state.json` of any
//! command, at trace level, under every fault; the metrics port serves its three paths
//! and nothing else, and outlives garbage and slow clients.

mod support;

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::mem::MaybeUninit;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kyma_connector_sim::{Fault, FaultScope};
use rustix::fs::inotify;
use support::disk::list;
use support::disk::mode_of;
use support::http::try_http_get;
use support::invoke::{Invocation, Run};
use support::results;
use support::scrape::Scrape;
use support::secrets;
use support::sim::Sim;
use support::wait::wait_for;
use support::world::{CertSpec, FILE_NAMES, Layout, Proto, Settings, World};

/// Records the mode of every file created under some directories, as soon as inotify
/// reports it (new subdirectories are watched as they appear).
struct ModeWatch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(PathBuf, u32)>>,
}

impl ModeWatch {
    fn start(dirs: &[PathBuf]) -> ModeWatch {
        let fd = inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC)
            .expect("inotify");
        let flags = inotify::WatchFlags::CREATE | inotify::WatchFlags::MOVED_TO;
        let mut watched: HashMap<i32, PathBuf> = HashMap::new();
        for dir in dirs {
            let wd = inotify::add_watch(&fd, dir, flags).expect("watching a directory");
            watched.insert(wd, dir.clone());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = [MaybeUninit::uninit(); 8192];
            let mut reader = inotify::Reader::new(&fd, &mut buf);
            loop {
                let mut new_dirs = Vec::new();
                match reader.next() {
                    Ok(event) => {
                        let (Some(dir), Some(name)) = (watched.get(&event.wd()), event.file_name())
                        else {
                            continue;
                        };
                        let path = dir.join(name.to_string_lossy().as_ref());
                        match std::fs::symlink_metadata(&path) {
                            Ok(meta) if meta.is_dir() => new_dirs.push(path),
                            Ok(meta) if meta.is_file() => {
                                use std::os::unix::fs::PermissionsExt as _;
                                seen.push((path, meta.permissions().mode() & 0o7777));
                            }
                            _ => {}
                        }
                    }
                    Err(rustix::io::Errno::WOULDBLOCK) => {
                        if stopping.load(Ordering::SeqCst) {
                            return seen;
                        }
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    Err(e) => panic!("reading inotify events: {e}"),
                }
                for dir in new_dirs {
                    if let Ok(wd) = inotify::add_watch(&fd, &dir, flags) {
                        watched.insert(wd, dir.clone());
                    }
                    // Files made before the watch was in place.
                    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                        if let Ok(meta) = entry.metadata()
                            && meta.is_file()
                        {
                            use std::os::unix::fs::PermissionsExt as _;
                            seen.push((entry.path(), meta.permissions().mode() & 0o7777));
                        }
                    }
                }
            }
        });
        ModeWatch { stop, thread }
    }

    fn finish(self) -> Vec<(PathBuf, u32)> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("the watcher thread")
    }
}

fn run_with_umask(command: Invocation, umask: u32) -> Run {
    let output = command.umask(umask).run();
    assert!(output.status.success(), "{}", output.text());
    output
}

/// Modes of every file of a certificate: (path, mode, is the key).
fn modes(cert: &CertSpec) -> Vec<(PathBuf, u32, bool)> {
    let mut out = Vec::new();
    match cert.layout {
        Layout::Symlink => {
            for name in list(&cert.dir) {
                let gen_dir = cert.dir.join(&name);
                if name.starts_with("gen-") {
                    for file in FILE_NAMES {
                        let path = gen_dir.join(file);
                        out.push((path.clone(), mode_of(&path), file == "key.pem"));
                    }
                }
            }
        }
        Layout::Files => {
            for (i, path) in cert.consumer_paths().into_iter().enumerate() {
                out.push((path.clone(), mode_of(&path), i == 1));
            }
        }
    }
    out
}

/// The `[[certificate.output]]` files of the mode test, and whether each holds the key.
const OUTPUT_FILES: [(&str, bool); 4] = [
    ("client.pem", true),
    ("trust.pem", false),
    ("keystore.p12", true),
    ("truststore.p12", false),
];

/// Output tables writing [`OUTPUT_FILES`], with a keystore password file in `world`.
fn outputs_tables(world: &World) -> String {
    let password = world.path("keystore.pass");
    std::fs::write(&password, format!("{KEYSTORE_PASSWORD}\n")).unwrap();
    format!(
        "[[certificate.output]]\nkind = \"pem-bundle\"\nfile = \"client.pem\"\nparts = [\"key\", \"cert\", \"chain\"]\n\
         [[certificate.output]]\nkind = \"pem-bundle\"\nfile = \"trust.pem\"\nparts = [\"ca\"]\n\
         [[certificate.output]]\nkind = \"pkcs12\"\nfile = \"keystore.p12\"\npassword_file = {:?}\ntruststore = \"truststore.p12\"\n",
        password.display().to_string()
    )
}

const KEYSTORE_PASSWORD: &str = "Keyst0re-pa55word";

#[test]
fn files_get_their_final_modes_under_umask_000_and_077_and_keys_are_never_wider() {
    let mut observed = 0;
    let mut widest_key = 0;
    for umask in [0o000, 0o077] {
        let world = World::with(Settings::stress(), Duration::from_secs(3600));
        let outputs = outputs_tables(&world);
        let mut sym = world.cert("sym", Proto::Compass);
        sym.tail.push_str(&outputs);
        let mut files = world
            .cert("files", Proto::KymaRest)
            .files_layout()
            .with("cert_mode = \"0640\"")
            .with("key_mode = \"0400\"");
        files.tail.push_str(&outputs);
        let certs = [sym, files];
        world.write_config(&certs);
        for cert in &certs {
            std::fs::create_dir_all(&cert.dir).unwrap();
            std::fs::create_dir_all(&cert.files_dir).unwrap();
        }
        let watch = ModeWatch::start(&[
            certs[0].dir.clone(),
            certs[1].dir.clone(),
            certs[1].files_dir.clone(),
        ]);
        for cert in &certs {
            run_with_umask(world.enroll_command(&cert.name).0, umask);
            for _ in 0..5 {
                run_with_umask(
                    world.command(&["renew", "--force", "--name", &cert.name]),
                    umask,
                );
            }
        }
        // The daemon too, renewing both on SIGUSR1.
        let daemon = world.daemon().umask(umask).ready();
        daemon.signal(rustix::process::Signal::USR1);
        wait_for(
            "two renewals in the daemon",
            Duration::from_secs(30),
            || {
                let (_, body) = daemon.try_get("/metrics")?;
                let scrape = Scrape::parse(&body);
                certs
                    .iter()
                    .all(|c| scrape.successes(&c.name) >= 1.0)
                    .then_some(())
            },
        );
        drop(daemon);
        let seen = watch.finish();

        let (key_mode, cert_mode) = ([0o600, 0o400], [0o644, 0o640]);
        for (index, cert) in certs.iter().enumerate() {
            let outputs = OUTPUT_FILES.iter().map(|(name, secret)| {
                (cert.dir.join(name), mode_of(&cert.dir.join(name)), *secret)
            });
            for (path, mode, is_key) in modes(cert).into_iter().chain(outputs) {
                let want = if is_key {
                    key_mode[index]
                } else {
                    cert_mode[index]
                };
                assert_eq!(mode, want, "umask {umask:03o}: {}", path.display());
            }
        }
        assert_eq!(mode_of(&certs[0].dir), 0o755, "umask {umask:03o}");
        assert_eq!(
            mode_of(&certs[0].dir.join("state.json")),
            0o644,
            "umask {umask:03o}"
        );
        // Every file seen while it was written, temporary ones included: a key never
        // had a bit its final mode lacks, nor did anything else.
        for (path, mode) in &seen {
            let name = path.file_name().unwrap().to_string_lossy();
            let is_files_layout = path.starts_with(&certs[1].files_dir);
            let secret_output = OUTPUT_FILES
                .iter()
                .any(|(output, secret)| *secret && name.contains(output));
            let allowed = if name.contains("key.pem") || secret_output {
                widest_key |= *mode;
                if is_files_layout { 0o400 } else { 0o600 }
            } else if name.starts_with("state.json") || name.starts_with("journal.json") {
                0o644
            } else if is_files_layout {
                0o640
            } else {
                0o644
            };
            assert_eq!(
                mode & !allowed,
                0,
                "umask {umask:03o}: {} was created with mode {mode:04o}",
                path.display()
            );
        }
        let keys_seen = seen
            .iter()
            .filter(|(p, _)| p.to_string_lossy().contains("key.pem"))
            .count();
        assert!(
            keys_seen >= 10,
            "umask {umask:03o}: only {keys_seen} key files were seen being written"
        );
        let keystores_seen = seen
            .iter()
            .filter(|(p, _)| p.to_string_lossy().contains("keystore.p12"))
            .count();
        assert!(
            keystores_seen >= 10,
            "umask {umask:03o}: only {keystores_seen} keystores were seen being written"
        );
        observed += seen.len();
    }
    results::record(
        "7a-modes",
        "enroll, 5 × `renew --force` and a daemon renewal per layout under umask 000 and 077 (symlink: default modes; files: cert_mode 0640, key_mode 0400), each with a key bundle, a CA bundle, a PKCS#12 keystore and truststore as outputs, with an inotify watcher stat-ing every file as it is created",
        "keys, the key bundle and the keystore exactly key_mode, certificates, the CA bundle and the truststore exactly cert_mode in every generation; directories 0755, state.json 0644; no file, temporary ones included, ever had a mode bit beyond its final mode",
        &[
            ("files observed as they were created", observed.to_string()),
            ("union of key modes observed", format!("{widest_key:04o}")),
        ],
    );
}

/// A command run at trace level and its output, for the scan at the end.
struct Seen {
    what: String,
    text: String,
}

fn traced(world: &World, args: &[&str]) -> Invocation {
    world.command(args).env("RUST_LOG", "trace")
}

/// `enroll --name` at trace level for `cert` (with the URL for kyma-rest), and a fresh
/// token from its simulator.
fn enroll_parts(world: &World, cert: &CertSpec) -> (Invocation, String) {
    let command = traced(world, &["enroll", "--name", &cert.name]);
    match cert.protocol {
        Proto::Compass => (command, cert.sim().mint_compass_token()),
        Proto::KymaRest => {
            let (token, mut url) = cert.sim().mint_rest_token();
            url.set_query(None);
            (command.args(["--url", url.as_str()]), token)
        }
    }
}

/// Enrollments with the Compass Director's other token forms for `cert`, each with every
/// form of its token registered as a secret: (what, arguments, token file text, succeeds).
/// compass: the rawEncoded blob and the legacy connector URL (both used with
/// `connector_url`); kyma-rest: the legacy connector URL alone, and a blob without `--url`,
/// which is refused before any request.
fn director_forms(
    world: &World,
    cert: &CertSpec,
    secrets: &mut secrets::Secrets,
) -> Vec<(&'static str, Invocation, String, bool)> {
    let args = || traced(world, &["enroll", "--name", &cert.name]);
    let sim = cert.sim();
    let mut minted = || {
        let director = sim.mint_director_token(sim.app());
        secrets.add("a director token", &director.token);
        secrets.add("a rawEncoded blob", &director.raw_encoded);
        secrets.add("a legacy connector URL", &director.legacy_connector_url);
        director
    };
    match cert.protocol {
        Proto::Compass => vec![
            (
                "enroll with a rawEncoded blob",
                args(),
                minted().raw_encoded,
                true,
            ),
            (
                "enroll with a legacy connector URL",
                args(),
                minted().legacy_connector_url,
                true,
            ),
        ],
        Proto::KymaRest => vec![
            (
                "enroll with a blob refused by kyma-rest",
                args(),
                minted().raw_encoded,
                false,
            ),
            (
                "enroll with a legacy connector URL",
                args(),
                minted().legacy_connector_url,
                true,
            ),
        ],
    }
}

fn record(seen: &mut Vec<Seen>, what: &str, output: Run) -> Run {
    seen.push(Seen {
        what: what.to_owned(),
        text: output.text(),
    });
    output
}

fn faults() -> Vec<Fault> {
    vec![
        Fault::Latency {
            delay: Duration::from_secs(3),
        },
        Fault::InternalError,
        Fault::Unavailable,
        Fault::MalformedJson,
        Fault::InvalidBase64,
        Fault::ForeignKey,
        Fault::WrongSubject,
        Fault::ExpiredCertificate,
        Fault::UnrelatedCa,
        Fault::Stall {
            duration: Duration::from_secs(3600),
        },
        Fault::OversizedBody { bytes: 4 << 20 },
        Fault::DropHandshake,
    ]
}

#[test]
fn no_command_shows_a_secret_at_trace_level_not_even_under_faults() {
    let compass = Sim::ecdsa(Duration::from_secs(3600));
    let rest = Sim::ecdsa(Duration::from_secs(3600));
    let world = World::with(Settings::stress(), Duration::from_secs(3600));
    // Both with outputs: a bundle holding the key, keystores with a password.
    let outputs = outputs_tables(&world);
    let mut certs = [
        world.cert_at("c", Proto::Compass, &compass),
        world.cert_at("r", Proto::KymaRest, &rest).files_layout(),
    ];
    for cert in &mut certs {
        cert.tail.push_str(&outputs);
    }
    let sims = [&compass, &rest];
    world.write_config(&certs);
    let mut secrets = secrets::Secrets::new();
    secrets.add("the keystore password", KEYSTORE_PASSWORD);
    let mut seen = Vec::new();
    let mut state_files = Vec::new();
    let collect = |secrets: &mut secrets::Secrets, state_files: &mut Vec<String>| {
        secrets.add_keys_under(world.root());
        for cert in &certs {
            state_files.push(cert.state_json().unwrap_or_default());
        }
    };

    record(
        &mut seen,
        "check-config",
        traced(&world, &["check-config"]).run(),
    );
    // Enrollment: a wrong token (which a server might echo), then right ones from a
    // file, from standard input, on the command line, and an unneeded one.
    let bogus_token = "Bogus0Token1With2Digits3And4Case5Xy";
    secrets.add("a rejected one-time token", bogus_token);
    let bogus = world.path("bogus.token");
    std::fs::write(&bogus, bogus_token).unwrap();
    let token_file = world.path("enroll.token");
    for cert in &certs {
        let (command, _) = enroll_parts(&world, cert);
        let output = record(
            &mut seen,
            "enroll with a wrong token",
            command.arg("--token-file").arg(&bogus).run(),
        );
        assert!(!output.status.success(), "{}", output.text());

        let (command, token) = enroll_parts(&world, cert);
        secrets.add("a one-time token", &token);
        std::fs::write(&token_file, &token).unwrap();
        let output = record(
            &mut seen,
            "enroll --token-file",
            command.arg("--token-file").arg(&token_file).run(),
        );
        assert!(output.status.success(), "{}", output.text());
        collect(&mut secrets, &mut state_files);

        let (command, token) = enroll_parts(&world, cert);
        secrets.add("a one-time token", &token);
        let output = record(
            &mut seen,
            "enroll --token-file -",
            command
                .args(["--token-file", "-"])
                .stdin(&format!("{token}\n"))
                .run(),
        );
        assert!(output.status.success(), "{}", output.text());
        collect(&mut secrets, &mut state_files);

        let (command, token) = enroll_parts(&world, cert);
        secrets.add("a one-time token", &token);
        let output = record(
            &mut seen,
            "enroll --token",
            command.args(["--token", &token]).run(),
        );
        assert!(output.status.success(), "{}", output.text());
        collect(&mut secrets, &mut state_files);

        for (what, command, text, succeeds) in director_forms(&world, cert, &mut secrets) {
            std::fs::write(&token_file, &text).unwrap();
            let output = record(
                &mut seen,
                what,
                command.arg("--token-file").arg(&token_file).run(),
            );
            assert_eq!(
                output.status.success(),
                succeeds,
                "{what}: {}",
                output.text()
            );
            collect(&mut secrets, &mut state_files);
        }

        let (command, token) = enroll_parts(&world, cert);
        secrets.add("an unused one-time token", &token);
        std::fs::write(&token_file, &token).unwrap();
        let output = record(
            &mut seen,
            "enroll --if-needed",
            command
                .arg("--token-file")
                .arg(&token_file)
                .arg("--if-needed")
                .run(),
        );
        assert!(output.status.success(), "{}", output.text());
    }

    // Renewals: not due, forced, and forced under every fault.
    let mut faulted = 0;
    for (cert, sim) in certs.iter().zip(sims) {
        for args in [
            &["renew", "--name", &cert.name][..],
            &["renew", "--force", "--name", &cert.name],
        ] {
            let output = record(&mut seen, &args.join(" "), traced(&world, args).run());
            assert!(output.status.success(), "{}", output.text());
            collect(&mut secrets, &mut state_files);
        }
        for fault in faults() {
            sim.set_fault(fault.clone(), FaultScope::UntilCleared);
            let output = record(
                &mut seen,
                &format!("renew --force under {fault:?}"),
                traced(&world, &["renew", "--force", "--name", &cert.name]).run(),
            );
            sim.clear_fault();
            assert_eq!(
                output.status.code(),
                Some(1),
                "{fault:?}: {}",
                output.text()
            );
            faulted += 1;
            collect(&mut secrets, &mut state_files);
            for args in [&["status"][..], &["status", "--json"]] {
                record(&mut seen, &args.join(" "), traced(&world, args).run());
            }
        }
    }
    // Revocation, and what comes after it.
    let output = record(
        &mut seen,
        "revoke --yes",
        traced(&world, &["revoke", "--name", "c", "--yes"]).run(),
    );
    assert!(output.status.success(), "{}", output.text());
    let output = record(
        &mut seen,
        "renew after revoke",
        traced(&world, &["renew", "--force", "--name", "c"]).run(),
    );
    assert_eq!(output.status.code(), Some(3), "{}", output.text());
    for args in [&["status"][..], &["status", "--json"]] {
        record(&mut seen, &args.join(" "), traced(&world, args).run());
    }
    collect(&mut secrets, &mut state_files);
    // The demo, briefly.
    let demo = record(
        &mut seen,
        "demo",
        Invocation::new(&["demo", "--duration", "4s", "--validity", "20s"])
            .env("RUST_LOG", "trace")
            .run(),
    );
    assert!(demo.status.success(), "{}", demo.text());

    for sim in sims {
        secrets.add_issued(sim);
    }
    for entry in &seen {
        secrets.assert_clean(&format!("the output of `{}`", entry.what), &entry.text);
    }
    for state in &state_files {
        secrets.assert_clean("state.json", state);
    }
    results::record(
        "7b-secrets-commands",
        "every command at RUST_LOG=trace, with a key bundle and PKCS#12 outputs configured: check-config, enroll (wrong token, --token-file, stdin, --token, the Director's rawEncoded blob and legacy connector URL, a refused form, --if-needed), renew (not due, forced, forced under each of the 12 faults), status and status --json after each, revoke, renew after revoke, demo; both protocols",
        "no PEM armour, no base64 of PEM text, no key or certificate body, no token (rejected ones included), no keystore password and no long mixed-case base64 run in any output or state.json",
        &[
            ("command runs", seen.len().to_string()),
            ("faulted renewals", faulted.to_string()),
            (
                "texts scanned",
                format!("{} ({} KiB)", secrets.scanned, secrets.scanned_bytes / 1024),
            ),
        ],
    );
}

/// Sends `request` on a fresh connection and returns the status code (0 when the
/// server answered nothing before closing).
fn raw(addr: SocketAddr, request: &[u8]) -> u16 {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return 0;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.write_all(request);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn metrics_port_serves_only_its_three_paths_and_outlives_garbage_and_slow_clients() {
    let world = World::with(Settings::stress(), Duration::from_secs(3600));
    let cert = world.cert("orders", Proto::Compass);
    world.write_config(std::slice::from_ref(&cert));
    world.enroll(&cert.name);
    let mut daemon = world.daemon().label("daemon").serving();
    daemon.wait_ready();
    let addr = daemon.metrics_addr();
    let fds_before = open_fds(daemon.pid());
    let (_, hwm_before) = daemon.memory_kib();

    // Only GET and HEAD of the three paths succeed.
    let get =
        |target: &str| format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    for ok in ["/metrics", "/healthz", "/readyz", "/metrics?x=1"] {
        assert_eq!(raw(addr, get(ok).as_bytes()), 200, "{ok}");
    }
    let mut refused = 0;
    for target in [
        "/",
        "/metrics/",
        "/metricsx",
        "/Metrics",
        "//metrics",
        "/metrics/../healthz",
        "/../../etc/passwd",
        "/debug/pprof",
        "/favicon.ico",
        "/healthz/",
        "*",
        "/%6detrics",
    ] {
        let status = raw(addr, get(target).as_bytes());
        assert!(
            matches!(status, 400 | 404),
            "GET {target} answered {status}"
        );
        refused += 1;
    }
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"] {
        let request = format!(
            "{method} /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let status = raw(addr, request.as_bytes());
        assert_eq!(status, 405, "{method} /metrics answered {status}");
        refused += 1;
    }

    // A burst of garbage: none of it is answered with 200, and the port stays up.
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut garbage_sent = 0;
    let long_header = format!(
        "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let shapes: Vec<Vec<u8>> = vec![
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(), // a TLS ClientHello
        b"GET /metrics\r\n\r\n".to_vec(),                         // HTTP/0.9
        b"GET /metrics HTTP/9.9\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
            .to_vec(),
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".to_vec(),
        b"\r\n\r\n\r\n\r\n".to_vec(),
        long_header.into_bytes(),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
    ];
    let mut handles = Vec::new();
    for i in 0..300 {
        let payload = if i % 3 == 0 {
            (0..512)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng as u8
                })
                .collect()
        } else {
            shapes[i % shapes.len()].clone()
        };
        garbage_sent += 1;
        handles.push(std::thread::spawn(move || (raw(addr, &payload), payload)));
    }
    for handle in handles {
        let (status, payload) = handle.join().unwrap();
        assert_ne!(
            status,
            200,
            "garbage was answered with 200: {:?}",
            String::from_utf8_lossy(&payload[..payload.len().min(120)])
        );
    }
    assert_eq!(raw(addr, get("/healthz").as_bytes()), 200);

    // Slow clients: more than the connection limit, trickling a request byte by byte.
    let stop = Arc::new(AtomicBool::new(false));
    let mut slow = Vec::new();
    for _ in 0..100 {
        let stop = Arc::clone(&stop);
        slow.push(std::thread::spawn(move || {
            let Ok(mut stream) = TcpStream::connect(addr) else {
                return Duration::ZERO;
            };
            let started = Instant::now();
            for byte in b"GET /metrics HTTP/1.1\r\nHost: slow\r\nX-Slow: "
                .iter()
                .cycle()
            {
                if stop.load(Ordering::SeqCst) || stream.write_all(&[*byte]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            started.elapsed()
        }));
    }
    std::thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    let answer = try_http_get(addr, "/healthz", &[], Duration::from_secs(20));
    let waited = asked.elapsed();
    assert_eq!(
        answer.map(|a| a.status).ok(),
        Some(200),
        "no answer while slow clients held the port"
    );
    assert!(
        waited < Duration::from_secs(12),
        "a scrape waited {waited:?} behind slow clients"
    );
    // The server cuts slow clients off; they do not hold connections forever.
    wait_for(
        "the slow clients to be cut off",
        Duration::from_secs(30),
        || slow.iter().all(|h| h.is_finished()).then_some(()),
    );
    stop.store(true, Ordering::SeqCst);
    let held: Vec<Duration> = slow.into_iter().map(|h| h.join().unwrap()).collect();
    let longest = held.iter().max().copied().unwrap_or_default();

    assert!(daemon.alive());
    assert_eq!(daemon.try_get("/metrics").map(|r| r.0), Some(200));
    let fds_after = wait_for(
        "descriptors to be released",
        Duration::from_secs(15),
        || {
            let n = open_fds(daemon.pid());
            (n <= fds_before + 2).then_some(n)
        },
    );
    let (_, hwm_after) = daemon.memory_kib();
    assert!(
        hwm_after <= hwm_before + 16 * 1024,
        "peak memory grew from {hwm_before} to {hwm_after} KiB"
    );
    results::record(
        "7c-metrics-port",
        "the metrics port under wrong paths and methods, 300 garbage requests (random bytes, TLS, HTTP/0.9 and 2.0 prefaces, bad and doubled Content-Length, a 64 KiB header) and 100 slow clients trickling a request (more than its 64-connection limit)",
        "only GET/HEAD of /metrics, /healthz, /readyz answer 200; others 400/404/405; garbage never 200; a scrape during the slow clients is answered within 12 s; slow clients are cut off; descriptors return to their count before; the daemon keeps running",
        &[
            ("refused requests", refused.to_string()),
            ("garbage requests", garbage_sent.to_string()),
            (
                "scrape during slow clients",
                format!("{:.1} s", waited.as_secs_f64()),
            ),
            (
                "longest a slow client was kept",
                format!("{:.1} s", longest.as_secs_f64()),
            ),
            ("descriptors", format!("{fds_before} -> {fds_after}")),
            ("VmHWM", format!("{hwm_before} -> {hwm_after} KiB")),
        ],
    );
}
