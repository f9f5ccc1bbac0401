//! Unit tests of the Kyma REST decoders. Network tests live in `tests/`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use proptest::prelude::*;
use reqwest::StatusCode;
use serde_json::json;

use super::*;
use crate::protocol::decode::error_message;

const CLIENT_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBAQ==\n-----END CERTIFICATE-----\n";
const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBAg==\n-----END CERTIFICATE-----\n";

fn b64(text: &str) -> String {
    STANDARD.encode(text)
}

fn response(status: u16, body: &str, mtls: bool) -> Response {
    Response {
        status: StatusCode::from_u16(status).unwrap(),
        body: Bytes::from(body.to_owned()),
        url: RedactedUrl::new(
            &Url::parse("https://c.example/v1/applications/management/info").unwrap(),
        ),
        mtls,
    }
}

fn signing_info_body() -> Value {
    json!({
        "csrUrl": "https://c.example/v1/applications/certificates?token=fresh",
        "api": {
            "metadataUrl": "https://gw.example/app/v1/metadata/services",
            "eventsUrl": "https://gw.example/app/v1/events",
            "infoUrl": "https://c.example/v1/applications/management/info",
            "certificatesUrl": "https://c.example/v1/applications/certificates"
        },
        "certificate": {"subject": "OU=Test,O=Test,L=Blacksburg,ST=Virginia,C=US,CN=app", "extensions": "", "key-algorithm": "rsa2048"}
    })
}

fn management_info_body() -> Value {
    json!({
        "clientIdentity": {"application": "app"},
        "urls": {
            "renewCertUrl": "https://c.example/v1/applications/certificates/renewals",
            "revokeCertUrl": "https://c.example/v1/applications/certificates/revocations"
        },
        "certificate": {"subject": "OU=Test,O=Test,L=Blacksburg,ST=Virginia,C=US,CN=app", "key-algorithm": "rsa2048"}
    })
}

fn certificates_body() -> Value {
    json!({"crt": b64(&format!("{CLIENT_PEM}{CA_PEM}")), "clientCrt": b64(CLIENT_PEM), "caCrt": b64(CA_PEM)})
}

#[test]
fn signing_info_yields_csr_url_subject_algorithm_and_info_url() {
    let info = decode_signing_info(&signing_info_body()).unwrap();
    assert_eq!(
        info.csr_url,
        "https://c.example/v1/applications/certificates?token=fresh"
    );
    assert_eq!(
        info.info_url.as_deref(),
        Some("https://c.example/v1/applications/management/info")
    );
    assert_eq!(
        info.subject,
        "OU=Test,O=Test,L=Blacksburg,ST=Virginia,C=US,CN=app"
    );
    assert_eq!(info.key_algorithm.as_deref(), Some("rsa2048"));
}

#[test]
fn signing_info_without_csr_url_or_subject_is_malformed() {
    let mut body = signing_info_body();
    body.as_object_mut().unwrap().remove("csrUrl");
    assert_eq!(
        decode_signing_info(&body),
        Err(DecodeError::Missing("csrUrl".into()))
    );
    let mut body = signing_info_body();
    body["certificate"] = Value::Null;
    assert_eq!(
        decode_signing_info(&body),
        Err(DecodeError::Null("certificate".into()))
    );
    let mut body = signing_info_body();
    body["api"] = json!(7);
    assert!(matches!(
        decode_signing_info(&body),
        Err(DecodeError::WrongType { .. })
    ));
}

#[test]
fn management_info_yields_renew_and_revoke_urls() {
    let info = decode_management_info(&management_info_body()).unwrap();
    assert_eq!(
        info.renew_url.as_deref(),
        Some("https://c.example/v1/applications/certificates/renewals")
    );
    assert_eq!(
        info.revoke_url.as_deref(),
        Some("https://c.example/v1/applications/certificates/revocations")
    );
    assert!(info.subject.is_some());
}

#[test]
fn certificates_map_crt_client_crt_and_ca_crt() {
    let pems = decode_certificates(&certificates_body()).unwrap();
    assert_eq!(pems.client_pem, CLIENT_PEM);
    assert_eq!(pems.ca_pem, CA_PEM);
    assert_eq!(pems.chain_pem, format!("{CLIENT_PEM}{CA_PEM}"));
}

#[test]
fn certificates_with_junk_are_refused_field_by_field() {
    for (field, junk) in [
        ("crt", json!(null)),
        ("clientCrt", json!(false)),
        ("caCrt", json!("%%%")),
        (
            "caCrt",
            json!(b64(
                "-----BEGIN CERTIFICATE-----\n@@@@ not base64\n-----END CERTIFICATE-----\n"
            )),
        ),
        ("clientCrt", json!(b64(&"A".repeat(100_000)))),
    ] {
        let mut body = certificates_body();
        body[field] = junk;
        let err = decode_certificates(&body).expect_err(field);
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
}

#[test]
fn revoked_certificate_403_over_mtls_needs_reenrollment() {
    let err = interpret(&response(
        403,
        r#"{"code":403,"error":"Certificate has been revoked."}"#,
        true,
    ))
    .unwrap_err();
    assert!(err.needs_reenrollment());
    assert_eq!(err.reason(), "http");
    assert!(
        err.to_string().contains("Certificate has been revoked."),
        "{err}"
    );
}

#[test]
fn a_gateways_403_over_mtls_is_a_refusal_with_its_text_not_a_revocation() {
    let err = interpret(&response(403, "RBAC: access denied", true)).unwrap_err();
    assert!(!err.needs_reenrollment());
    assert!(
        matches!(
            err.verdict(),
            crate::protocol::Verdict::Refused(crate::protocol::Refusal::Status {
                status: 403,
                connector_message: None
            })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("RBAC: access denied"), "{err}");
    // A JSON body in another shape (Envoy's ext_authz, a WAF) is no more the connector's.
    let err = interpret(&response(
        403,
        r#"{"message":"Certificate has been revoked."}"#,
        true,
    ))
    .unwrap_err();
    assert!(!err.needs_reenrollment(), "{err}");
}

#[test]
fn invalid_token_403_is_not_a_reenrollment_verdict() {
    let err = interpret(&response(
        403,
        r#"{"code":403,"error":"Invalid token."}"#,
        false,
    ))
    .unwrap_err();
    assert!(!err.needs_reenrollment());
    assert!(err.to_string().contains("Invalid token."));
}

#[test]
fn server_errors_are_http_errors_with_a_bounded_message() {
    let long = format!(r#"{{"code":500,"error":"{}"}}"#, "e".repeat(10_000));
    let err = interpret(&response(500, &long, false)).unwrap_err();
    assert_eq!(err.reason(), "http");
    assert!(err.to_string().len() < 400);
}

#[test]
fn success_with_a_non_object_body_is_malformed() {
    for body in ["", "null", "[1]", "\"x\"", "{\"csrUrl\":"] {
        let err = interpret(&response(200, body, false)).unwrap_err();
        assert_eq!(err.reason(), "protocol", "{body}");
    }
}

#[test]
fn with_token_sets_or_replaces_only_the_token_parameter() {
    let token = Token::new("new");
    let url =
        Url::parse("https://c.example/v1/applications/signingRequests/info?token=old&x=1").unwrap();
    let out = with_token(&url, &token);
    let pairs: Vec<(String, String)> = out
        .query_pairs()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    assert_eq!(
        pairs,
        vec![("x".into(), "1".into()), ("token".into(), "new".into())]
    );
    let bare = Url::parse("https://c.example/v1/applications/signingRequests/info").unwrap();
    assert_eq!(with_token(&bare, &token).query(), Some("token=new"));
}

#[test]
fn errors_echoing_the_url_token_are_scrubbed() {
    let url = Url::parse("https://c.example/info?token=SECRET").unwrap();
    let err = interpret(&response(403, r#"{"error":"token SECRET expired"}"#, false)).unwrap_err();
    let err = scrubbed(err, &url);
    assert!(!err.to_string().contains("SECRET"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512), status in 100u16..600, mtls: bool) {
        let response = Response {
            status: StatusCode::from_u16(status).unwrap(),
            body: Bytes::from(bytes),
            url: RedactedUrl::new(&Url::parse("https://c.example/x").unwrap()),
            mtls,
        };
        if let Ok(body) = interpret(&response) {
            let _ = decode_signing_info(&body);
            let _ = decode_management_info(&body);
            let _ = decode_certificates(&body);
        }
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_json(value in crate::protocol::testutil::arbitrary_json()) {
        let _ = decode_signing_info(&value);
        let _ = decode_management_info(&value);
        let _ = decode_certificates(&value);
        let _ = interpret(&response(201, &value.to_string(), true));
        let _ = error_message(value.to_string().as_bytes());
    }
}
