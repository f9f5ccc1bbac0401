//! What the configuration tests share: a minimal certificate, and reading a text with
//! the syntax checks only into its problems.

use std::path::Path;

use super::{Checks, Config, ConfigError, parse_with};

/// The shortest valid `[[certificate]]`.
pub(super) const MINIMAL: &str = r#"
[[certificate]]
name = "orders"
protocol = "compass"
dir = "/var/lib/kyma-certd/orders"
"#;

pub(super) fn syntax(text: &str) -> Result<Config, ConfigError> {
    parse_with(text, Path::new("config.toml"), Checks::Syntax)
}

/// The problems as displayed, one string each.
pub(super) fn problems(text: &str) -> Vec<String> {
    match syntax(text) {
        Ok(_) => panic!("expected the configuration to be refused"),
        Err(e) => e.to_string().lines().map(str::to_owned).collect(),
    }
}

pub(super) fn assert_problem(text: &str, expected: &str) {
    let all = problems(text);
    assert!(
        all.iter().any(|p| p.contains(expected)),
        "no problem containing {expected:?} in {all:#?}"
    );
}

pub(super) fn with_cert(extra: &str) -> String {
    format!("{MINIMAL}{extra}\n")
}
