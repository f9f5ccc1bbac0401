//! Tests of the whole configuration reader: the example file, defaults, and one test per
//! kind of mistake.

use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;

use super::*;

const MINIMAL: &str = r#"
[[certificate]]
name = "orders"
protocol = "compass"
dir = "/var/lib/kyma-certd/orders"
"#;

fn syntax(text: &str) -> Result<Config, ConfigError> {
    parse_with(text, Path::new("config.toml"), Checks::Syntax)
}

/// The problems as displayed, one string each.
fn problems(text: &str) -> Vec<String> {
    match syntax(text) {
        Ok(_) => panic!("expected the configuration to be refused"),
        Err(e) => e.to_string().lines().map(str::to_owned).collect(),
    }
}

fn assert_problem(text: &str, expected: &str) {
    let all = problems(text);
    assert!(
        all.iter().any(|p| p.contains(expected)),
        "no problem containing {expected:?} in {all:#?}"
    );
}

fn with_cert(extra: &str) -> String {
    format!("{MINIMAL}{extra}\n")
}

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

#[test]
fn unknown_keys_are_refused_everywhere() {
    assert_problem("[deamon]\n", "key `deamon`: unknown key");
    assert_problem(
        &format!("[daemon]\nlog = 1\n{MINIMAL}"),
        "unknown field `log`",
    );
    assert_problem(
        &format!("[defaults]\nname = \"x\"\n{MINIMAL}"),
        "unknown field `name`",
    );
    assert_problem(
        &with_cert("colour = \"red\""),
        "config.toml:6:1: certificate \"orders\": unknown field `colour`",
    );
    assert_problem(
        &with_cert("[[certificate.on_renew]]\nsignal = \"HUP\"\npid_file = \"/p\"\nretries = 3"),
        "unknown field `retries`",
    );
}

#[test]
fn wrong_types_are_refused() {
    assert_problem(
        &with_cert("rotate_key = \"yes\""),
        "invalid type: string \"yes\", expected a boolean",
    );
    assert_problem(
        &with_cert("cert_mode = 644"),
        "invalid type: integer `644`, expected a string",
    );
    assert_problem(
        &format!("[daemon]\nmax_concurrent_renewals = \"4\"\n{MINIMAL}"),
        "expected i64",
    );
    assert_problem("certificate = 5\n", "write `[[certificate]]`");
    assert_problem("[certificate]\nname = \"x\"\n", "write `[[certificate]]`");
}

#[test]
fn duplicate_and_bad_names_are_refused() {
    let text = format!("{MINIMAL}{}", MINIMAL.replace("/orders", "/other"));
    assert_problem(
        &text,
        "key `name`: is already used by the certificate on line 3",
    );
    assert_problem(
        &MINIMAL.replace("\"orders\"", "\"Orders\""),
        "lower-case letters",
    );
    assert_problem(&MINIMAL.replace("\"orders\"", "\"\""), "must not be empty");
    assert_problem(
        &MINIMAL.replace("name = \"orders\"\n", ""),
        "key `name`: is required",
    );
}

#[test]
fn urls_must_be_valid_and_https_unless_allowed() {
    assert_problem(
        &with_cert("connector_url = \"not a url\""),
        "key `connector_url`: is not a valid URL",
    );
    assert_problem(
        &with_cert("renewal_url = \"http://127.0.0.1:1/x\""),
        "key `renewal_url`: uses plain http",
    );
    let config = syntax(&with_cert(
        "allow_insecure_http = true\nconnector_url = \"http://127.0.0.1:8080/connector/graphql\"",
    ))
    .unwrap();
    assert!(config.certificates[0].allow_insecure_http);
    assert_eq!(
        config.certificates[0]
            .connector_url
            .as_ref()
            .unwrap()
            .scheme(),
        "http"
    );
}

#[test]
fn server_ca_file_must_be_readable_and_hold_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let text = with_cert(&format!("server_ca_file = {:?}", missing.to_str().unwrap()));
    let err = parse(&text, Path::new("config.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("key `server_ca_file`: cannot be read"),
        "{err}"
    );
    assert!(syntax(&text).is_ok(), "syntax checks do not read files");

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificate here").unwrap();
    let text = with_cert(&format!("server_ca_file = {:?}", empty.to_str().unwrap()));
    let err = parse(&text, Path::new("config.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds no usable PEM certificate"), "{err}");

    let good = dir.path().join("ca.pem");
    std::fs::write(&good, crate::testutil::TestCa::new("ca").pem()).unwrap();
    let text = with_cert(&format!("server_ca_file = {:?}", good.to_str().unwrap()));
    let config = parse(&text, Path::new("config.toml")).unwrap();
    assert_eq!(
        config.certificates[0].server_ca_file.as_deref(),
        Some(good.as_path())
    );
}

#[test]
fn impossible_modes_are_refused() {
    assert_problem(
        &with_cert("key_mode = \"0644\""),
        "key `key_mode`: must not give others any access",
    );
    assert_problem(
        &with_cert("cert_mode = \"rw-r--r--\""),
        "key `cert_mode`: must be an octal mode",
    );
    assert_problem(
        &with_cert("cert_mode = \"1777\""),
        "setuid, setgid or sticky",
    );
    assert_problem(&with_cert("cert_mode = \"07777\""), "octal mode");
    assert_problem(&with_cert("key_mode = \"0040\""), "owner read");
}

#[test]
fn contradictory_and_out_of_range_options_are_refused() {
    assert_problem(
        &with_cert("retry_min = \"2h\"\nretry_max = \"1h\""),
        "key `retry_min`: 2h is longer than retry_max 1h",
    );
    assert_problem(
        &with_cert("renew_at = \"100%\""),
        "key `renew_at`: must be between 0% and 100%",
    );
    assert_problem(
        &with_cert("jitter = \"51%\""),
        "key `jitter`: must be between 0% and 50%",
    );
    assert_problem(
        &with_cert("renew_at = \"10%\"\njitter = \"10%\""),
        "must be smaller than `renew_at`",
    );
    assert_problem(
        &with_cert("timeout = \"0s\""),
        "key `timeout`: must be longer than zero",
    );
    assert_problem(
        &with_cert("cert_file = \"/etc/x.pem\""),
        "key `cert_file`: only applies with layout = \"files\"",
    );
    assert_problem(
        &with_cert("layout = \"files\"\ncert_file = \"/a\""),
        "key `key_file`: is required",
    );
    assert_problem(
        &with_cert("layout = \"tree\""),
        "key `layout`: must be \"symlink\" or \"files\"",
    );
    assert_problem(
        &with_cert(
            "layout = \"files\"\ncert_file = \"/a\"\nkey_file = \"/a\"\nchain_file = \"/c\"\nca_file = \"/d\"",
        ),
        "key `key_file`: is the same file as `cert_file`",
    );
    assert_problem(
        &format!("[metrics]\nlisten = \"localhost\"\n{MINIMAL}"),
        "key `listen`",
    );
    assert_problem(
        &format!("[daemon]\nmax_concurrent_renewals = 0\n{MINIMAL}"),
        "between 1 and 1024",
    );
    assert_problem(
        &format!("[daemon]\nlog_level = \"[[[\"\n{MINIMAL}"),
        "key `log_level`",
    );
}

#[test]
fn bad_defaults_are_reported_once_against_defaults() {
    let text = format!(
        "[defaults]\nretry_max = \"forever\"\n{MINIMAL}{}",
        MINIMAL.replace("orders", "other")
    );
    let all = problems(&text);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert!(all[0].starts_with("config.toml:2:13: [defaults]: key `retry_max`: is not a duration"));
}

#[test]
fn metrics_can_be_disabled() {
    let config = syntax(&format!("[metrics]\nlisten = \"\"\n{MINIMAL}")).unwrap();
    assert_eq!(config.metrics.listen, None);
}

#[test]
fn two_certificates_cannot_share_a_directory_or_a_file() {
    let text = format!(
        "{MINIMAL}{}",
        MINIMAL
            .replace("\"orders\"", "\"other\"")
            .replace("/orders", "/orders/.")
    );
    assert_problem(
        &text,
        "certificate \"other\": key `dir`: is already used by certificate \"orders\"",
    );
    let files = "layout = \"files\"\ncert_file = \"/t/c\"\nkey_file = \"/t/k\"\nchain_file = \"/t/ch\"\nca_file = \"/t/ca\"\n";
    let text = format!(
        "{}{files}{}{files}",
        MINIMAL,
        MINIMAL
            .replace("\"orders\"", "\"other\"")
            .replace("/orders", "/other")
    );
    assert_problem(
        &text,
        "key `cert_file`: /t/c is also written by certificate \"orders\"",
    );
    let into_dir = format!(
        "{MINIMAL}{}layout = \"files\"\ncert_file = \"/var/lib/kyma-certd/orders/cert.pem\"\nkey_file = \"/k\"\nchain_file = \"/ch\"\nca_file = \"/ca\"\n",
        MINIMAL
            .replace("\"orders\"", "\"other\"")
            .replace("/orders", "/other")
    );
    assert_problem(&into_dir, "is also written by certificate \"orders\"");
}

#[test]
fn owner_and_group_names_are_resolved_or_refused() {
    let config = parse(
        &with_cert("owner = \"root\"\ngroup = 0"),
        Path::new("c.toml"),
    )
    .unwrap();
    assert_eq!(
        (config.certificates[0].owner, config.certificates[0].group),
        (Some(0), Some(0))
    );
    let err = parse(
        &with_cert("owner = \"no-such-user-kc\"\ngroup = \"no-such-group-kc\""),
        Path::new("c.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("key `owner`: no user named `no-such-user-kc`"),
        "{err}"
    );
    assert!(
        err.contains("key `group`: no group named `no-such-group-kc`"),
        "{err}"
    );
    assert_problem(
        &with_cert("owner = -5"),
        "key `owner`: must be a valid numeric id",
    );
}

#[test]
fn an_absurd_hook_timeout_is_refused_at_load_with_its_line() {
    let hook = |timeout: &str| {
        with_cert(&format!(
            "[[certificate.on_renew]]\ncommand = [\"/bin/true\"]\ntimeout = \"{timeout}\""
        ))
    };
    // Too large to be a duration at all: still refused on its key, never overflowing.
    assert_problem(&hook("100000000000000000000d"), "key `timeout`");
    assert_problem(&hook("0s"), "key `timeout`: must be longer than zero");
    for absurd in ["30d", "100000000d", "11m"] {
        let all = problems(&hook(absurd));
        assert!(
            all.iter().any(
                |p| p.contains("key `timeout`: must be more than zero and at most 10m")
                    && p.contains("config.toml:")
            ),
            "{absurd}: {all:#?}"
        );
    }
    assert!(syntax(&hook("10m")).is_ok());
}

#[test]
fn hooks_need_exactly_one_kind() {
    let hook = |body: &str| with_cert(&format!("[[certificate.on_renew]]\n{body}"));
    assert_problem(&hook("timeout = \"5s\""), "needs exactly one of");
    assert_problem(
        &hook("signal = \"HUP\"\nsystemd_unit = \"x.service\""),
        "needs exactly one of",
    );
    assert_problem(&hook("signal = \"HUP\""), "key `pid_file`: is required");
    assert_problem(
        &hook("pid_file = \"/run/x.pid\""),
        "key `signal`: is required",
    );
    assert_problem(
        &hook("signal = \"KILL\"\npid_file = \"/p\""),
        "key `signal`: must be one of",
    );
    assert_problem(
        &hook("signal = \"HUP\"\npid_file = \"/p\"\ntimeout = \"3s\""),
        "has no effect on a signal hook",
    );
    assert_problem(&hook("command = []"), "key `command`: must name a program");
    assert_problem(
        &hook("systemd_unit = \"a b\""),
        "not a valid systemd unit name",
    );
    let config = syntax(&hook("command = [\"/bin/true\", \"x\"]\ntimeout = \"5s\"")).unwrap();
    assert_eq!(
        config.certificates[0].on_renew,
        [HookConfig::Command {
            argv: vec!["/bin/true".into(), "x".into()],
            timeout: Duration::from_secs(5)
        }]
    );
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
fn syntax_errors_carry_their_position() {
    let all = problems("[daemon]\nlog_format = \"text\nx = 1\n");
    assert!(all[0].starts_with("config.toml:2:"), "{all:#?}");
}

#[test]
fn binary_garbage_is_refused_with_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, b"[daemon]\nlog\xff\xfe\x00level").unwrap();
    let err = load(&path).unwrap_err().to_string();
    assert!(
        err.contains("config.toml:2:4: the file is not UTF-8 text"),
        "{err}"
    );
    std::fs::write(&path, b"\x00\x01\x02garbage\x7f = = [").unwrap();
    let err = load(&path).unwrap_err().to_string();
    assert!(err.contains("config.toml:1:"), "{err}");
}

#[test]
fn huge_file_is_refused_without_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "# padding\n".repeat(1_000_000)).unwrap();
    let err = load(&path).unwrap_err().to_string();
    assert!(
        err.contains("config.toml: the file is larger than 1024 KiB"),
        "{err}"
    );
}

#[test]
fn missing_file_is_a_read_error_naming_the_path() {
    let err = load(Path::new("/nonexistent/kyma-certd.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("/nonexistent/kyma-certd.toml"));
}

#[test]
fn deeply_nested_values_are_refused_not_overflowed() {
    let deep_array = format!("x = {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    assert!(!problems(&deep_array).is_empty());
    let deep_table = format!("x = {}1{}\n", "{a = ".repeat(10_000), "}".repeat(10_000));
    assert!(!problems(&deep_table).is_empty());
    let dotted = format!("{} = 1\n", vec!["a"; 10_000].join("."));
    assert!(!problems(&dotted).is_empty());
}

/// A refusal that names the file and a position inside the text, with a message.
fn assert_clear(text: &str, result: &Result<Config, ConfigError>) -> Result<(), TestCaseError> {
    let Err(error) = result else {
        return Ok(());
    };
    let ConfigError::Invalid { problems, .. } = error else {
        return Err(TestCaseError::fail(format!(
            "not a list of problems: {error}"
        )));
    };
    prop_assert!(!problems.is_empty());
    let lines = text.lines().count() + 1;
    for problem in problems {
        prop_assert_eq!(&problem.path, Path::new("config.toml"));
        prop_assert!(!problem.message.trim().is_empty(), "{problem}");
        if let Some((line, column)) = problem.position {
            prop_assert!(line >= 1 && line <= lines && column >= 1, "{problem}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn parser_yields_a_config_or_clear_problems_on_arbitrary_text(text in "\\PC{0,200}") {
        let result = syntax(&text);
        assert_clear(&text, &result)?;
    }

    #[test]
    fn parser_never_panics_on_config_like_text(
        lines in prop::collection::vec(
            prop::sample::select(vec![
                "[daemon]", "[metrics]", "[defaults]", "[[certificate]]", "[[certificate.on_renew]]",
                "name = \"a\"", "name = \"a\"", "protocol = \"compass\"", "dir = \"/d\"", "dir = \"\"",
                "renew_at = \"70%\"", "renew_before = \"1d\"", "jitter = \"99%\"", "layout = \"files\"",
                "cert_file = \"/x\"", "key_mode = \"0777\"", "signal = \"HUP\"", "command = []",
                "timeout = \"0s\"", "owner = 4294967296", "listen = \"\"", "x = [[[", "= =",
                "retry_min = \"9d\"", "log_level = \"\"", "certificate = 1",
            ]),
            0..30,
        )
    ) {
        let text = lines.join("\n");
        let result = syntax(&text);
        assert_clear(&text, &result)?;
    }
}
