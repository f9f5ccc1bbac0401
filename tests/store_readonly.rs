//! A swap into a directory the process may not write fails cleanly and leaves the old
//! material byte-identical. Privileged runs drop the writing thread's credentials (Linux
//! credentials are per thread at the system-call level), so this file runs as its own
//! test binary.

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use kyma_certd::store::{Store, StoreError};
use support::disk::chmod;
use support::store::{certificate, material};

/// Runs `f` on a thread that cannot bypass file permissions.
fn unprivileged<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                if rustix::process::geteuid().is_root() {
                    let nobody = rustix::process::Uid::from_raw(65534);
                    rustix::thread::set_thread_res_uid(nobody, nobody, nobody).unwrap();
                }
                f()
            })
            .join()
            .unwrap()
    })
}

fn read_all(paths: &[PathBuf]) -> Vec<Vec<u8>> {
    paths.iter().map(|p| fs::read(p).unwrap()).collect()
}

fn consumer(store: &Store) -> Vec<PathBuf> {
    let p = store.consumer_paths();
    vec![p.cert, p.key, p.chain, p.ca]
}

/// Gives `dir/.lock` to the user [`unprivileged`] runs as.
fn lock_for_nobody(dir: &Path) {
    if rustix::process::geteuid().is_root() {
        std::os::unix::fs::chown(dir.join(".lock"), Some(65534), Some(65534)).unwrap();
    }
}

#[test]
fn write_errors_leave_old_material_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    chmod(tmp.path(), 0o755);

    let dir = tmp.path().join("orders");
    let store = Store::new(&certificate(&dir, ""));
    store.swap(&material()).unwrap();
    let before = read_all(&consumer(&store));
    // The lock file (0600) is the store user's own, as when that user created it.
    lock_for_nobody(&dir);
    chmod(&dir, 0o555);
    let err = unprivileged(|| store.swap(&material())).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    assert!(err.to_string().contains(dir.to_str().unwrap()), "{err}");
    let err = unprivileged(|| store.write_state(&Default::default())).unwrap_err();
    assert!(err.to_string().contains("state.json"), "{err}");
    chmod(&dir, 0o755);
    assert_eq!(read_all(&consumer(&store)), before);
    assert!(store.load_current().unwrap().is_some());

    let state = tmp.path().join("billing");
    let tls = tmp.path().join("tls");
    let extra = format!(
        "layout = \"files\"\ncert_file = {:?}\nkey_file = {:?}\nchain_file = {:?}\nca_file = {:?}",
        tls.join("c.pem"),
        tls.join("k.pem"),
        tls.join("ch.pem"),
        tls.join("ca.pem"),
    );
    let store = Store::new(&certificate(&state, &extra));
    store.swap(&material()).unwrap();
    let before = read_all(&consumer(&store));
    lock_for_nobody(&state);
    chmod(&tls, 0o555);
    chmod(&state, 0o777);
    let err = unprivileged(|| store.swap(&material())).unwrap_err();
    assert!(err.to_string().contains(tls.to_str().unwrap()), "{err}");
    chmod(&tls, 0o755);
    assert_eq!(read_all(&consumer(&store)), before);
    assert_eq!(
        fs::read_dir(&tls).unwrap().count(),
        4,
        "temporary files were left"
    );
    assert!(!state.join("journal.json").exists());
}
