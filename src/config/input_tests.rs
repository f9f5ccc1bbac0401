//! The reader on input that is no configuration at all: syntax errors, binary data, a
//! huge file, a missing one, deep nesting, and arbitrary text, each refused with a clear
//! problem and never a panic.

use std::path::Path;

use proptest::prelude::*;

use super::testutil::{problems, syntax};
use super::*;

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
