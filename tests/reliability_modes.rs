//! Least privilege on disk through the real binary: key files get their final mode
//! whatever the umask, and no file ever shows a key with a wider mode while it is being
//! written.

mod support;

use support::outputs::{OUTPUT_FILES, outputs_tables};

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustix::fs::inotify;
use support::disk::list;
use support::disk::mode_of;
use support::invoke::{Invocation, Run};
use support::results;
use support::scrape::Scrape;
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
