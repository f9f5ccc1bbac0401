//! No private key material stays in the daemon's memory once it is not being used: the
//! real binary tracks a hundred RSA certificates (both protocols, some with a PEM bundle
//! and a PKCS#12 keystore among their outputs), and `bench/keyscan.py` reads its memory
//! through `/proc/PID/mem` for every key's prime p, private exponent d (both byte orders)
//! and the base64 lines of its PEM: after the start, when it has read and checked every
//! key, and again after a round of renewals, when it has made a new key per certificate,
//! sent it through the mTLS client and written it out. Needs python3 and the right to
//! read another process's memory (root, as in CI).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::disk::fingerprint_on_disk;
use support::wait::eventually;
use support::world::{CertSpec, World, toml_path};

const CERTIFICATES: usize = 100;
/// Long enough that nothing renews on its own during the test.
const LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// From ready (or the last renewal) to the scan: the tasks rest, the blocking threads
/// that generated keys and wrote files have finished their work.
const SETTLE: Duration = Duration::from_secs(3);

fn spec(world: &World, i: usize) -> CertSpec {
    let name = format!("c{i:03}");
    let mut cert = if i.is_multiple_of(2) {
        world.compass(&name)
    } else {
        world.kyma_rest(&name)
    }
    .with("key_algorithm = \"rsa2048\"");
    if i.is_multiple_of(10) {
        let password = world.path("p12.pass");
        cert = cert.table(&format!(
            "[[certificate.output]]\nkind = \"pem-bundle\"\nfile = \"bundle.pem\"\nparts = [\"key\", \"cert\"]\n\n[[certificate.output]]\nkind = \"pkcs12\"\nfile = \"keystore.p12\"\npassword_file = {}",
            toml_path(&password)
        ));
    }
    cert
}

/// Runs the scanner over every key file under `certs`; panics with its report when it
/// finds material of any key or cannot scan.
fn assert_no_key_material(pid: u32, certs: &Path, when: &str) {
    let scanner = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/keyscan.py");
    let out = Command::new("python3")
        .arg(&scanner)
        .arg("--little-endian")
        .arg(pid.to_string())
        .arg(certs)
        .output()
        .expect("python3 runs bench/keyscan.py");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{when}: key material found in the daemon's memory (or the scan failed):\n{report}"
    );
    // The scanner says how many keys it looked for: all of them, not an empty folder.
    assert!(
        report.contains(&format!("found 0 of {} keys", count_keys(certs))),
        "{when}: {report}"
    );
}

/// The distinct private keys on disk under `dir` (each generation's `key.pem`).
fn count_keys(dir: &Path) -> usize {
    let mut keys = std::collections::BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() && entry.file_name() == "key.pem" {
                keys.insert(std::fs::read(entry.path()).unwrap());
            }
        }
    }
    keys.len()
}

#[test]
fn no_private_key_is_left_in_memory_after_the_start_or_after_a_round_of_renewals() {
    let world = World::new(LIFETIME);
    std::fs::write(world.path("p12.pass"), "changeit\n").unwrap();
    let certs: Vec<CertSpec> = (0..CERTIFICATES).map(|i| spec(&world, i)).collect();
    world.write_config(&certs);
    // Two enrollments at a time, one per core.
    std::thread::scope(|scope| {
        for half in certs.chunks(CERTIFICATES / 2) {
            let world = &world;
            scope.spawn(move || {
                for cert in half {
                    world.enroll(&cert.name);
                }
            });
        }
    });
    let enrolled: Vec<String> = certs
        .iter()
        .map(|c| fingerprint_on_disk(&world.cert_dir(&c.name)).expect("enrolled"))
        .collect();
    let cert_root = world.path("certs");
    assert_eq!(count_keys(&cert_root), CERTIFICATES);

    let mut daemon = world.daemon().ready();
    std::thread::sleep(SETTLE);
    assert_no_key_material(daemon.pid(), &cert_root, "after the start");

    daemon.renew_now();
    let renewed = eventually(Duration::from_secs(240), || {
        certs.iter().zip(&enrolled).all(|(c, before)| {
            fingerprint_on_disk(&world.cert_dir(&c.name)).is_some_and(|now| now != *before)
        })
    });
    assert!(
        renewed,
        "not every certificate renewed\n{}",
        daemon.log_text()
    );
    // Each new generation has its own key: the scan looks for the old and the new ones.
    assert_eq!(count_keys(&cert_root), 2 * CERTIFICATES);
    std::thread::sleep(SETTLE);
    assert_no_key_material(daemon.pid(), &cert_root, "after a round of renewals");
    daemon.assert_no_secrets();
    let status = daemon.stop();
    assert!(status.success(), "{status}\n{}", daemon.log_text());
}
