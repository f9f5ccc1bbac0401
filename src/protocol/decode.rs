//! Decoding of untrusted connector responses shared by both protocols: walking JSON by
//! path with error messages that never quote a value, and base64-of-PEM certificate
//! fields. Does not verify certificates (key match, subject, chain belong elsewhere).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::Value;
use url::Url;

use super::error::{ProtocolError, RedactedUrl, bounded};

/// Longest text field (subject, URL, token, key algorithm) accepted from a connector.
pub(crate) const MAX_TEXT_FIELD_CHARS: usize = 8 * 1024;

/// Why a response body could not be decoded. Messages name fields, never their values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum DecodeError {
    #[error("invalid json: {0}")]
    Json(String),
    #[error("field {0} is missing")]
    Missing(String),
    #[error("field {0} is null")]
    Null(String),
    #[error("field {path} is not {expected}")]
    WrongType {
        path: String,
        expected: &'static str,
    },
    #[error("field {0} is empty")]
    Empty(String),
    #[error("field {0} is longer than {MAX_TEXT_FIELD_CHARS} characters")]
    TooLong(String),
    #[error("field {0} is not standard padded base64")]
    Base64(String),
    #[error("field {0} does not decode to utf-8 text")]
    NotUtf8(String),
    #[error("field {0} holds no pem CERTIFICATE block")]
    NoCertificate(String),
    #[error("field {0} holds a malformed pem block")]
    MalformedPem(String),
    #[error("field {path} is not a usable url: {detail}")]
    BadUrl { path: String, detail: String },
    /// The GraphQL `errors` array was present; carries the first (sanitized) message.
    #[error("{0}")]
    GraphQl(String),
}

impl DecodeError {
    /// Attaches the URL the response came from.
    pub(crate) fn at(self, url: &RedactedUrl, mtls: bool) -> ProtocolError {
        match self {
            DecodeError::GraphQl(message) => ProtocolError::GraphQl {
                url: url.clone(),
                message,
                mtls,
            },
            other => ProtocolError::Malformed {
                url: url.clone(),
                detail: other.to_string(),
            },
        }
    }
}

/// Parses a body that must be one JSON object.
pub(crate) fn parse_object(body: &[u8]) -> Result<Value, DecodeError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| DecodeError::Json(bounded(&e.to_string())))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(DecodeError::WrongType {
            path: "(body)".into(),
            expected: "an object",
        })
    }
}

fn join(path: &[&str]) -> String {
    path.join(".")
}

/// The value at `path`; `Ok(None)` when it or a parent is missing or null.
pub(crate) fn lookup<'a>(root: &'a Value, path: &[&str]) -> Result<Option<&'a Value>, DecodeError> {
    let mut current = root;
    for (depth, key) in path.iter().enumerate() {
        match current {
            Value::Null => return Ok(None),
            Value::Object(map) => match map.get(*key) {
                Some(next) => current = next,
                None => return Ok(None),
            },
            _ => {
                return Err(DecodeError::WrongType {
                    path: join(&path[..depth]),
                    expected: "an object",
                });
            }
        }
    }
    Ok(if current.is_null() {
        None
    } else {
        Some(current)
    })
}

/// The value at `path`, which must be present and not null.
pub(crate) fn require<'a>(root: &'a Value, path: &[&str]) -> Result<&'a Value, DecodeError> {
    lookup(root, path)?.ok_or_else(|| {
        // Name the first link that is absent or null, for a precise message.
        let mut current = root;
        for (depth, key) in path.iter().enumerate() {
            match current.get(*key) {
                None => return DecodeError::Missing(join(&path[..=depth])),
                Some(Value::Null) => return DecodeError::Null(join(&path[..=depth])),
                Some(next) => current = next,
            }
        }
        DecodeError::Null(join(path))
    })
}

fn as_text<'a>(value: &'a Value, path: &[&str]) -> Result<&'a str, DecodeError> {
    let text = value.as_str().ok_or_else(|| DecodeError::WrongType {
        path: join(path),
        expected: "a string",
    })?;
    if text.is_empty() {
        return Err(DecodeError::Empty(join(path)));
    }
    if text.chars().nth(MAX_TEXT_FIELD_CHARS).is_some() {
        return Err(DecodeError::TooLong(join(path)));
    }
    Ok(text)
}

/// A required, non-empty, bounded string.
pub(crate) fn require_text<'a>(root: &'a Value, path: &[&str]) -> Result<&'a str, DecodeError> {
    as_text(require(root, path)?, path)
}

/// An optional string: missing or null gives `None`; present must be non-empty and bounded.
pub(crate) fn optional_text<'a>(
    root: &'a Value,
    path: &[&str],
) -> Result<Option<&'a str>, DecodeError> {
    lookup(root, path)?.map(|v| as_text(v, path)).transpose()
}

/// A URL field, resolved against the URL the response came from (absolute URLs win).
pub(crate) fn resolve_url(base: &Url, text: &str, path: &[&str]) -> Result<Url, DecodeError> {
    let url = base.join(text).map_err(|e| DecodeError::BadUrl {
        path: join(path),
        detail: e.to_string(),
    })?;
    match url.scheme() {
        "https" | "http" if url.has_host() => Ok(url),
        _ => Err(DecodeError::BadUrl {
            path: join(path),
            detail: "not an http(s) url with a host".into(),
        }),
    }
}

/// A required field holding standard padded base64 of PEM text with at least one
/// well-formed `CERTIFICATE` block. Returns the PEM text.
pub(crate) fn require_pem(root: &Value, path: &[&str]) -> Result<String, DecodeError> {
    let value = require(root, path)?;
    let encoded = value.as_str().ok_or_else(|| DecodeError::WrongType {
        path: join(path),
        expected: "a string",
    })?;
    if encoded.is_empty() {
        return Err(DecodeError::Empty(join(path)));
    }
    let bytes = STANDARD
        .decode(encoded)
        .map_err(|_| DecodeError::Base64(join(path)))?;
    let text = String::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8(join(path)))?;
    check_pem_certificates(&text).map_err(|kind| match kind {
        PemProblem::None => DecodeError::NoCertificate(join(path)),
        PemProblem::Malformed => DecodeError::MalformedPem(join(path)),
    })?;
    Ok(text)
}

enum PemProblem {
    None,
    Malformed,
}

fn check_pem_certificates(text: &str) -> Result<usize, PemProblem> {
    let mut count = 0;
    for item in CertificateDer::pem_slice_iter(text.as_bytes()) {
        match item {
            Ok(der) if !der.as_ref().is_empty() => count += 1,
            _ => return Err(PemProblem::Malformed),
        }
    }
    if count == 0 {
        Err(PemProblem::None)
    } else {
        Ok(count)
    }
}

/// The message of the first GraphQL error, if the body has a non-empty `errors` array.
pub(crate) fn graphql_error(root: &Value) -> Option<String> {
    let errors = root.get("errors")?;
    match errors {
        Value::Null => None,
        Value::Array(list) if list.is_empty() => None,
        Value::Array(list) => {
            let first = list
                .first()
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .map(bounded)
                .unwrap_or_else(|| "an error without a message".into());
            Some(if list.len() > 1 {
                format!("{first} (and {} more)", list.len() - 1)
            } else {
                first
            })
        }
        _ => Some("malformed errors field".into()),
    }
}

/// A short, sanitized error text from an error body: REST `{"error"}`, GraphQL
/// `errors[0].message`, or nothing.
pub(crate) fn error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    if let Some(message) = value.get("error").and_then(Value::as_str) {
        let message = bounded(message);
        return (!message.is_empty()).then_some(message);
    }
    graphql_error(&value)
}

/// Whether `body` is the REST connector's error format, `{"code": status, "error": "..."}`
/// with the code of the HTTP status it came with. Gateways answer in their own formats.
pub(crate) fn is_connector_error(body: &[u8], status: u16) -> bool {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    value.get("code").and_then(Value::as_u64) == Some(u64::from(status))
        && value.get("error").is_some_and(Value::is_string)
}

/// A short, printable excerpt of a plain-text body, if it is UTF-8 and not empty.
pub(crate) fn text_excerpt(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let text = bounded(text);
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
