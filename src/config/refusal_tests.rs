//! One test per kind of mistake in an otherwise readable file: unknown keys, wrong types,
//! bad names, URLs, modes, options, owners and hooks, and certificates that overlap. Each
//! is refused with the key and the reason.

use std::path::Path;
use std::time::Duration;

use super::testutil::{MINIMAL, assert_problem, problems, syntax, with_cert};
use super::*;

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
