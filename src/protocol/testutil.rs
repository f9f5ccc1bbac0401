//! What the protocol tests share: arbitrary JSON shaped like connector answers.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

/// Arbitrary JSON trees that use the field names of both protocols, for property tests.
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
