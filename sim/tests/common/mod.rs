//! Test helpers: a simulator per test, HTTPS clients that trust only its server CA, keys and
//! CSRs made with rcgen, and the two enrollment flows written the way a client performs them.
//! Does not assert anything itself.
#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kyma_connector_sim::{SimConfig, Simulator};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
    RsaKeySize,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A simulator with the defaults of the binary but certificates valid for an hour.
pub async fn start() -> Simulator {
    start_with(SimConfig {
        validity: Duration::from_secs(3600),
        ..SimConfig::default()
    })
    .await
}

pub async fn start_with(config: SimConfig) -> Simulator {
    Simulator::start(config)
        .await
        .expect("the simulator starts on loopback")
}

fn builder(sim: &Simulator) -> reqwest::ClientBuilder {
    let ca =
        reqwest::Certificate::from_pem(sim.server_ca_pem().as_bytes()).expect("server CA is PEM");
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .timeout(TIMEOUT)
        .no_proxy()
}

/// A client for the token-secured listener: trusts only the simulator's server CA.
pub fn client(sim: &Simulator) -> reqwest::Client {
    builder(sim).build().expect("client builds")
}

/// A client that presents `cert_pem` (leaf first) with `key_pem`.
pub fn mtls_client(sim: &Simulator, cert_pem: &str, key_pem: &str) -> reqwest::Client {
    let identity = reqwest::Identity::from_pem(format!("{cert_pem}{key_pem}").as_bytes())
        .expect("identity PEM parses");
    builder(sim)
        .identity(identity)
        .build()
        .expect("mtls client builds")
}

/// A plain client for the admin API.
pub fn admin_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .no_proxy()
        .build()
        .expect("admin client builds")
}

/// An RSA-2048 key; generated once per test binary and shared (tests are about the server).
pub fn rsa_key() -> KeyPair {
    static PEM: OnceLock<String> = OnceLock::new();
    let pem = PEM.get_or_init(|| {
        KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)
            .expect("rsa keygen works")
            .serialize_pem()
    });
    KeyPair::from_pem(pem).expect("stored key parses")
}

/// A second, different RSA key.
pub fn other_rsa_key() -> KeyPair {
    static PEM: OnceLock<String> = OnceLock::new();
    let pem = PEM.get_or_init(|| {
        KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)
            .expect("rsa keygen works")
            .serialize_pem()
    });
    KeyPair::from_pem(pem).expect("stored key parses")
}

pub fn ecdsa_key() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("p-256 keygen works")
}

/// Base64 of the PEM CSR for `key` with the given subject attributes, in the order given.
pub fn csr_with(key: &KeyPair, subject: &[(DnType, &str)]) -> String {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    for (ty, value) in subject {
        name.push(ty.clone(), *value);
    }
    params.distinguished_name = name;
    let pem = params
        .serialize_request(key)
        .expect("request serialises")
        .pem()
        .expect("pem encodes");
    STANDARD.encode(pem)
}

/// The subject the simulator announces, for `cn`, in the announced order.
pub fn subject(cn: &str) -> Vec<(DnType, &str)> {
    vec![
        (DnType::OrganizationName, "Org"),
        (DnType::OrganizationalUnitName, "OrgUnit"),
        (DnType::LocalityName, "Waldorf"),
        (DnType::StateOrProvinceName, "Waldorf"),
        (DnType::CountryName, "DE"),
        (DnType::CommonName, cn),
    ]
}

pub fn csr(key: &KeyPair, cn: &str) -> String {
    csr_with(key, &subject(cn))
}

pub fn b64_pem(value: &Value) -> String {
    let text = value.as_str().expect("field is a string");
    String::from_utf8(STANDARD.decode(text).expect("field is base64")).expect("field is utf-8")
}

/// POSTs a GraphQL request; returns the status and the parsed body.
pub async fn graphql(
    client: &reqwest::Client,
    url: &url::Url,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let mut request = client.post(url.clone()).json_body(&body);
    if let Some(token) = token {
        request = request.header(kyma_connector_sim::TOKEN_HEADER, token);
    }
    let response = request.send().await.expect("request completes");
    let status = response.status();
    let bytes = response.bytes().await.expect("body arrives");
    let value = serde_json::from_slice(&bytes).expect("body is JSON");
    (status, value)
}

/// A small extension so that tests read like the protocol: `.json_body(&value)`.
pub trait JsonBody {
    fn json_body(self, value: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, value: &Value) -> Self {
        self.header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(value).expect("value serialises"))
    }
}

pub async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = response.bytes().await.expect("body arrives");
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("body is JSON")
    };
    (status, value)
}

pub const CONFIGURATION: &str = "query { result: configuration { token { token } certificateSigningRequestInfo { subject keyAlgorithm } managementPlaneInfo { directorURL certificateSecuredConnectorURL } } }";

pub const SIGN: &str = "mutation($csr: String!) { result: signCertificateSigningRequest(csr: $csr) { certificateChain caCertificate clientCertificate } }";

/// The client side of a certificate: its key and what the server returned (PEM).
pub struct Enrolled {
    pub key_pem: String,
    pub cert_pem: String,
    pub chain_pem: String,
    pub ca_pem: String,
}

/// The Compass flow: `configuration` with the one-time token, then signing with the new one.
pub async fn compass_enroll(sim: &Simulator, key: &KeyPair) -> Enrolled {
    let client = client(sim);
    let url = sim.compass_token_url();
    let token = sim.mint_compass_token();
    let (_, config) = graphql(&client, &url, Some(&token), json!({"query": CONFIGURATION})).await;
    let next = config["data"]["result"]["token"]["token"]
        .as_str()
        .expect("configuration returns a token")
        .to_owned();
    let (status, signed) = graphql(
        &client,
        &url,
        Some(&next),
        json!({"query": SIGN, "variables": {"csr": csr(key, sim.app())}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    enrolled_from_compass(key, &signed)
}

pub fn enrolled_from_compass(key: &KeyPair, signed: &Value) -> Enrolled {
    let result = &signed["data"]["result"];
    assert!(result.is_object(), "signing failed: {signed}");
    Enrolled {
        key_pem: key.serialize_pem(),
        cert_pem: b64_pem(&result["clientCertificate"]),
        chain_pem: b64_pem(&result["certificateChain"]),
        ca_pem: b64_pem(&result["caCertificate"]),
    }
}

/// The Kyma REST flow: `signingRequests/info?token=`, then POST to `csrUrl`.
pub async fn rest_enroll(sim: &Simulator, key: &KeyPair) -> Enrolled {
    let client = client(sim);
    let (_, info_url) = sim.mint_rest_token();
    let (status, info) = json_of(client.get(info_url).send().await.expect("info answers")).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    let csr_url = info["csrUrl"].as_str().expect("csrUrl is a string");
    let response = client
        .post(csr_url)
        .json_body(&json!({"csr": csr(key, sim.app())}))
        .send()
        .await
        .expect("csr post answers");
    let (status, signed) = json_of(response).await;
    assert_eq!(status, StatusCode::CREATED, "{signed}");
    enrolled_from_rest(key, &signed)
}

pub fn enrolled_from_rest(key: &KeyPair, signed: &Value) -> Enrolled {
    Enrolled {
        key_pem: key.serialize_pem(),
        cert_pem: b64_pem(&signed["clientCrt"]),
        chain_pem: b64_pem(&signed["crt"]),
        ca_pem: b64_pem(&signed["caCrt"]),
    }
}

/// DER of the first certificate in a PEM text.
pub fn first_der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .expect("a certificate is present")
        .expect("certificate PEM parses")
        .as_ref()
        .to_vec()
}

/// Polls `check` every 50 ms until it returns `true` or `deadline` passes.
pub async fn eventually<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The message of the first GraphQL error, after checking that `data` is null.
pub fn error_message(body: &Value) -> String {
    assert!(body["data"].is_null(), "data should be null: {body}");
    body["errors"][0]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("errors[0].message missing: {body}"))
        .to_owned()
}
