//! Hostile input: property tests of the public parsers (the whole configuration reader
//! on generated configurations and raw bytes, private keys and certificates from damaged
//! PEM, verification of damaged connector answers): a value or a clear error every time,
//! never a panic or a stack overflow. Hostile files through the real binary:
//! `reliability_config_files.rs`.

mod support;

use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use kyma_certd::config::{self, Checks, Config, ConfigError, KeyAlgorithm, RenewPolicy};
use kyma_certd::pki::keys::PrivateKey;
use kyma_certd::pki::subject::Subject;
use kyma_certd::pki::verify::{Expectations, ReturnedPems, verify};
use kyma_certd::pki::x509::{CertInfo, parse_pem_bundle};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use support::ca::{self, SUBJECT, TestCa};
use support::results;

/// Checks that a refused configuration names the file and positions inside the text.
fn clear_problems(text: &str, result: &Result<Config, ConfigError>) -> Result<(), TestCaseError> {
    match result {
        Ok(config) => {
            // What was accepted renders to text that reads back the same.
            let again = config::parse_with(
                &config.render_resolved(),
                Path::new("config.toml"),
                Checks::Syntax,
            );
            prop_assert_eq!(again.as_ref().ok(), Some(config));
        }
        Err(ConfigError::Invalid { problems, .. }) => {
            prop_assert!(!problems.is_empty());
            let lines = text.lines().count() + 1;
            for problem in problems {
                prop_assert_eq!(&problem.path, Path::new("config.toml"));
                prop_assert!(!problem.message.trim().is_empty(), "{}", problem);
                if let Some((line, column)) = problem.position {
                    prop_assert!(line >= 1 && line <= lines && column >= 1, "{}", problem);
                }
            }
        }
        Err(other) => prop_assert!(false, "not a list of problems: {}", other),
    }
    Ok(())
}

/// Candidate values per key: valid ones and the mistakes people and tools make.
fn candidates(key: &str) -> &'static [&'static str] {
    match key {
        "log_format" => &["\"text\"", "\"json\"", "\"xml\"", "1"],
        "log_level" => &["\"info\"", "\"\"", "\"kyma_certd=trace,warn\"", "\"[[[\""],
        "max_concurrent_renewals" => &["4", "0", "-1", "1025", "\"4\"", "1e3"],
        "watch_config" => &["true", "false", "\"yes\"", "1"],
        "listen" => &[
            "\"127.0.0.1:9467\"",
            "\"\"",
            "\"[::1]:0\"",
            "\"localhost:1\"",
            "\"300.0.0.1:1\"",
        ],
        "name" => &[
            "\"orders\"",
            "\"billing\"",
            "\"Bad Name\"",
            "\"\"",
            "\"orders\"",
        ],
        "protocol" => &["\"compass\"", "\"kyma-rest\"", "\"soap\""],
        "dir" => &[
            "\"/var/lib/a\"",
            "\"/var/lib/b\"",
            "\"rel/dir\"",
            "\"\"",
            "\"/var/lib/a\"",
        ],
        "connector_url" | "renewal_url" => &[
            "\"https://c.example/connector/graphql\"",
            "\"http://c.example/x\"",
            "\"ftp://c.example\"",
            "\"not a url\"",
            "\"https://user:pw@c.example/\"",
        ],
        "renew_at" => &[
            "\"70%\"", "\"5%\"", "\"0%\"", "\"100%\"", "\"NaN%\"", "\"70\"", "\"-5%\"",
        ],
        "jitter" => &[
            "\"5%\"", "\"0%\"", "\"70%\"", "\"50%\"", "\"inf%\"", "\"5\"",
        ],
        "renew_before" => &[
            "\"7d\"",
            "\"0s\"",
            "\"-1d\"",
            "\"1h 30m\"",
            "\"forever\"",
            "30",
        ],
        "retry_min" | "timeout" => &[
            "\"30s\"",
            "\"90d\"",
            "\"0s\"",
            "\"1h 30m\"",
            "\"soon\"",
            "30",
        ],
        "retry_max" => &["\"1h\"", "\"1s\"", "\"0s\"", "\"-1h\"", "30"],
        "key_algorithm" => &["\"rsa2048\"", "\"ecdsa-p256\"", "\"dsa\""],
        "rotate_key" | "allow_insecure_http" => &["true", "false", "\"yes\""],
        "layout" => &["\"symlink\"", "\"files\"", "\"zip\""],
        "cert_file" | "key_file" | "chain_file" | "ca_file" => &[
            "\"/etc/tls/a.pem\"",
            "\"/etc/tls/b.pem\"",
            "\"\"",
            "\"rel.pem\"",
        ],
        "cert_mode" => &[
            "\"0644\"",
            "\"0600\"",
            "\"0777\"",
            "\"9\"",
            "\"04000\"",
            "420",
        ],
        "key_mode" => &[
            "\"0600\"",
            "\"0640\"",
            "\"0644\"",
            "\"0\"",
            "\"0o600\"",
            "384",
        ],
        "owner" | "group" => &["0", "\"0\"", "4294967296", "-1", "\"root\""],
        "server_ca_file" => &["\"/etc/kyma-certd/ca.pem\"", "\"\""],
        "signal" => &["\"HUP\"", "\"KILL\"", "\"usr1\""],
        "pid_file" => &["\"/run/x.pid\"", "\"\""],
        "systemd_unit" => &["\"x.service\"", "\"\""],
        "command" => &["[\"/bin/true\"]", "[]", "\"/bin/true\""],
        _ => &["1", "\"x\"", "[1, 2]", "{ a = 1 }"],
    }
}

const DAEMON_KEYS: &[&str] = &[
    "log_format",
    "log_level",
    "max_concurrent_renewals",
    "watch_config",
    "unknown",
];
const CERT_KEYS: &[&str] = &[
    "name",
    "protocol",
    "dir",
    "connector_url",
    "renewal_url",
    "renew_at",
    "renew_before",
    "jitter",
    "retry_min",
    "retry_max",
    "key_algorithm",
    "rotate_key",
    "timeout",
    "layout",
    "cert_file",
    "key_file",
    "chain_file",
    "ca_file",
    "cert_mode",
    "key_mode",
    "owner",
    "group",
    "server_ca_file",
    "allow_insecure_http",
    "colour",
];
const HOOK_KEYS: &[&str] = &["signal", "pid_file", "systemd_unit", "command", "timeout"];

/// `key = value` lines for some of `keys` (each with probability `p`); values are mostly
/// the first, valid candidate, so that deeper checks get to run.
fn table(keys: &'static [&'static str], p: f64) -> impl Strategy<Value = String> {
    keys.iter()
        .map(|key| {
            let all = candidates(key).to_vec();
            let value = prop_oneof![
                3 => Just(all[0]),
                1 => proptest::sample::select(all),
            ];
            let rare = matches!(
                *key,
                "colour"
                    | "unknown"
                    | "renew_before"
                    | "layout"
                    | "cert_file"
                    | "key_file"
                    | "chain_file"
                    | "ca_file"
            );
            proptest::option::weighted(if rare { p / 4.0 } else { p }, value)
                .prop_map(move |v| v.map(|v| format!("{key} = {v}\n")).unwrap_or_default())
        })
        .collect::<Vec<_>>()
        .prop_map(|lines| lines.concat())
}

fn configuration() -> impl Strategy<Value = String> {
    let certificate = (
        // Most certificates have the three required keys, so that deeper checks run.
        proptest::sample::select(vec![
            "name = \"orders\"\nprotocol = \"compass\"\ndir = \"/var/lib/a\"\n",
            "name = \"billing\"\nprotocol = \"kyma-rest\"\ndir = \"/var/lib/b\"\n",
            "name = \"audit\"\nprotocol = \"compass\"\ndir = \"/var/lib/c\"\n",
            "name = \"orders\"\nprotocol = \"compass\"\n",
        ]),
        table(&CERT_KEYS[3..], 0.15),
        proptest::collection::vec(
            prop_oneof![
                3 => proptest::sample::select(vec![
                    "signal = \"HUP\"\npid_file = \"/run/x.pid\"\n".to_owned(),
                    "systemd_unit = \"x.service\"\n".to_owned(),
                    "command = [\"/bin/true\"]\ntimeout = \"5s\"\n".to_owned(),
                ]),
                1 => table(HOOK_KEYS, 0.3),
            ],
            0..3,
        ),
    )
        .prop_map(|(required, keys, hooks)| {
            let mut text = format!("[[certificate]]\n{required}{keys}");
            for hook in hooks {
                text.push_str(&format!("[[certificate.on_renew]]\n{hook}"));
            }
            text
        });
    (
        proptest::option::of(table(DAEMON_KEYS, 0.4)),
        proptest::option::of(proptest::sample::select(candidates("listen").to_vec())),
        proptest::option::of(table(&CERT_KEYS[5..], 0.08)),
        proptest::collection::vec(certificate, 1..4),
    )
        .prop_map(|(daemon, listen, defaults, certificates)| {
            let mut text = String::new();
            if let Some(daemon) = daemon {
                text.push_str(&format!("[daemon]\n{daemon}\n"));
            }
            if let Some(listen) = listen {
                text.push_str(&format!("[metrics]\nlisten = {listen}\n\n"));
            }
            if let Some(defaults) = defaults {
                // `name`, `dir` and friends are not allowed here: a good mistake to make.
                text.push_str(&format!("[defaults]\n{defaults}\n"));
            }
            for certificate in certificates {
                text.push_str(&certificate);
                text.push('\n');
            }
            text
        })
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: None,
        ..RunnerConfig::default()
    })
}

fn ecdsa_key_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| {
        PrivateKey::generate(KeyAlgorithm::EcdsaP256)
            .unwrap()
            .to_pem()
            .to_owned()
    })
}

fn rsa_key_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| {
        PrivateKey::generate(KeyAlgorithm::Rsa2048)
            .unwrap()
            .to_pem()
            .to_owned()
    })
}

/// A key, and the three PEM texts a connector would return for it.
struct Issued {
    key_pem: String,
    client: String,
    ca: String,
    chain: String,
}

fn issued() -> &'static Issued {
    static ISSUED: OnceLock<Issued> = OnceLock::new();
    ISSUED.get_or_init(|| {
        let key = ca::key();
        let not_before = SystemTime::now() - Duration::from_secs(60);
        let lifetime = Duration::from_secs(86_460);
        let (client, ca, chain) =
            ca::issued(&TestCa::new("input test CA"), &key, not_before, lifetime);
        Issued {
            key_pem: key.to_pem().to_owned(),
            client,
            ca,
            chain,
        }
    })
}

/// `text` with byte `at` replaced, cut at `cut`, or a block doubled.
fn damage(text: &str, how: u8, at: usize, byte: u8) -> String {
    let mut bytes = text.as_bytes().to_vec();
    let at = at % bytes.len().max(1);
    match how % 5 {
        0 => bytes[at] = byte,
        1 => bytes.truncate(at),
        2 => {
            bytes.remove(at);
        }
        3 => bytes.extend_from_slice(&text.as_bytes()[..at]),
        _ => bytes.insert(at, byte),
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The base64 lines of a PEM text, which an error must never repeat.
fn bodies(pem: &str) -> Vec<&str> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .collect()
}

#[test]
fn parsers_yield_a_value_or_a_clear_error_for_hostile_input() {
    let started = Instant::now();
    let mut tried: Vec<(&str, String)> = Vec::new();

    // The whole configuration reader on generated configurations.
    let count = AtomicUsize::new(0);
    runner(2_000)
        .run(&configuration(), |text| {
            count.fetch_add(1, Ordering::Relaxed);
            let result = config::parse_with(&text, Path::new("config.toml"), Checks::Syntax);
            clear_problems(&text, &result)
        })
        .unwrap();
    let accepted = AtomicUsize::new(0);
    runner(300)
        .run(&configuration(), |text| {
            let result = config::parse_with(&text, Path::new("config.toml"), Checks::Syntax);
            if result.is_ok() {
                accepted.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
        .unwrap();
    tried.push((
        "generated configurations",
        format!(
            "{} (about {}% of them accepted)",
            count.load(Ordering::Relaxed),
            accepted.load(Ordering::Relaxed) / 3
        ),
    ));

    // ... and on raw bytes read from a file, as `check-config` does.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let count = AtomicUsize::new(0);
    runner(2_000)
        .run(&proptest::collection::vec(any::<u8>(), 0..600), |bytes| {
            count.fetch_add(1, Ordering::Relaxed);
            std::fs::write(&path, &bytes).unwrap();
            match config::load(&path) {
                Ok(_) => {}
                Err(ConfigError::Invalid { problems, .. }) => {
                    prop_assert!(!problems.is_empty());
                    for problem in &problems {
                        prop_assert_eq!(&problem.path, &path);
                        prop_assert!(!problem.message.trim().is_empty());
                    }
                }
                Err(other) => prop_assert!(false, "{}", other),
            }
            Ok(())
        })
        .unwrap();
    tried.push((
        "configuration files of random bytes",
        count.load(Ordering::Relaxed).to_string(),
    ));

    // Private keys from damaged PEM (both kinds of key).
    let count = AtomicUsize::new(0);
    let strategy = (any::<bool>(), any::<u8>(), any::<usize>(), any::<u8>());
    runner(2_000)
        .run(&strategy, |(rsa, how, at, byte)| {
            count.fetch_add(1, Ordering::Relaxed);
            let original = if rsa { rsa_key_pem() } else { ecdsa_key_pem() };
            let damaged = damage(original, how, at, byte);
            match PrivateKey::from_pem(&damaged) {
                Ok(key) => prop_assert!(key.matches_spki(key.public_key_der())),
                Err(e) => {
                    let shown = format!("{e} {e:?}");
                    for body in bodies(original) {
                        prop_assert!(!shown.contains(body), "{}", shown);
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    runner(2_000)
        .run(&".{0,300}", |text| {
            count.fetch_add(1, Ordering::Relaxed);
            let _ = PrivateKey::from_pem(&text);
            Ok(())
        })
        .unwrap();
    tried.push((
        "private keys (damaged PEM, arbitrary text)",
        count.load(Ordering::Relaxed).to_string(),
    ));

    // Certificates from damaged PEM.
    let count = AtomicUsize::new(0);
    let strategy = (any::<u8>(), any::<usize>(), any::<u8>());
    runner(2_000)
        .run(&strategy, |(how, at, byte)| {
            count.fetch_add(1, Ordering::Relaxed);
            let damaged = damage(&issued().chain, how, at, byte);
            match parse_pem_bundle(&damaged) {
                Ok(infos) => prop_assert!(!infos.is_empty()),
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
            let _ = CertInfo::from_pem(&damaged);
            Ok(())
        })
        .unwrap();
    tried.push((
        "certificate bundles (damaged PEM)",
        count.load(Ordering::Relaxed).to_string(),
    ));

    // Verification of damaged connector answers: refused unless intact.
    let count = AtomicUsize::new(0);
    let subject = Subject::parse(SUBJECT).unwrap();
    let strategy = (0u8..3, any::<u8>(), any::<usize>(), any::<u8>());
    runner(1_000)
        .run(&strategy, |(field, how, at, byte)| {
            count.fetch_add(1, Ordering::Relaxed);
            let issued = issued();
            let mut texts = [
                issued.client.clone(),
                issued.ca.clone(),
                issued.chain.clone(),
            ];
            texts[field as usize] = damage(&texts[field as usize], how, at, byte);
            let key = PrivateKey::from_pem(&issued.key_pem).unwrap();
            let result = verify(
                ReturnedPems {
                    client_cert: &texts[0],
                    ca: &texts[1],
                    chain: &texts[2],
                },
                key,
                &Expectations {
                    subject: &subject,
                    now: SystemTime::now(),
                    renew: RenewPolicy::At(0.7),
                    jitter: 0.05,
                    previous_lifetime: None,
                },
            );
            if let Err(e) = result {
                prop_assert!(!e.to_string().is_empty());
            }
            Ok(())
        })
        .unwrap();
    tried.push((
        "connector answers to verify (damaged PEM)",
        count.load(Ordering::Relaxed).to_string(),
    ));

    let total: usize = tried
        .iter()
        .filter_map(|(_, n)| n.split_whitespace().next()?.parse::<usize>().ok())
        .sum();
    tried.push(("time", format!("{:.1} s", started.elapsed().as_secs_f64())));
    let mut numbers: Vec<(&str, String)> = vec![("inputs tried", total.to_string())];
    numbers.extend(tried);
    results::record(
        "6a-input-properties",
        "property tests of the public parsers: generated configurations (every key, valid and invalid values, hooks, defaults), configuration files of random bytes, private keys and certificate bundles from damaged PEM, verification of damaged answers; unit tests add 10,000 cases each for durations, percentages, modes, subjects and the base64-of-PEM field, and 2,000 for each protocol's decoders",
        "no panic; accepted configurations render and read back identical; every refusal names the file and a line inside it with a message; key errors never repeat key material",
        &numbers,
    );
}
