//! Tests of the whole configuration reader on files it accepts: the example file, the
//! defaults and their inheritance, the resolved rendering, relative paths, and how the
//! problems of a refused file are reported.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::testutil::{MINIMAL, problems, syntax};
use super::*;

#[test]
fn example_config_parses_and_documents_every_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = parse_with(&text, &path, Checks::Syntax).unwrap();
    assert_eq!(config.certificates.len(), 2);
    let orders = &config.certificates[0];
    assert_eq!(orders.on_renew.len(), 3);
    assert_eq!(orders.key_mode, 0o640);
    assert_eq!(orders.renew, RenewPolicy::At(0.7));
    let billing = &config.certificates[1];
    assert_eq!(
        billing.renew,
        RenewPolicy::Before(Duration::from_secs(7 * 86_400))
    );
    assert!(matches!(billing.layout, Layout::Files(_)));
    for key in [
        "log_format",
        "log_level",
        "max_concurrent_renewals",
        "watch_config",
        "listen",
        "renew_at",
        "renew_before",
        "jitter",
        "retry_min",
        "retry_max",
        "key_algorithm",
        "rotate_key",
        "timeout",
        "layout",
        "cert_mode",
        "key_mode",
        "allow_insecure_http",
        "owner",
        "group",
        "server_ca_file",
        "name",
        "protocol",
        "dir",
        "connector_url",
        "renewal_url",
        "signal",
        "pid_file",
        "systemd_unit",
        "command",
        "cert_file",
        "key_file",
        "chain_file",
        "ca_file",
        "proxy",
        "kind",
        "file",
        "parts",
        "password_file",
        "truststore",
    ] {
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines.iter().enumerate().any(|(i, l)| {
                let l = l.trim_start_matches(['#', ' ']);
                let next_is_comment = lines
                    .get(i + 1)
                    .is_some_and(|n| n.trim_start().starts_with('#'));
                l.starts_with(&format!("{key} ")) && (l.contains('#') || next_is_comment)
            }),
            "key {key} is not documented with a comment"
        );
    }
}

#[test]
fn minimal_certificate_gets_every_default() {
    let config = syntax(MINIMAL).unwrap();
    assert_eq!(config.daemon.log_format, LogFormat::Text);
    assert_eq!(config.daemon.log_level, "info");
    assert_eq!(config.daemon.max_concurrent_renewals, 4);
    assert_eq!(
        config.metrics.listen,
        Some("127.0.0.1:9467".parse().unwrap())
    );
    let cert = &config.certificates[0];
    assert_eq!(cert.protocol, Protocol::Compass);
    assert_eq!(cert.renew, RenewPolicy::At(0.7));
    assert_eq!(cert.jitter, 0.05);
    assert_eq!(cert.retry_min, Duration::from_secs(30));
    assert_eq!(cert.retry_max, Duration::from_secs(3600));
    assert_eq!(cert.key_algorithm, KeyAlgorithm::Rsa4096);
    assert!(cert.rotate_key);
    assert_eq!(cert.timeout, Duration::from_secs(30));
    assert_eq!(cert.layout, Layout::Symlink);
    assert_eq!((cert.cert_mode, cert.key_mode), (0o644, 0o600));
    assert_eq!((cert.owner, cert.group), (None, None));
    assert!(!cert.allow_insecure_http);
    assert!(cert.on_renew.is_empty());
}

#[test]
fn defaults_are_inherited_and_certificates_override_them() {
    let config = syntax(
        r#"
[defaults]
renew_at = "60%"
key_algorithm = "ecdsa-p256"
retry_min = "1m"
[[certificate]]
name = "a"
protocol = "compass"
dir = "/d/a"
[[certificate]]
name = "b"
protocol = "kyma-rest"
dir = "/d/b"
renew_before = "2d"
key_algorithm = "rsa2048"
"#,
    )
    .unwrap();
    let [a, b] = &config.certificates[..] else {
        panic!("two certificates expected")
    };
    assert_eq!(a.renew, RenewPolicy::At(0.6));
    assert_eq!(a.key_algorithm, KeyAlgorithm::EcdsaP256);
    assert_eq!(
        b.renew,
        RenewPolicy::Before(Duration::from_secs(2 * 86_400))
    );
    assert_eq!(b.key_algorithm, KeyAlgorithm::Rsa2048);
    assert_eq!(b.retry_min, Duration::from_secs(60));
}

#[test]
fn resolved_rendering_reads_back_to_the_same_configuration() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = parse_with(&text, &path, Checks::Syntax).unwrap();
    let rendered = config.render_resolved();
    assert!(rendered.contains("jitter = \"5%\""), "{rendered}");
    assert!(rendered.contains("renew_before = \"7d\""), "{rendered}");
    let again = parse_with(&rendered, &path, Checks::Syntax).unwrap();
    assert_eq!(again, config);
}

#[test]
fn relative_paths_are_taken_from_the_config_directory() {
    let config = parse_with(
        &MINIMAL.replace("/var/lib/kyma-certd/orders", "./state/orders"),
        Path::new("/etc/kyma-certd/config.toml"),
        Checks::Syntax,
    )
    .unwrap();
    assert_eq!(
        config.certificates[0].dir,
        PathBuf::from("/etc/kyma-certd/state/orders")
    );
}

#[test]
fn metrics_can_be_disabled() {
    let config = syntax(&format!("[metrics]\nlisten = \"\"\n{MINIMAL}")).unwrap();
    assert_eq!(config.metrics.listen, None);
}

#[test]
fn a_file_without_certificates_is_valid_and_says_so_plainly() {
    for text in ["", "# comments only\n", "[daemon]\nlog_level = \"info\"\n"] {
        let config = syntax(text).expect("a file without certificates is valid");
        assert!(config.certificates.is_empty());
        let rendered = config.render_resolved();
        assert!(
            rendered.contains("no certificates configured"),
            "{rendered}"
        );
    }
    let one = syntax(MINIMAL).unwrap().render_resolved();
    assert!(!one.contains("no certificates configured"), "{one}");
}

#[test]
fn problems_carry_file_line_column_and_key() {
    let text = format!("{MINIMAL}renew_at = \"70%\"\nrenew_before = \"30d\"\n");
    let all = problems(&text);
    assert_eq!(
        all,
        [
            "config.toml:7:16: certificate \"orders\": key `renew_before`: cannot be combined with `renew_at`"
        ]
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
[daemon]
log_format = "xml"
[defaults]
jitter = "80%"
[[certificate]]
name = "Bad Name"
protocol = "soap"
dir = "/d/a"
[[certificate]]
name = "b"
protocol = "compass"
dir = "/d/b"
colour = "blue"
"#;
    let all = problems(text);
    assert!(all.len() >= 5, "{all:#?}");
    assert!(all[0].starts_with("config.toml:3:14: [daemon]: key `log_format`"));
    assert!(all.iter().any(|p| p.contains("[defaults]: key `jitter`")));
    assert!(all.iter().any(|p| p.contains("key `name`")));
    assert!(all.iter().any(|p| p.contains("key `protocol`")));
    assert!(all.iter().any(|p| p.contains("unknown field `colour`")));
}
