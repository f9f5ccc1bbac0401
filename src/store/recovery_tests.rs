//! Store tests: a crash or an I/O error injected at every step of a swap, and what
//! `recover` makes of what is left.

use std::fs;
use std::path::Path;

use super::tests::*;
use super::*;
use crate::config::Layout;
use crate::testutil::TestCa;

/// Runs `swap` with a fault at every step in turn and checks the invariant after each:
/// a failed swap leaves the old material byte-identical (after `recover` when it
/// crashed), a successful one the new; the key always matches the certificate; no
/// leftovers survive `recover`.
fn fault_at_every_step(layout: fn(&Path) -> Layout, crash: bool) {
    let ca = TestCa::new("ca");
    // Count the steps of a clean swap.
    let probe = tempfile::tempdir().unwrap();
    let store = Store::new(&config(&probe.path().join("s"), layout(probe.path())));
    store.swap(&material(&ca)).unwrap();
    store.faults.arm(usize::MAX, false);
    store.swap(&material(&ca)).unwrap();
    let steps = store.faults.disarm();
    assert!(steps >= 6, "only {steps} steps counted");

    for step in 1..=steps {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s");
        let store = Store::new(&config(&dir, layout(tmp.path())));
        let old = material(&ca);
        store.swap(&old).unwrap();
        let before = consumer_bytes(&store);
        let new = material(&ca);

        store.faults.arm(step, crash);
        let result = store.swap(&new);
        store.faults.disarm();
        if crash {
            assert!(result.is_err(), "step {step}: the crash was not hit");
            store.recover().unwrap();
        }
        let current = store.load_current().unwrap().unwrap();
        if current.info.fingerprint_sha256 == old.info.fingerprint_sha256 {
            assert_eq!(
                consumer_bytes(&store),
                before,
                "step {step}: old material changed"
            );
            if !crash {
                assert!(
                    result.is_err(),
                    "step {step}: success but old material in place"
                );
            }
        } else {
            assert_loads(&store, &new);
        }
        assert!(
            leftovers(&dir).is_empty(),
            "step {step}: {:?}",
            leftovers(&dir)
        );
        assert!(leftovers(&tmp.path().join("tls")).is_empty(), "step {step}");
        if matches!(store.layout, Layout::Symlink) {
            assert!(
                generations(&dir).len() <= 2,
                "step {step}: {:?}",
                generations(&dir)
            );
        }
        // The store keeps working afterwards.
        let later = material(&ca);
        store.swap(&later).unwrap();
        assert_loads(&store, &later);
    }
}

#[test]
fn symlink_swap_errors_at_any_step_leave_old_material_intact() {
    fault_at_every_step(|_| Layout::Symlink, false);
}

#[test]
fn symlink_swap_crash_at_any_step_recovers_to_old_or_new_material() {
    fault_at_every_step(|_| Layout::Symlink, true);
}

#[test]
fn files_swap_errors_at_any_step_leave_old_material_intact() {
    fault_at_every_step(files_layout, false);
}

#[test]
fn files_swap_crash_at_any_step_recovers_to_old_or_new_material() {
    fault_at_every_step(files_layout, true);
}

#[test]
fn recover_completes_a_journal_with_half_the_renames_done() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let store = Store::new(&config(&dir, files_layout(tmp.path())));
    let ca = TestCa::new("ca");
    store.swap(&material(&ca)).unwrap();
    let new = material(&ca);
    // Crash before the last rename: key, cert and chain are new, the CA file is not.
    store.faults.arm(usize::MAX, false);
    store.swap(&material(&ca)).unwrap();
    let steps = store.faults.disarm();
    store.faults.arm(steps - 1, true);
    assert!(store.swap(&new).is_err());
    store.faults.disarm();
    assert!(dir.join(JOURNAL_FILE).exists());
    let paths = store.consumer_paths();
    assert_eq!(fs::read_to_string(&paths.key).unwrap(), new.key.to_pem());

    let report = store.recover().unwrap();
    assert!(report.completed_journal);
    assert_loads(&store, &new);
    assert!(!dir.join(JOURNAL_FILE).exists());
}

#[test]
fn recover_refuses_a_journal_naming_other_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let store = Store::new(&config(&dir, files_layout(tmp.path())));
    fs::create_dir_all(&dir).unwrap();
    let victim = tmp.path().join("victim");
    fs::write(&victim, "precious").unwrap();
    let journal = serde_json::json!({
        "version": 1,
        "fingerprint": "00",
        "entries": [{"tmp": tmp.path().join("evil"), "target": victim}],
    });
    fs::write(dir.join(JOURNAL_FILE), journal.to_string()).unwrap();
    let err = store.recover().unwrap_err();
    assert!(matches!(err, StoreError::JournalMismatch { .. }), "{err}");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
}

#[test]
fn recover_removes_half_written_generations_and_stale_temporary_links() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let store = Store::new(&config(&dir, Layout::Symlink));
    let m = material(&TestCa::new("ca"));
    store.swap(&m).unwrap();
    let before = consumer_bytes(&store);

    let half = dir.join(".tmp-gen-20250101T000000Z-deadbeef-0011223344556677");
    fs::create_dir(&half).unwrap();
    fs::write(half.join("key.pem"), "-----BEGIN PRIV").unwrap();
    std::os::unix::fs::symlink("gen-nowhere", dir.join("current.tmp-0123456789abcdef")).unwrap();
    let orphan = dir.join("gen-20200101T000000Z-0badf00d");
    fs::create_dir(&orphan).unwrap();
    fs::write(dir.join("state.json.tmp-42"), "{").unwrap();
    fs::remove_file(dir.join("chain.pem")).unwrap();

    let report = store.recover().unwrap();
    for gone in [
        &half,
        &dir.join("current.tmp-0123456789abcdef"),
        &orphan,
        &dir.join("state.json.tmp-42"),
    ] {
        assert!(
            fs::symlink_metadata(gone).is_err(),
            "{} survived",
            gone.display()
        );
        assert!(
            report.removed.contains(gone),
            "{} not reported",
            gone.display()
        );
    }
    assert_eq!(
        consumer_bytes(&store),
        before,
        "the chain link was not repaired"
    );
    assert_loads(&store, &m);
}

#[test]
fn recover_on_a_directory_that_does_not_exist_does_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(&config(&tmp.path().join("absent"), Layout::Symlink));
    assert_eq!(store.recover().unwrap(), RecoveryReport::default());
    assert!(!tmp.path().join("absent").exists());
}
