//! `kyma-certd check`: what a renewal would meet, found with one mTLS call that changes
//! nothing, against the simulator over real TLS. Accepted, revoked in the connector's
//! words, refused by a gateway (a bare 403, a TLS alert), clock skew, a connector whose
//! TLS certificate no longer chains to `server_ca_file`, and file problems found before
//! any call. Every case leaves the files exactly as they were and issues nothing.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::Duration;

use kyma_connector_sim::{AlertName, Fault, FaultScope};
use support::pem::fingerprint;
use support::world::{Settings, World};

const LONG: Duration = Duration::from_secs(3600);

/// Everything under `dir`: contents (or symlink target), mode and modification time.
fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, u32, i64, i64)> {
    let mut all = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let contents = if meta.file_type().is_symlink() {
                std::fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if meta.is_dir() {
                stack.push(path.clone());
                Vec::new()
            } else {
                std::fs::read(&path).unwrap()
            };
            all.insert(
                path.display().to_string(),
                (contents, meta.mode(), meta.mtime(), meta.mtime_nsec()),
            );
        }
    }
    all
}

/// `check --json` for `app`: the exit code and the certificate's report.
fn check(world: &World) -> (i32, serde_json::Value) {
    let run = world.command(&["check", "--name", "app", "--json"]).run();
    let all: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap_or_else(|e| {
        panic!(
            "check --json is JSON ({e}): {}{}",
            run.stdout(),
            run.stderr()
        )
    });
    (run.code(), all[0].clone())
}

/// An enrolled certificate `app` of `protocol`.
fn enrolled(protocol: &'static str) -> World {
    let world = World::with(Settings::one_shot(), LONG);
    world.write_config(&[world.cert("app", protocol)]);
    world.enroll("app");
    world
}

/// Runs `check` and asserts that it changed nothing: no file, no certificate issued.
fn check_changing_nothing(world: &World) -> (i32, serde_json::Value) {
    let before = snapshot(&world.cert_dir("app"));
    let issued = world.sim.issued_certificates().len();
    let result = check(world);
    assert_eq!(
        snapshot(&world.cert_dir("app")),
        before,
        "check changed the files"
    );
    assert_eq!(
        world.sim.issued_certificates().len(),
        issued,
        "check issued a certificate"
    );
    result
}

fn accepted(protocol: &'static str) {
    let world = enrolled(protocol);
    let requests = world.sim.request_counts().total();
    let (code, report) = check_changing_nothing(&world);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["outcome"], "accepted", "{report}");
    assert!(
        report["file_problems"].as_array().unwrap().is_empty(),
        "{report}"
    );
    assert_eq!(
        report["fingerprint_sha256"],
        fingerprint(&world.files("app")["cert.pem"]).as_str()
    );
    let skew = report["server_clock_ahead_seconds"]
        .as_i64()
        .expect("the Date header was read");
    assert!(skew.abs() <= 2, "{report}");
    assert_eq!(
        world.sim.request_counts().total(),
        requests + 1,
        "exactly one call to the connector"
    );
    let notes = report["notes"].to_string();
    assert_eq!(
        notes.contains("mints a one-time token"),
        protocol == "compass",
        "{notes}"
    );
    // The text report says the same.
    let text = world.command(&["check"]).run().ok().stdout();
    assert!(
        text.starts_with(&format!("app ({protocol}): accepted")),
        "{text}"
    );
}

#[test]
fn compass_check_says_a_renewal_would_be_accepted_and_changes_nothing() {
    accepted("compass");
}

#[test]
fn kyma_rest_check_says_a_renewal_would_be_accepted_and_changes_nothing() {
    accepted("kyma-rest");
}

#[test]
fn a_certificate_the_connector_revoked_is_reported_revoked_with_exit_3() {
    let world = enrolled("compass");
    world
        .sim
        .revoke(&fingerprint(&world.files("app")["cert.pem"]));
    let (code, report) = check_changing_nothing(&world);
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["outcome"], "revoked", "{report}");
}

/// The REST API as the connectivity-adapter serves it refuses a revoked certificate on
/// `management/info` too; connector-service does not check it there (a renewal would).
#[test]
fn the_connectivity_adapters_refusal_is_reported_revoked_with_exit_3() {
    let world = enrolled("kyma-rest");
    world
        .sim
        .set_rest_flavour(kyma_connector_sim::RestFlavour::ConnectivityAdapter);
    world
        .sim
        .revoke(&fingerprint(&world.files("app")["cert.pem"]));
    let (code, report) = check_changing_nothing(&world);
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["outcome"], "revoked", "{report}");
}

#[test]
fn a_gateways_bare_403_or_tls_alert_is_a_refusal_not_a_revocation() {
    let world = enrolled("kyma-rest");
    world.sim.set_fault(
        Fault::GatewayRefusal {
            status: 403,
            body: "RBAC: access denied".into(),
        },
        FaultScope::Next(1),
    );
    let (code, report) = check_changing_nothing(&world);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["outcome"], "refused", "{report}");
    assert!(
        report["detail"].as_str().unwrap().contains("http 403"),
        "{report}"
    );

    world.sim.set_fault(
        Fault::TlsAlert {
            alert: AlertName::HandshakeFailure,
        },
        FaultScope::Next(1),
    );
    let (code, report) = check_changing_nothing(&world);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["outcome"], "refused", "{report}");
    assert!(
        report["detail"]
            .as_str()
            .unwrap()
            .contains("handshake_failure"),
        "{report}"
    );
}

#[test]
fn a_valid_certificate_refused_as_expired_is_clock_skew() {
    let world = enrolled("compass");
    world.sim.set_fault(
        Fault::TlsAlert {
            alert: AlertName::CertificateExpired,
        },
        FaultScope::Next(1),
    );
    let (code, report) = check_changing_nothing(&world);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["outcome"], "clock_skew", "{report}");
}

#[test]
fn a_connector_certificate_from_another_ca_is_a_server_ca_change() {
    let world = enrolled("compass");
    // The configured trust is now another CA than the one that signed the connector's
    // TLS certificate: what an operator meets when the connector's CA changed.
    let mut cert = world.spec("app");
    cert.server_ca = world.sim.client_ca_path();
    world.write_config(&[cert]);
    let (code, report) = check_changing_nothing(&world);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["outcome"], "server_ca_changed", "{report}");
}

#[test]
fn file_problems_are_reported_before_any_call_and_missing_needs_enrollment() {
    let world = enrolled("compass");
    let key = std::fs::canonicalize(world.cert_dir("app").join("key.pem")).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let requests = world.sim.request_counts().total();
    let (code, report) = check_changing_nothing(&world);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["outcome"], "files", "{report}");
    assert!(
        report["file_problems"]
            .to_string()
            .contains("mode 0644, configured 0600"),
        "{report}"
    );
    assert_eq!(
        world.sim.request_counts().total(),
        requests,
        "no call was made"
    );

    let empty = World::with(Settings::one_shot(), LONG);
    empty.write_config(&[empty.compass("app")]);
    let (code, report) = check(&empty);
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["outcome"], "missing", "{report}");
    assert!(
        !empty.cert_dir("app").exists(),
        "check created the directory"
    );
}
