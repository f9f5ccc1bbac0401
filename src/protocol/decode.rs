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

/// Arbitrary JSON trees that use the field names of both protocols, for property tests.
#[cfg(test)]
pub(crate) fn arbitrary_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    const KEYS: &[&str] = &[
        "data",
        "result",
        "errors",
        "message",
        "token",
        "certificateSigningRequestInfo",
        "subject",
        "keyAlgorithm",
        "managementPlaneInfo",
        "certificateSecuredConnectorURL",
        "certificateChain",
        "caCertificate",
        "clientCertificate",
        "csrUrl",
        "api",
        "infoUrl",
        "certificate",
        "key-algorithm",
        "urls",
        "renewCertUrl",
        "revokeCertUrl",
        "crt",
        "clientCrt",
        "caCrt",
        "error",
        "code",
    ];
    let pem = STANDARD.encode("-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n");
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        Just(Value::String(pem)),
        Just(Value::String("https://c.example/v1/x?token=t".into())),
    ];
    let key = prop_oneof![
        proptest::sample::select(KEYS).prop_map(str::to_owned),
        "[a-z]{1,6}",
    ];
    leaf.prop_recursive(5, 96, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(text: &str) -> String {
        STANDARD.encode(text)
    }

    const FAKE_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n";

    #[test]
    fn lookup_names_the_first_missing_or_null_link() {
        let v = json!({"a": {"b": null}});
        assert_eq!(
            require(&v, &["a", "b", "c"]),
            Err(DecodeError::Null("a.b".into()))
        );
        assert_eq!(
            require(&v, &["x", "y"]),
            Err(DecodeError::Missing("x".into()))
        );
        assert_eq!(optional_text(&v, &["a", "b", "c"]), Ok(None));
    }

    #[test]
    fn wrong_types_are_reported_without_the_value() {
        let v = json!({"a": "SECRET-VALUE"});
        let err = require_text(&v, &["a", "b"]).unwrap_err();
        assert!(matches!(err, DecodeError::WrongType { .. }));
        assert!(!err.to_string().contains("SECRET"));
        let v = json!({"a": 5});
        assert!(matches!(
            require_text(&v, &["a"]),
            Err(DecodeError::WrongType { .. })
        ));
    }

    #[test]
    fn oversized_text_fields_are_refused() {
        let v = json!({"a": "x".repeat(MAX_TEXT_FIELD_CHARS + 1)});
        assert_eq!(
            require_text(&v, &["a"]),
            Err(DecodeError::TooLong("a".into()))
        );
    }

    #[test]
    fn pem_fields_accept_only_strict_base64_of_certificate_blocks() {
        let good = json!({"c": b64(FAKE_PEM)});
        assert_eq!(require_pem(&good, &["c"]).unwrap(), FAKE_PEM);

        let unpadded = json!({"c": b64(FAKE_PEM).trim_end_matches('=')});
        if b64(FAKE_PEM).ends_with('=') {
            assert_eq!(
                require_pem(&unpadded, &["c"]),
                Err(DecodeError::Base64("c".into()))
            );
        }
        let with_newline = json!({"c": format!("{}\n", b64(FAKE_PEM))});
        assert_eq!(
            require_pem(&with_newline, &["c"]),
            Err(DecodeError::Base64("c".into()))
        );
        let url_safe = json!({"c": "-_-_"});
        assert_eq!(
            require_pem(&url_safe, &["c"]),
            Err(DecodeError::Base64("c".into()))
        );
        let not_pem = json!({"c": b64("hello world")});
        assert_eq!(
            require_pem(&not_pem, &["c"]),
            Err(DecodeError::NoCertificate("c".into()))
        );
        let key_only =
            json!({"c": b64("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")});
        assert_eq!(
            require_pem(&key_only, &["c"]),
            Err(DecodeError::NoCertificate("c".into()))
        );
        let broken =
            json!({"c": b64("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")});
        assert_eq!(
            require_pem(&broken, &["c"]),
            Err(DecodeError::MalformedPem("c".into()))
        );
        let binary = json!({"c": STANDARD.encode([0xff, 0xfe, 0x00])});
        assert_eq!(
            require_pem(&binary, &["c"]),
            Err(DecodeError::NotUtf8("c".into()))
        );
    }

    #[test]
    fn graphql_errors_are_summarised_and_bounded() {
        let v =
            json!({"errors": [{"message": "x".repeat(5000)}, {"message": "second"}], "data": null});
        let message = graphql_error(&v).unwrap();
        assert!(message.chars().count() < 250);
        assert!(message.ends_with("(and 1 more)"));
        assert_eq!(graphql_error(&json!({"errors": []})), None);
        assert_eq!(
            graphql_error(&json!({"errors": "boom"})).as_deref(),
            Some("malformed errors field")
        );
    }

    #[test]
    fn rest_error_bodies_yield_their_message() {
        let body = br#"{"code":403,"error":"Certificate has been revoked."}"#;
        assert_eq!(
            error_message(body).as_deref(),
            Some("Certificate has been revoked.")
        );
        assert_eq!(error_message(b"<html>"), None);
    }

    #[test]
    fn resolve_url_accepts_relative_and_refuses_other_schemes() {
        let base =
            Url::parse("https://c.example/v1/applications/signingRequests/info?token=t").unwrap();
        let rel = resolve_url(&base, "/v1/applications/certificates?token=n", &["csrUrl"]).unwrap();
        assert_eq!(rel.host_str(), Some("c.example"));
        assert!(resolve_url(&base, "file:///etc/passwd", &["csrUrl"]).is_err());
        assert!(resolve_url(&base, "javascript:alert(1)", &["csrUrl"]).is_err());
    }

    /// A real certificate, PEM, to mutate.
    fn real_pem() -> String {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        rcgen::CertificateParams::new(vec!["x.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem()
    }

    /// The field's value must never be echoed in the error (it may be a secret).
    fn check_refusal(
        field: &str,
        result: Result<String, DecodeError>,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        use proptest::prelude::*;
        match result {
            Ok(text) => prop_assert!(text.contains("-----BEGIN CERTIFICATE-----")),
            Err(e) => {
                let shown = e.to_string();
                prop_assert!(shown.contains("clientCertificate"), "{shown}");
                if field.len() >= 8 {
                    prop_assert!(!shown.contains(field), "{shown}");
                }
            }
        }
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(10_000))]

        #[test]
        fn pem_field_yields_certificates_or_an_error_naming_only_the_field(field in ".{0,200}") {
            let root = json!({ "clientCertificate": field.clone() });
            check_refusal(&field, require_pem(&root, &["clientCertificate"]))?;
        }

        #[test]
        fn base64_of_any_text_yields_certificates_or_an_error_naming_only_the_field(text in ".{0,300}") {
            let field = b64(&text);
            let root = json!({ "clientCertificate": field.clone() });
            check_refusal(&field, require_pem(&root, &["clientCertificate"]))?;
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        #[test]
        fn damaged_certificate_pem_yields_certificates_or_an_error(
            cut in 0usize..1000,
            flip in 0usize..1000,
            byte in proptest::prelude::any::<u8>(),
        ) {
            use std::sync::OnceLock;
            static PEM: OnceLock<String> = OnceLock::new();
            let pem = PEM.get_or_init(real_pem);
            let mut bytes = pem.as_bytes().to_vec();
            let at = flip % bytes.len();
            bytes[at] = byte;
            bytes.truncate(cut.max(1).min(bytes.len()));
            let field = STANDARD.encode(&bytes);
            let root = json!({ "clientCertificate": field.clone() });
            check_refusal(&field, require_pem(&root, &["clientCertificate"]))?;
        }
    }
}
