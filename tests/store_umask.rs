//! The store writes exact modes whatever the process umask. The umask is process-wide,
//! so this file holds a single test and runs as its own test binary.

mod support;

use kyma_certd::store::Store;
use rustix::fs::Mode;
use support::disk::mode_of;
use support::store::{certificate, material};

#[test]
fn modes_are_exact_under_umask_000_and_077() {
    for umask in [0o000, 0o077] {
        let old = rustix::process::umask(Mode::from_raw_mode(umask));
        let tmp = tempfile::tempdir().unwrap();
        // Under umask 000 the folder is 0777: root refuses a path that others may change.
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();

        let dir = tmp.path().join("orders");
        let store = Store::new(&certificate(&dir, ""));
        let report = store.swap(&material()).unwrap();
        let paths = store.consumer_paths();
        assert_eq!(mode_of(&paths.key), 0o600, "umask {umask:03o}");
        assert_eq!(mode_of(&paths.cert), 0o644, "umask {umask:03o}");
        assert_eq!(mode_of(&paths.chain), 0o644, "umask {umask:03o}");
        assert_eq!(mode_of(&paths.ca), 0o644, "umask {umask:03o}");
        assert_eq!(mode_of(&dir), 0o755, "umask {umask:03o}");
        let generation = dir.join(report.generation.unwrap());
        assert_eq!(mode_of(&generation), 0o755, "umask {umask:03o}");
        store.write_state(&Default::default()).unwrap();
        assert_eq!(mode_of(&dir.join("state.json")), 0o644, "umask {umask:03o}");

        let custom = tmp.path().join("custom");
        let files = tmp.path().join("tls");
        let extra = format!(
            "cert_mode = \"0640\"\nkey_mode = \"0400\"\nlayout = \"files\"\ncert_file = {:?}\nkey_file = {:?}\nchain_file = {:?}\nca_file = {:?}",
            files.join("c.pem"),
            files.join("k.pem"),
            files.join("ch.pem"),
            files.join("ca.pem"),
        );
        let store = Store::new(&certificate(&custom, &extra));
        store.swap(&material()).unwrap();
        store.swap(&material()).unwrap();
        let paths = store.consumer_paths();
        assert_eq!(mode_of(&paths.key), 0o400, "umask {umask:03o}");
        assert_eq!(mode_of(&paths.cert), 0o640, "umask {umask:03o}");
        assert_eq!(mode_of(&paths.ca), 0o640, "umask {umask:03o}");

        rustix::process::umask(old);
    }
}
