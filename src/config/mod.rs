//! Reads and validates the TOML configuration (DESIGN.md section 3) into the types of
//! `model`, reporting every problem with its file, line, column and key. Does not act on
//! the configuration.
//!
//! Reading happens in two steps: the TOML text becomes raw serde structs that refuse
//! unknown keys (`raw`), one section or `[[certificate]]` at a time so that a mistake in
//! one does not hide mistakes in another; then `build` validates values and their
//! combinations and builds the domain types.
//!
//! `[defaults]` may hold every per-certificate key except `name`, `protocol`, `dir`,
//! `connector_url`, `renewal_url`, the four `*_file` paths and `on_renew`. A certificate
//! that sets `renew_at` or `renew_before` replaces the defaults' renewal policy whole.
//! Relative paths are taken relative to the directory holding the configuration file.

mod build;
mod model;
mod problems;
mod raw;
mod render;
pub mod values;

#[cfg(test)]
mod input_tests;
#[cfg(test)]
mod reference_tests;
#[cfg(test)]
mod refusal_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

use std::path::Path;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

pub use build::Checks;
pub use model::*;
pub use problems::{ConfigError, Problem};

use problems::Problems;

/// Larger configuration files are refused before parsing.
pub const MAX_CONFIG_BYTES: usize = 1 << 20;

/// Reads and validates the file with every check (`Checks::Full`).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let bytes = read_limited(path)?;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let bytes = e.into_bytes();
            let prefix = String::from_utf8_lossy(&bytes[..valid]);
            let mut problems = Problems::new(path, &prefix);
            problems.at(
                valid..valid,
                None,
                None,
                "the file is not UTF-8 text (is it a binary file?)",
            );
            return Err(problems.into_error());
        }
    };
    parse_with(&text, path, Checks::Full)
}

fn read_limited(path: &Path) -> Result<Vec<u8>, ConfigError> {
    use std::io::Read as _;
    let read_error = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() > MAX_CONFIG_BYTES {
        let mut problems = Problems::new(path, "");
        problems.whole_file(format!(
            "the file is larger than {} KiB; this is not a configuration file",
            MAX_CONFIG_BYTES / 1024
        ));
        return Err(problems.into_error());
    }
    Ok(bytes)
}

/// Validates `text` as if read from `path`, with every check (`Checks::Full`).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    parse_with(text, path, Checks::Full)
}

/// Validates `text` as if read from `path`, with the given checks.
pub fn parse_with(text: &str, path: &Path, checks: Checks) -> Result<Config, ConfigError> {
    let mut problems = Problems::new(path, text);
    if text.len() > MAX_CONFIG_BYTES {
        problems.whole_file(format!(
            "the file is larger than {} KiB; this is not a configuration file",
            MAX_CONFIG_BYTES / 1024
        ));
        return Err(problems.into_error());
    }
    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        for error in errors {
            let span = error.span().unwrap_or(0..0);
            // Syntax errors such as "duplicate key" point at the key: name it.
            let key = text
                .get(span.clone())
                .map(|t| t.trim().trim_matches('"'))
                .filter(|t| !t.is_empty() && t.len() <= 64)
                .filter(|t| {
                    t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                });
            problems.at(span, None, key, error.message().to_owned());
        }
        return Err(problems.into_error());
    }
    let mut sections = build::Sections::default();
    for (key, value) in root.into_inner() {
        let key_span = key.span();
        match key.get_ref().as_ref() {
            "daemon" => sections.daemon = deserialize(value, "[daemon]", &mut problems),
            "metrics" => sections.metrics = deserialize(value, "[metrics]", &mut problems),
            "defaults" => sections.defaults = deserialize(value, "[defaults]", &mut problems),
            "certificate" => read_certificates(value, &mut sections, &mut problems),
            other => problems.at(
                key_span,
                None,
                Some(other),
                "unknown key; expected `daemon`, `metrics`, `defaults` or `certificate`",
            ),
        }
    }
    let base_dir = path.parent().unwrap_or(Path::new(""));
    let config = build::build(sections, path, base_dir, checks, &mut problems);
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ => Err(problems.into_error()),
    }
}

fn read_certificates(
    value: Spanned<DeValue<'_>>,
    sections: &mut build::Sections,
    problems: &mut Problems,
) {
    let span = value.span();
    let DeValue::Array(items) = value.get_ref() else {
        problems.at(
            span,
            None,
            Some("certificate"),
            "must be an array of tables: write `[[certificate]]`, not `[certificate]`",
        );
        return;
    };
    for (index, item) in items.iter().enumerate() {
        let context = match item
            .get_ref()
            .get("name")
            .and_then(|n| n.get_ref().as_str())
        {
            Some(name) => format!("certificate {name:?}"),
            None => format!("certificate #{}", index + 1),
        };
        let item_span = item.span();
        if let Some(raw) = deserialize(item.clone(), &context, problems) {
            sections.certificates.push((item_span, raw));
        }
    }
}

fn deserialize<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    context: &str,
    problems: &mut Problems,
) -> Option<T> {
    let span = value.span();
    match T::deserialize(ValueDeserializer::from(value)) {
        Ok(raw) => Some(raw),
        Err(e) => {
            problems.at(
                e.span().unwrap_or(span),
                Some(context),
                None,
                e.message().to_owned(),
            );
            None
        }
    }
}
