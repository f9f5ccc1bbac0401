//! `check-config` through the real binary: the example is accepted, and each class of
//! mistake is exit 2 with a message naming the file, the line and the key.

mod support;

use std::path::Path;

use support::invoke::kyma_certd;

fn check(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    check_file(&path)
}

fn check_file(path: &Path) -> (i32, String, String) {
    let out = kyma_certd(path, &["check-config"]).run();
    (out.code(), out.stdout(), out.stderr())
}

const CERT: &str =
    "[[certificate]]\nname = \"a\"\nprotocol = \"compass\"\ndir = \"/var/lib/kyma-certd/a\"\n";

/// Asserts exit 2 and that the message names `config.toml:<line>:` and the key.
fn assert_names(text: &str, line: usize, key: &str) -> String {
    let (code, _, err) = check(text);
    assert_eq!(code, 2, "exit 2 for a bad config: {err}");
    assert!(
        err.contains(&format!("config.toml:{line}:")),
        "names file and line {line}: {err}"
    );
    assert!(
        err.contains(&format!("`{key}`")),
        "names the key `{key}`: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn the_example_config_is_accepted_and_resolved() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let (code, out, err) = check_file(&example);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("name = \"orders\"") && out.contains("name = \"billing\""),
        "{out}"
    );
    assert!(
        out.contains("renew_at = \"70%\""),
        "defaults filled in: {out}"
    );
}

#[test]
fn unknown_keys_are_named_with_their_line() {
    assert_names(&format!("{CERT}colour = \"blue\"\n"), 5, "colour");
    assert_names("[daemon]\nbogus = 1\n", 2, "bogus");
}

#[test]
fn duplicate_certificate_names_are_refused() {
    let text = format!("{CERT}\n{}", CERT.replace("/a\"", "/b\""));
    assert_names(&text, 7, "name");
}

#[test]
fn plain_http_is_refused_unless_explicitly_allowed() {
    let text = format!("{CERT}connector_url = \"http://connector.example/graphql\"\n");
    let err = assert_names(&text, 5, "connector_url");
    assert!(
        err.contains("allow_insecure_http"),
        "says how to allow it: {err}"
    );
    let (code, _, err) = check(&format!("{text}allow_insecure_http = true\n"));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("allow_insecure_http"),
        "a warning is logged: {err}"
    );
}

#[test]
fn an_unreadable_server_ca_file_is_refused() {
    let err = assert_names(
        &format!("{CERT}server_ca_file = \"/nonexistent/ca.pem\"\n"),
        5,
        "server_ca_file",
    );
    assert!(err.contains("cannot be read"), "{err}");
}

#[test]
fn impossible_modes_are_refused() {
    assert_names(&format!("{CERT}key_mode = \"0644\"\n"), 5, "key_mode");
    assert_names(&format!("{CERT}cert_mode = \"999\"\n"), 5, "cert_mode");
}

#[test]
fn contradictory_options_are_refused() {
    assert_names(
        &format!("{CERT}renew_at = \"70%\"\nrenew_before = \"3d\"\n"),
        6,
        "renew_before",
    );
    assert_names(
        &format!("{CERT}cert_file = \"/tmp/x.crt\"\n"),
        5,
        "cert_file",
    );
}

#[test]
fn bad_durations_percentages_and_urls_are_refused() {
    assert_names(&format!("{CERT}timeout = \"soon\"\n"), 5, "timeout");
    assert_names(&format!("{CERT}renew_at = \"170%\"\n"), 5, "renew_at");
    assert_names(
        &format!("{CERT}connector_url = \"not a url\"\n"),
        5,
        "connector_url",
    );
    assert_names(
        "[defaults]\ntimeout = \"3s\"\ntimeout = \"4s\"\n",
        3,
        "timeout",
    );
}

#[test]
fn two_certificates_in_one_directory_are_refused() {
    let text = format!("{CERT}\n{}", CERT.replace("name = \"a\"", "name = \"b\""));
    assert_names(&text, 9, "dir");
}

#[test]
fn an_empty_file_is_valid_and_says_no_certificates_are_configured() {
    let (code, out, err) = check("");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("no certificates configured"), "{out}");
}

#[test]
fn garbage_and_huge_files_are_clear_errors() {
    for text in [
        "\u{0}\u{1}\u{2}garbage\u{7f}".to_owned(),
        "x".repeat(10 << 20),
    ] {
        let (code, _, err) = check(&text);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("config.toml"), "names the file: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let nested = format!("a = {}{}", "[".repeat(10_000), "]".repeat(10_000));
    let (code, _, err) = check(&nested);
    assert_eq!(
        code, 2,
        "deep nesting is an error, not a stack overflow: {err}"
    );
}
