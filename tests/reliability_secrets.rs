//! Secrets through the real binary: no secret appears in the output, errors, `status` or
//! `state.json` of any command, at trace level, under every fault. File modes are in
//! `reliability_modes.rs`, the metrics port in `reliability_http.rs`.

mod support;

use support::outputs::{KEYSTORE_PASSWORD, outputs_tables};

use std::time::Duration;

use kyma_connector_sim::{Fault, FaultScope};
use support::invoke::{Invocation, Run};
use support::results;
use support::secrets;
use support::sim::Sim;
use support::world::{CertSpec, Proto, Settings, World};

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
