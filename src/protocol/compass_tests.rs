//! Unit tests of the Compass documents and decoders. Network tests live in `tests/`.

use apollo_compiler::{ExecutableDocument, Schema};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use proptest::prelude::*;
use reqwest::StatusCode;
use serde_json::json;

use super::*;
use crate::protocol::RedactedUrl;

const SCHEMA_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/upstream/compass-connector/schema.graphql"
);

const CLIENT_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBAQ==\n-----END CERTIFICATE-----\n";
const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBAg==\n-----END CERTIFICATE-----\n";

fn b64(text: &str) -> String {
    STANDARD.encode(text)
}

fn response(status: u16, body: &str, mtls: bool) -> Response {
    Response {
        status: StatusCode::from_u16(status).unwrap(),
        body: Bytes::from(body.to_owned()),
        url: RedactedUrl::new(&Url::parse("https://connector.example/graphql").unwrap()),
        mtls,
    }
}

fn configuration_body() -> Value {
    json!({"data": {"result": {
        "token": {"token": "fresh-token"},
        "certificateSigningRequestInfo": {"subject": "O=Org,OU=Unit,L=Here,ST=There,C=DE,CN=app", "keyAlgorithm": "rsa2048"},
        "managementPlaneInfo": {"directorURL": "https://director.example/graphql", "certificateSecuredConnectorURL": "https://mtls.example/graphql"}
    }}})
}

fn certification_body() -> Value {
    json!({"data": {"result": {
        "certificateChain": b64(&format!("{CLIENT_PEM}{CA_PEM}")),
        "caCertificate": b64(CA_PEM),
        "clientCertificate": b64(CLIENT_PEM),
    }}})
}

#[test]
fn every_graphql_document_validates_against_the_upstream_schema() {
    let sdl =
        std::fs::read_to_string(SCHEMA_PATH).expect("the upstream schema is in the repository");
    let schema =
        Schema::parse_and_validate(sdl, "schema.graphql").expect("upstream schema is valid");
    for (index, document) in DOCUMENTS.iter().enumerate() {
        if let Err(errors) = ExecutableDocument::parse_and_validate(
            &schema,
            *document,
            format!("doc{index}.graphql"),
        ) {
            panic!("document {index} is invalid: {}", errors.errors);
        }
    }
}

#[test]
fn a_misspelled_document_fails_schema_validation() {
    // Guards the test above against passing vacuously.
    let sdl = std::fs::read_to_string(SCHEMA_PATH).unwrap();
    let schema = Schema::parse_and_validate(sdl, "schema.graphql").unwrap();
    let wrong = "mutation ($csr: String!) { result: signCertificateSigningRequest(csr: $csr) { certificatechain } }";
    assert!(ExecutableDocument::parse_and_validate(&schema, wrong, "wrong.graphql").is_err());
}

#[test]
fn configuration_yields_fresh_token_subject_algorithm_and_mtls_url() {
    let config = decode_configuration(&configuration_body()).unwrap();
    assert_eq!(config.token.unwrap().expose(), "fresh-token");
    assert_eq!(config.subject, "O=Org,OU=Unit,L=Here,ST=There,C=DE,CN=app");
    assert_eq!(config.key_algorithm, "rsa2048");
    assert_eq!(
        config.secured_url.as_deref(),
        Some("https://mtls.example/graphql")
    );
}

#[test]
fn configuration_without_management_info_has_no_renewal_url() {
    let mut body = configuration_body();
    body["data"]["result"]["managementPlaneInfo"] = Value::Null;
    assert_eq!(decode_configuration(&body).unwrap().secured_url, None);
}

#[test]
fn configuration_with_missing_or_mistyped_subject_is_malformed() {
    let mut body = configuration_body();
    body["data"]["result"]["certificateSigningRequestInfo"]["subject"] = Value::Null;
    assert_eq!(
        decode_configuration(&body).unwrap_err(),
        DecodeError::Null("data.result.certificateSigningRequestInfo.subject".into())
    );
    body["data"]["result"]["certificateSigningRequestInfo"]["subject"] = json!(["a"]);
    assert!(matches!(
        decode_configuration(&body),
        Err(DecodeError::WrongType { .. })
    ));
    body["data"]["result"]["certificateSigningRequestInfo"] = json!("flat");
    assert!(matches!(
        decode_configuration(&body),
        Err(DecodeError::WrongType { .. })
    ));
}

#[test]
fn a_token_where_an_object_belongs_is_not_quoted_in_the_error() {
    let mut body = configuration_body();
    body["data"]["result"]["token"] = json!("LEAKED-TOKEN");
    let err = decode_configuration(&body).unwrap_err();
    assert!(!err.to_string().contains("LEAKED"), "{err}");
}

#[test]
fn certification_decodes_all_three_pems() {
    let pems = decode_certification(&certification_body()).unwrap();
    assert_eq!(pems.client_pem, CLIENT_PEM);
    assert_eq!(pems.ca_pem, CA_PEM);
    assert_eq!(pems.chain_pem, format!("{CLIENT_PEM}{CA_PEM}"));
}

#[test]
fn certification_with_junk_is_refused_field_by_field() {
    for (field, junk) in [
        ("clientCertificate", json!(null)),
        ("clientCertificate", json!(42)),
        ("caCertificate", json!("not base64!")),
        ("caCertificate", json!(b64("no pem here"))),
        ("certificateChain", json!("")),
        ("certificateChain", json!(format!(" {}", b64(CA_PEM)))),
    ] {
        let mut body = certification_body();
        body["data"]["result"][field] = junk.clone();
        let err = decode_certification(&body).expect_err(field);
        assert!(err.to_string().contains(field), "{field} {junk}: {err}");
    }
}

#[test]
fn revocation_must_be_a_boolean() {
    assert_eq!(
        decode_revocation(&json!({"data": {"result": true}})),
        Ok(true)
    );
    assert_eq!(
        decode_revocation(&json!({"data": {"result": false}})),
        Ok(false)
    );
    assert!(decode_revocation(&json!({"data": {"result": "true"}})).is_err());
}

#[test]
fn graphql_errors_with_null_data_are_errors_even_with_status_200() {
    let body = r#"{"errors":[{"message":"Token not found","path":["result"]}],"data":null}"#;
    let err = interpret(&response(200, body, false)).unwrap_err();
    assert!(matches!(err, ProtocolError::GraphQl { .. }));
    assert_eq!(err.reason(), "protocol");
    assert!(err.to_string().contains("Token not found"));
    assert!(!err.needs_reenrollment());
}

#[test]
fn the_authenticators_refusal_on_the_mtls_url_means_reenrollment_and_other_errors_do_not() {
    let refusal = "Failed to authenticate request. Token authentication error: Client Id not provided. Certificate authentication error: Client Id not provided.";
    let body = serde_json::json!({"errors": [{"message": refusal}], "data": null}).to_string();
    let err = interpret(&response(200, &body, true)).unwrap_err();
    assert!(err.needs_reenrollment());
    // The same words on the token-secured URL are about the token.
    let err = interpret(&response(200, &body, false)).unwrap_err();
    assert!(!err.needs_reenrollment());
    // Words that are not the Connector's prove nothing.
    let body = r#"{"errors":[{"message":"certificate revoked"}],"data":null}"#;
    let err = interpret(&response(200, body, true)).unwrap_err();
    assert!(!err.needs_reenrollment());
}

#[test]
fn validation_errors_with_status_422_are_protocol_errors_without_reenrollment() {
    let body = r#"{"errors":[{"message":"Cannot query field \"x\""}],"data":null}"#;
    let err = interpret(&response(422, body, true)).unwrap_err();
    assert!(matches!(err, ProtocolError::GraphQl { .. }));
    assert!(!err.needs_reenrollment());
    assert!(err.to_string().contains("Cannot query field"));
}

#[test]
fn other_statuses_are_http_errors_and_a_bare_403_over_mtls_is_a_refusal() {
    let err = interpret(&response(503, "upstream busy", false)).unwrap_err();
    assert_eq!(err.reason(), "http");
    assert!(!err.needs_reenrollment());
    for status in [401, 403, 407] {
        let err = interpret(&response(status, "{}", true)).unwrap_err();
        assert!(!err.needs_reenrollment(), "{err}");
        assert!(
            matches!(err.verdict(), crate::protocol::Verdict::Refused(_)),
            "{err}"
        );
    }
    let err = interpret(&response(403, "{}", false)).unwrap_err();
    assert!(!err.needs_reenrollment());
    assert_eq!(err.verdict(), crate::protocol::Verdict::Inconclusive);
}

#[test]
fn success_without_data_result_is_malformed() {
    for body in [
        r#"{"data":null}"#,
        r#"{"data":{}}"#,
        r#"{"data":{"result":null}}"#,
        "[]",
        "",
        "{",
    ] {
        let err = interpret(&response(200, body, false)).unwrap_err();
        assert_eq!(err.reason(), "protocol", "{body}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512), status in 100u16..600, mtls: bool) {
        let response = Response {
            status: StatusCode::from_u16(status).unwrap(),
            body: Bytes::from(bytes),
            url: RedactedUrl::new(&Url::parse("https://c.example/graphql").unwrap()),
            mtls,
        };
        if let Ok(body) = interpret(&response) {
            let _ = decode_configuration(&body);
            let _ = decode_certification(&body);
            let _ = decode_revocation(&body);
        }
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_json(value in crate::protocol::testutil::arbitrary_json()) {
        let body = json!({"data": {"result": value.clone()}});
        let _ = decode_configuration(&body);
        let _ = decode_certification(&body);
        let _ = decode_revocation(&body);
        let _ = decode_configuration(&value);
        let _ = interpret(&response(200, &value.to_string(), true));
    }
}
