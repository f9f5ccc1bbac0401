//! Tests of the decoding of connector answers: the fields each protocol reads, the PEM
//! texts, and the error bodies of connectors and gateways.

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
    let v = json!({"errors": [{"message": "x".repeat(5000)}, {"message": "second"}], "data": null});
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
