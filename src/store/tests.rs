//! Store tests: both layouts, generations, modes, state, and crashes or I/O errors
//! injected at every step of a swap.

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use super::*;
use crate::config::{CertificateConfig, FilePaths, KeyAlgorithm, Layout, Protocol, RenewPolicy};
use crate::pki::subject::Subject;
use crate::pki::verify::{Expectations, ReturnedPems, verify};
use crate::testutil::{SUBJECT, TestCa, issued, key};

/// Injected failures: the `armed`-th call to `Store::step` fails; with `crash` set the
/// store also skips its cleanup, as if the process had died there.
#[derive(Debug, Default)]
pub(super) struct Faults {
    armed: AtomicUsize,
    seen: AtomicUsize,
    crash: AtomicBool,
}

impl Faults {
    pub(super) fn hit(&self) -> bool {
        let seen = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        seen == self.armed.load(Ordering::SeqCst)
    }

    pub(super) fn crashing(&self) -> bool {
        self.crash.load(Ordering::SeqCst)
    }

    pub(super) fn arm(&self, step: usize, crash: bool) {
        self.seen.store(0, Ordering::SeqCst);
        self.armed.store(step, Ordering::SeqCst);
        self.crash.store(crash, Ordering::SeqCst);
    }

    pub(super) fn disarm(&self) -> usize {
        self.armed.store(0, Ordering::SeqCst);
        self.crash.store(false, Ordering::SeqCst);
        self.seen.swap(0, Ordering::SeqCst)
    }
}

const DAY: Duration = Duration::from_secs(86_400);

pub(crate) fn config(dir: &Path, layout: Layout) -> CertificateConfig {
    CertificateConfig {
        name: "orders".into(),
        protocol: Protocol::Compass,
        dir: dir.to_owned(),
        owner: None,
        group: None,
        cert_mode: 0o644,
        key_mode: 0o600,
        server_ca_file: None,
        connector_url: None,
        renewal_url: None,
        token_file: None,
        allow_insecure_http: false,
        renew: RenewPolicy::At(0.7),
        jitter: 0.05,
        retry_min: Duration::from_secs(30),
        retry_max: Duration::from_secs(3600),
        key_algorithm: KeyAlgorithm::EcdsaP256,
        rotate_key: true,
        timeout: Duration::from_secs(30),
        layout,
        on_renew: Vec::new(),
        outputs: Vec::new(),
        proxy: Default::default(),
    }
}

pub(super) fn files_layout(root: &Path) -> Layout {
    Layout::Files(FilePaths {
        cert_file: root.join("tls/client.crt"),
        key_file: root.join("tls/client.key"),
        chain_file: root.join("tls/chain.crt"),
        ca_file: root.join("tls/ca.crt"),
    })
}

pub(super) fn material(ca: &TestCa) -> VerifiedMaterial {
    let key = key();
    let now = SystemTime::now();
    let got = issued(ca, &key, now, 10 * DAY);
    let subject = Subject::parse(SUBJECT).unwrap();
    let expect = Expectations {
        subject: &subject,
        now,
        renew: RenewPolicy::At(0.7),
        jitter: 0.05,
        previous_lifetime: None,
    };
    let returned = ReturnedPems {
        client_cert: &got.0,
        ca: &got.1,
        chain: &got.2,
    };
    verify(returned, key, &expect).unwrap()
}

pub(super) fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The bytes consumers would read, in cert, key, chain, ca order.
pub(super) fn consumer_bytes(store: &Store) -> Vec<Option<Vec<u8>>> {
    let p = store.consumer_paths();
    [p.cert, p.key, p.chain, p.ca]
        .iter()
        .map(|p| fs::read(p).ok())
        .collect()
}

pub(super) fn assert_loads(store: &Store, expected: &VerifiedMaterial) {
    let current = store.load_current().unwrap().expect("material on disk");
    assert_eq!(
        current.info.fingerprint_sha256,
        expected.info.fingerprint_sha256
    );
    assert_eq!(current.cert_pem, expected.cert_pem);
    assert_eq!(current.chain_pem, expected.chain_pem);
    assert_eq!(current.ca_pem, expected.ca_pem);
    assert_eq!(current.key.public_key_der(), expected.key.public_key_der());
}

/// Names in `dir` that only a crash or a failed swap could leave.
pub(super) fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.contains(".tmp-") || n.contains(files::TMP_MARK) || n == JOURNAL_FILE)
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn generations(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("gen-"))
        .collect();
    names.sort();
    names
}

#[test]
fn symlink_layout_swap_creates_dir_generation_and_consumer_links() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state/orders");
    let store = Store::new(&config(&dir, Layout::Symlink));
    assert!(store.load_current().unwrap().is_none());
    let ca = TestCa::new("ca");
    let m = material(&ca);
    let report = store.swap(&m).unwrap();
    assert_loads(&store, &m);

    let generation = report.generation.clone().unwrap();
    assert!(generation.starts_with("gen-"));
    assert!(generation.ends_with(&m.info.fingerprint_sha256[..8]));
    assert_eq!(generation.len(), "gen-20250101T000000Z-".len() + 8);
    assert_eq!(
        fs::read_link(dir.join("current")).unwrap(),
        PathBuf::from(&generation)
    );
    let paths = store.consumer_paths();
    assert_eq!(paths.cert, dir.join("cert.pem"));
    assert_eq!(
        fs::read_link(&paths.key).unwrap(),
        PathBuf::from("current/key.pem")
    );
    assert_eq!(fs::read_to_string(&paths.cert).unwrap(), m.cert_pem);
    assert_eq!(fs::read_to_string(&paths.key).unwrap(), m.key.to_pem());
    assert_eq!(mode(&paths.key), 0o600);
    assert_eq!(mode(&paths.cert), 0o644);
    assert_eq!(mode(&dir), 0o755);
    assert_eq!(mode(&dir.join(&generation)), 0o755);
    assert!(leftovers(&dir).is_empty());
    assert!(report.touched.contains(&dir.join("current")));
}

#[test]
fn later_swaps_keep_consumer_paths_and_the_previous_generation_only() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(&config(tmp.path(), Layout::Symlink));
    let ca = TestCa::new("ca");
    let first = material(&ca);
    let second = material(&ca);
    let third = material(&ca);
    let paths = store.consumer_paths();

    let g1 = store.swap(&first).unwrap().generation.unwrap();
    let g2 = store.swap(&second).unwrap().generation.unwrap();
    assert_eq!(store.consumer_paths(), paths);
    assert_eq!(
        fs::read_link(tmp.path().join("previous")).unwrap(),
        PathBuf::from(&g1)
    );
    assert_eq!(generations(tmp.path()).len(), 2);
    assert_loads(&store, &second);

    let report = store.swap(&third).unwrap();
    let g3 = report.generation.unwrap();
    assert_eq!(report.pruned, std::slice::from_ref(&g1));
    let mut expected = vec![g2.clone(), g3.clone()];
    expected.sort();
    assert_eq!(generations(tmp.path()), expected);
    assert_eq!(
        fs::read_link(tmp.path().join("previous")).unwrap(),
        PathBuf::from(&g2)
    );
    assert_eq!(fs::read_to_string(&paths.cert).unwrap(), third.cert_pem);
    assert_loads(&store, &third);
}

#[test]
fn swapping_the_same_material_twice_in_one_second_gets_a_distinct_generation() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(&config(tmp.path(), Layout::Symlink));
    let m = material(&TestCa::new("ca"));
    let a = store.swap(&m).unwrap().generation.unwrap();
    let b = store.swap(&m).unwrap().generation.unwrap();
    assert_ne!(a, b);
    assert_loads(&store, &m);
}

#[test]
fn files_layout_writes_loads_and_swaps_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let store = Store::new(&config(&dir, files_layout(tmp.path())));
    assert!(store.load_current().unwrap().is_none());
    let ca = TestCa::new("ca");
    let first = material(&ca);
    let report = store.swap(&first).unwrap();
    assert_eq!(report.generation, None);
    assert_loads(&store, &first);
    let paths = store.consumer_paths();
    assert_eq!(paths.key, tmp.path().join("tls/client.key"));
    assert_eq!(mode(&paths.key), 0o600);
    assert_eq!(mode(&paths.chain), 0o644);
    assert!(fs::symlink_metadata(&paths.cert).unwrap().is_file());

    let second = material(&ca);
    store.swap(&second).unwrap();
    assert_loads(&store, &second);
    assert_eq!(store.consumer_paths(), paths);
    assert!(leftovers(&dir).is_empty());
    assert!(leftovers(&tmp.path().join("tls")).is_empty());
}

#[test]
fn key_and_certificate_that_do_not_belong_together_are_refused_on_load() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(&config(&tmp.path().join("s"), files_layout(tmp.path())));
    let ca = TestCa::new("ca");
    store.swap(&material(&ca)).unwrap();
    fs::write(store.consumer_paths().key, material(&ca).key.to_pem()).unwrap();
    let err = store.load_current().unwrap_err();
    assert!(matches!(err, StoreError::KeyMismatch { .. }), "{err}");
    assert!(!err.to_string().contains("BEGIN"));
}

#[test]
fn a_missing_file_makes_the_material_incomplete_not_absent() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(&config(&tmp.path().join("s"), files_layout(tmp.path())));
    store.swap(&material(&TestCa::new("ca"))).unwrap();
    fs::remove_file(store.consumer_paths().ca).unwrap();
    let err = store.load_current().unwrap_err();
    assert!(matches!(err, StoreError::Incomplete { .. }), "{err}");
    assert!(err.to_string().contains("ca.crt is missing"), "{err}");
}

#[test]
fn group_makes_created_directories_0750_and_files_owned_by_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders");
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let mut cfg = config(&dir, Layout::Symlink);
    cfg.owner = Some(uid);
    cfg.group = Some(gid);
    cfg.key_mode = 0o640;
    let store = Store::new(&cfg);
    store.swap(&material(&TestCa::new("ca"))).unwrap();
    assert_eq!(mode(&dir), 0o750);
    let key = fs::metadata(store.consumer_paths().key).unwrap();
    assert_eq!((key.uid(), key.gid()), (uid, gid));
    assert_eq!(key.permissions().mode() & 0o777, 0o640);
}

#[test]
fn state_file_is_default_when_missing_and_round_trips_atomically() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders");
    let store = Store::new(&config(&dir, Layout::Symlink));
    assert_eq!(store.read_state().unwrap(), StateFile::default());
    let mut state = StateFile {
        protocol: Some(Protocol::Compass),
        consecutive_failures: 2,
        last_attempt: Some(SystemTime::now()),
        ..StateFile::default()
    };
    state.set_error("connection refused");
    store.write_state(&state).unwrap();
    assert_eq!(store.read_state().unwrap(), state);
    assert_eq!(mode(&dir.join(STATE_FILE)), 0o644);
    assert!(leftovers(&dir).is_empty());
    fs::write(dir.join(STATE_FILE), "{not json").unwrap();
    let err = store.read_state().unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("state.json"), "{err}");
}

#[test]
fn own_paths_are_recognised_for_the_file_watcher() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(&config(tmp.path(), Layout::Symlink));
    for own in [
        "current",
        "previous",
        "gen-20250101T000000Z-abcdef01",
        "current.tmp-1",
        "state.json",
    ] {
        assert!(store.is_internal_path(&tmp.path().join(own)), "{own}");
    }
    assert!(!store.is_internal_path(&tmp.path().join("cert.pem")));
    assert!(!store.is_internal_path(Path::new("/elsewhere/current")));
}

#[test]
fn a_current_link_pointing_outside_the_store_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(&config(tmp.path(), Layout::Symlink));
    std::os::unix::fs::symlink("/etc", tmp.path().join("current")).unwrap();
    let err = store.load_current().unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
}

#[test]
fn a_regular_file_where_a_consumer_link_belongs_is_not_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(&config(tmp.path(), Layout::Symlink));
    fs::write(tmp.path().join("cert.pem"), "operator's file").unwrap();
    let err = store.swap(&material(&TestCa::new("ca"))).unwrap_err();
    assert!(matches!(err, StoreError::NotSymlink { .. }), "{err}");
    assert_eq!(
        fs::read_to_string(tmp.path().join("cert.pem")).unwrap(),
        "operator's file"
    );
}

#[test]
fn a_compare_and_swap_commits_only_over_the_expected_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    for (n, layout) in [Layout::Symlink, files_layout(tmp.path())]
        .into_iter()
        .enumerate()
    {
        let dir = tmp.path().join(format!("cert-{n}"));
        let store = Store::new(&config(&dir, layout));
        let ca = TestCa::new("ca");
        let first = material(&ca);
        store.swap(&first).unwrap();
        let (renewal, enrolled) = (material(&ca), material(&ca));
        let started_from = Expect::Current(Some(first.info.fingerprint_sha256.clone()));
        // Someone else's swap lands while the renewal runs.
        store.swap(&enrolled).unwrap();
        let connection = Connection::of_certificate(&renewal.info);
        let new = NewGeneration {
            material: &renewal,
            connection: &connection,
            extra: &[],
        };
        let err = store.commit(&new, &started_from).unwrap_err();
        assert!(matches!(err, StoreError::Superseded { .. }), "{err}");
        assert_loads(&store, &enrolled);
        // Over the expected certificate it commits.
        let expected = Expect::Current(Some(enrolled.info.fingerprint_sha256.clone()));
        store.commit(&new, &expected).unwrap();
        assert_loads(&store, &renewal);
    }
}

#[test]
fn an_unreadable_state_file_is_set_aside_by_the_next_update() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders");
    let store = Store::new(&config(&dir, Layout::Symlink));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(STATE_FILE), "{\"consecutive_fail").unwrap();
    assert_eq!(store.state(), StateFile::default(), "read as the default");
    let state = store.update_state(|s| s.consecutive_failures = 7).unwrap();
    assert_eq!(state.consecutive_failures, 7);
    assert_eq!(store.read_state().unwrap().consecutive_failures, 7);
    let aside: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("state.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        fs::read_to_string(dir.join(&aside[0])).unwrap(),
        "{\"consecutive_fail"
    );
}

#[test]
fn as_root_a_directory_others_may_write_is_refused() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: the check applies to root only");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders");
    let store = Store::new(&config(&dir, Layout::Symlink));
    store.swap(&material(&TestCa::new("ca"))).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    let err = store.load_current().unwrap_err();
    assert!(matches!(err, StoreError::Untrusted { .. }), "{err}");
    assert!(err.to_string().contains("0777"), "{err}");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&dir, Some(12345), None).unwrap();
    let err = store.swap(&material(&TestCa::new("ca"))).unwrap_err();
    assert!(err.to_string().contains("uid 12345"), "{err}");
    std::os::unix::fs::chown(&dir, Some(0), None).unwrap();
    assert!(store.load_current().unwrap().is_some());
}
