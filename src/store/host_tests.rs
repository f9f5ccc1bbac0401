//! Store tests against hostile hosts: FIFOs where files belong, a lock held by someone
//! else, and folders of the files layout reached through other users' symlinks or
//! directories. Cases that need root say so and skip without it.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::{FileType, FlockOperation, Mode};

use super::tests::{config, files_layout, material, mode};
use super::*;
use crate::config::{FilePaths, Layout};
use crate::testutil::TestCa;

/// A user that is neither root nor the configured owner.
const STRANGER: u32 = 12345;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn mkfifo(path: &Path) {
    let (parent, name) = (path.parent().unwrap(), path.file_name().unwrap());
    let dir = fs::File::open(parent).unwrap();
    rustix::fs::mknodat(&dir, name, FileType::Fifo, Mode::from_raw_mode(0o644), 0).unwrap();
}

fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt as _;
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

fn corrupt_copies(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(super::state_io::CORRUPT_STATE_PREFIX))
        .collect()
}

#[test]
fn a_fifo_as_state_json_is_an_error_at_once_and_is_never_set_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders");
    let store = Store::new(&config(&dir, Layout::Symlink));
    store.swap(&material(&TestCa::new("ca"))).unwrap();
    mkfifo(&dir.join(STATE_FILE));

    // Nobody writes into the FIFO: a blocking open would never return.
    let started = Instant::now();
    let err = store.read_state().unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the read waited"
    );
    assert!(
        matches!(err, StoreError::NotRegular { kind: "FIFO", .. }),
        "{err}"
    );
    assert!(err.is_unreadable());
    assert!(err.to_string().contains("state.json is a FIFO"), "{err}");

    let err = store
        .update_state(|s| s.consecutive_failures = 3)
        .unwrap_err();
    assert!(matches!(err, StoreError::NotRegular { .. }), "{err}");
    assert!(is_fifo(&dir.join(STATE_FILE)), "the FIFO was replaced");
    assert!(
        corrupt_copies(&dir).is_empty(),
        "an unreadable file was set aside"
    );
    // The certificate itself is still read.
    assert!(store.load_current().unwrap().is_some());
}

#[test]
fn a_fifo_in_place_of_a_generation_file_is_unreadable_not_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders");
    let store = Store::new(&config(&dir, Layout::Symlink));
    store.swap(&material(&TestCa::new("ca"))).unwrap();
    let generation = fs::read_link(dir.join("current")).unwrap();
    let cert = dir.join(generation).join("cert.pem");
    fs::remove_file(&cert).unwrap();
    mkfifo(&cert);

    let started = Instant::now();
    let err = store.load_current().unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the read waited"
    );
    assert!(matches!(err, StoreError::NotRegular { .. }), "{err}");
    assert!(err.is_unreadable(), "{err}");
}

#[test]
fn only_errors_that_read_nothing_count_as_unreadable() {
    let path = std::path::PathBuf::from("/x/state.json");
    let io = |kind| StoreError::io("reading", &path, std::io::Error::from(kind));
    assert!(io(std::io::ErrorKind::PermissionDenied).is_unreadable());
    assert!(
        StoreError::io("reading", &path, std::io::Error::from_raw_os_error(24)).is_unreadable(),
        "EMFILE"
    );
    assert!(!io(std::io::ErrorKind::NotFound).is_unreadable());
    let corrupt = StoreError::Corrupt {
        path: path.clone(),
        reason: "x".into(),
    };
    assert!(!corrupt.is_unreadable());
    let locked = StoreError::Locked {
        path,
        waited: LOCK_WAIT,
    };
    assert!(locked.is_unreadable());
}

#[test]
fn a_held_lock_is_reported_naming_the_lock_file_after_a_bounded_wait() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders");
    let wait = Duration::from_millis(300);
    let store = Store::new(&config(&dir, Layout::Symlink)).with_lock_wait(wait);
    store.update_state(|s| s.consecutive_failures = 1).unwrap();
    let lock_path = dir.join(LOCK_FILE);
    assert_eq!(
        mode(&lock_path),
        0o600,
        "others must not be able to open the lock"
    );

    let holder = fs::File::open(&lock_path).unwrap();
    rustix::fs::flock(&holder, FlockOperation::LockExclusive).unwrap();
    let started = Instant::now();
    let err = store
        .update_state(|s| s.consecutive_failures = 2)
        .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    assert!(err.is_unreadable());
    let message = err.to_string();
    assert!(message.contains(lock_path.to_str().unwrap()), "{message}");
    assert!(message.contains("held by another process"), "{message}");
    assert!(took >= wait, "gave up after {took:?}");
    assert!(took < wait + Duration::from_secs(2), "waited {took:?}");
    assert_eq!(store.read_state().unwrap().consecutive_failures, 1);

    drop(holder);
    store.update_state(|s| s.consecutive_failures = 2).unwrap();
    assert_eq!(store.read_state().unwrap().consecutive_failures, 2);
}

#[test]
fn a_lock_file_others_may_open_is_narrowed_to_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders");
    let store = Store::new(&config(&dir, Layout::Symlink));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(LOCK_FILE), "").unwrap();
    fs::set_permissions(dir.join(LOCK_FILE), fs::Permissions::from_mode(0o644)).unwrap();
    store.update_state(|s| s.consecutive_failures = 1).unwrap();
    assert_eq!(mode(&dir.join(LOCK_FILE)), 0o600);
}

/// A files layout with its four files in `folder`.
fn files_in(folder: &Path) -> Layout {
    Layout::Files(FilePaths {
        cert_file: folder.join("client.crt"),
        key_file: folder.join("client.key"),
        chain_file: folder.join("chain.crt"),
        ca_file: folder.join("ca.crt"),
    })
}

/// In a folder where everyone may add names (sticky, like `/tmp`), another user plants
/// `tls` as a symlink to a folder of root's: root must not follow it and write the key
/// there. The same link made by root is the administrator's choice, and is followed.
#[test]
fn as_root_a_symlinked_parent_in_the_files_layout_is_followed_only_when_root_made_it() {
    if !is_root() {
        eprintln!("skipped: not root, and only root checks who may change the path");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let shared = tmp.path().join("shared");
    let target = tmp.path().join("secret");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    fs::create_dir(&target).unwrap();
    let link = shared.join("tls");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(STRANGER), Some(STRANGER)).unwrap();

    let store = Store::new(&config(&tmp.path().join("state"), files_in(&link)));
    let err = store.swap(&material(&TestCa::new("ca"))).unwrap_err();
    assert!(matches!(err, StoreError::Untrusted { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains(link.to_str().unwrap()), "{message}");
    assert!(
        message.contains("symlink that belongs to uid 12345"),
        "{message}"
    );
    assert!(
        fs::read_dir(&target).unwrap().next().is_none(),
        "something was written through the planted link"
    );
    let err = store.load_current().unwrap_err();
    assert!(matches!(err, StoreError::Untrusted { .. }), "{err}");
    assert!(err.is_unreadable(), "never read as missing");

    std::os::unix::fs::lchown(&link, Some(0), Some(0)).unwrap();
    let written = material(&TestCa::new("ca"));
    store.swap(&written).unwrap();
    assert!(target.join("client.key").exists());
    assert_eq!(
        store
            .load_current()
            .unwrap()
            .unwrap()
            .info
            .fingerprint_sha256,
        written.info.fingerprint_sha256
    );
}

/// A folder on the way to the files that another user owns or may write is refused,
/// like `dir` itself: that user could swap the folder below it for a symlink.
#[test]
fn as_root_files_layout_folders_are_trust_checked_like_dir() {
    if !is_root() {
        eprintln!("skipped: not root, and only root checks who may change the path");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    fs::create_dir_all(app.join("tls")).unwrap();
    std::os::unix::fs::chown(&app, Some(STRANGER), Some(STRANGER)).unwrap();
    let store = Store::new(&config(&tmp.path().join("state"), files_layout(&app)));
    let err = store.swap(&material(&TestCa::new("ca"))).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, StoreError::Untrusted { .. }), "{message}");
    assert!(message.contains(app.to_str().unwrap()), "{message}");
    assert!(message.contains("belongs to uid 12345"), "{message}");

    // A folder everyone may write, owned by root but not sticky.
    std::os::unix::fs::chown(&app, Some(0), Some(0)).unwrap();
    fs::set_permissions(app.join("tls"), fs::Permissions::from_mode(0o777)).unwrap();
    let err = store.swap(&material(&TestCa::new("ca"))).unwrap_err();
    assert!(err.to_string().contains("0777"), "{err}");
    assert!(fs::read_dir(app.join("tls")).unwrap().next().is_none());

    // The configured owner may own the folders.
    fs::set_permissions(app.join("tls"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&app, Some(STRANGER), Some(STRANGER)).unwrap();
    let mut owned = config(&tmp.path().join("state"), files_layout(&app));
    owned.owner = Some(STRANGER);
    Store::new(&owned)
        .swap(&material(&TestCa::new("ca")))
        .unwrap();
}

/// A missing folder is created with mkdirat below the last one that exists, and never
/// through a symlink planted where the new folder belongs.
#[test]
fn as_root_a_symlink_planted_on_the_way_to_a_new_dir_is_not_followed() {
    if !is_root() {
        eprintln!("skipped: not root, and only root checks who may change the path");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let shared = tmp.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, shared.join("orders")).unwrap();
    std::os::unix::fs::lchown(shared.join("orders"), Some(STRANGER), None).unwrap();

    let store = Store::new(&config(
        &shared.join("orders").join("state"),
        Layout::Symlink,
    ));
    let err = store
        .update_state(|s| s.consecutive_failures = 1)
        .unwrap_err();
    assert!(matches!(err, StoreError::Untrusted { .. }), "{err}");
    assert!(
        fs::read_dir(&elsewhere).unwrap().next().is_none(),
        "a directory was created through the planted link"
    );
}

/// Root running a one-shot command in the service user's directory leaves the lock file
/// to that user: a root-only lock would shut the daemon out of its own directory.
#[test]
fn as_root_the_lock_file_belongs_to_the_directorys_owner() {
    use std::os::unix::fs::MetadataExt as _;
    if !is_root() {
        eprintln!("skipped: not root, so no directory of another user can be made");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders");
    fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(STRANGER), Some(STRANGER)).unwrap();
    let mut cfg = config(&dir, Layout::Symlink);
    cfg.owner = Some(STRANGER);
    Store::new(&cfg)
        .update_state(|s| s.consecutive_failures = 1)
        .unwrap();
    let lock = fs::metadata(dir.join(LOCK_FILE)).unwrap();
    assert_eq!(lock.uid(), STRANGER);
    assert_eq!(lock.mode() & 0o7777, 0o600);
}

/// The path walk resolves `..` after a symlink the way the kernel does (from where the
/// link led), and a symlink loop on the way is an error, not a hang.
#[test]
fn dir_paths_resolve_like_the_kernel_and_symlink_loops_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    fs::create_dir_all(real.join("sub")).unwrap();
    std::os::unix::fs::symlink(real.join("sub"), tmp.path().join("link")).unwrap();
    let dir = tmp.path().join("link/../orders");
    let store = Store::new(&config(&dir, Layout::Symlink));
    store.swap(&material(&TestCa::new("ca"))).unwrap();
    assert!(
        real.join("orders/current").exists(),
        "not where the kernel resolves it"
    );
    assert!(store.load_current().unwrap().is_some());

    std::os::unix::fs::symlink(tmp.path().join("loop-b"), tmp.path().join("loop-a")).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("loop-a"), tmp.path().join("loop-b")).unwrap();
    let looped = Store::new(&config(&tmp.path().join("loop-a/orders"), Layout::Symlink));
    let err = looped.load_current().unwrap_err();
    assert!(err.is_unreadable(), "{err}");
    let err = looped
        .update_state(|s| s.consecutive_failures = 1)
        .unwrap_err();
    assert!(
        crate::errors::error_chain(&err).contains("symbolic links"),
        "{}",
        crate::errors::error_chain(&err)
    );
}
