//! Whole enroll / renew / revoke flows of both protocol clients against scripted local
//! connectors over TLS (token-secured and mTLS on one port), including revocation.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use kyma_certd::pki::secret::Token;
use kyma_certd::protocol::{
    CONFIGURATION_QUERY, CompassConnector, Connector, HttpSettings, IssuedPems, ProtocolError,
    REVOKE_MUTATION, RestConnector, SIGN_CSR_MUTATION, SigningAuth,
};
use rcgen::ExtendedKeyUsagePurpose;
use serde_json::json;
use support::fake_server::{
    ClientAuth, Handler, Reply, Seen, TestServer, TlsSetup, TlsVersion, b64,
};

const ONE_TIME: &str = "one-time-token";
const FRESH: &str = "fresh-token";
const SUBJECT: &str = "O=Org,OU=OrgUnit,L=Waldorf,ST=Waldorf,C=DE,CN=app";
/// Stands in for a CSR: the clients send it as they get it.
const CSR_B64: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K";

/// What the scripted connector issues: a real certificate from the test client CA.
fn issued(tls: &TlsSetup) -> IssuedPems {
    let (client_pem, _) = tls
        .client_ca
        .leaf("app", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let ca_pem = tls.client_ca.pem();
    IssuedPems {
        chain_pem: format!("{client_pem}{ca_pem}"),
        client_pem,
        ca_pem,
    }
}

fn settings(tls: &TlsSetup) -> HttpSettings {
    HttpSettings {
        server_ca_pem: Some(tls.server_ca.pem().into_bytes()),
        timeout: Duration::from_secs(10),
        allow_insecure_http: false,
        ..HttpSettings::default()
    }
}

fn graphql_error(message: &str) -> Reply {
    Reply::Json(200, json!({"errors": [{"message": message}], "data": null}))
}

/// A Compass connector: token-secured at `/connector/graphql`, mTLS at `/mtls/graphql`.
fn compass(
    pems: IssuedPems,
    base: Arc<OnceLock<String>>,
    revoked: Arc<AtomicBool>,
    confirm_revocation: bool,
) -> Handler {
    Arc::new(move |seen: &Seen| {
        let body = seen.json();
        let query = body["query"].as_str().unwrap_or_default();
        let mtls = seen.client_certificate && seen.path_and_query == "/mtls/graphql";
        if seen.path_and_query == "/mtls/graphql" && !seen.client_certificate {
            return Reply::Json(403, json!({"error": "client certificate required"}));
        }
        if mtls && revoked.load(Ordering::SeqCst) {
            // The Connector's authenticator: the gateway dropped the revoked identity.
            return graphql_error(kyma_connector_sim::COMPASS_UNAUTHENTICATED);
        }
        let token = seen.header("connector-token");
        match query {
            q if q == CONFIGURATION_QUERY => {
                if !mtls && token != Some(ONE_TIME) {
                    return graphql_error("Token not found");
                }
                Reply::Json(
                    200,
                    json!({"data": {"result": {
                        "token": {"token": FRESH},
                        "certificateSigningRequestInfo": {"subject": SUBJECT, "keyAlgorithm": "rsa2048"},
                        "managementPlaneInfo": {
                            "directorURL": format!("{}/director/graphql", base.get().unwrap()),
                            "certificateSecuredConnectorURL": format!("{}/mtls/graphql", base.get().unwrap()),
                        }
                    }}}),
                )
            }
            q if q == SIGN_CSR_MUTATION => {
                if !mtls && token != Some(FRESH) {
                    return graphql_error("Token not found");
                }
                if body["variables"]["csr"] != CSR_B64 {
                    return graphql_error("invalid csr");
                }
                Reply::Json(
                    200,
                    json!({"data": {"result": {
                        "certificateChain": b64(&pems.chain_pem),
                        "caCertificate": b64(&pems.ca_pem),
                        "clientCertificate": b64(&pems.client_pem),
                    }}}),
                )
            }
            q if q == REVOKE_MUTATION && mtls => {
                if confirm_revocation {
                    revoked.store(true, Ordering::SeqCst);
                }
                Reply::Json(200, json!({"data": {"result": confirm_revocation}}))
            }
            _ => Reply::Json(
                422,
                json!({"errors": [{"message": "unknown operation"}], "data": null}),
            ),
        }
    })
}

struct Fixture {
    tls: TlsSetup,
    server: TestServer,
    pems: IssuedPems,
    revoked: Arc<AtomicBool>,
}

async fn compass_fixture(confirm_revocation: bool) -> Fixture {
    let tls = TlsSetup::new(&["127.0.0.1"], ClientAuth::Optional, TlsVersion::Tls13);
    let pems = issued(&tls);
    let base = Arc::new(OnceLock::new());
    let revoked = Arc::new(AtomicBool::new(false));
    let handler = compass(
        pems.clone(),
        base.clone(),
        revoked.clone(),
        confirm_revocation,
    );
    let server = TestServer::tls(&tls, handler).await;
    base.set(server.url("/").as_str().trim_end_matches('/').to_owned())
        .unwrap();
    Fixture {
        tls,
        server,
        pems,
        revoked,
    }
}

#[tokio::test]
async fn compass_enrolls_with_one_time_token_then_signs_with_the_fresh_token() {
    let f = compass_fixture(true).await;
    let connector = CompassConnector::new(settings(&f.tls)).unwrap();
    let url = f.server.url("/connector/graphql");

    let plan = connector
        .begin_enroll(&url, Some(&Token::new(ONE_TIME)))
        .await
        .unwrap();
    assert_eq!(plan.subject, SUBJECT);
    assert_eq!(plan.key_algorithm.as_deref(), Some("rsa2048"));
    assert_eq!(plan.sign_url, url);
    assert_eq!(plan.auth, SigningAuth::ConnectorToken(Token::new(FRESH)));
    assert_eq!(plan.renewal_url, Some(f.server.url("/mtls/graphql")));

    let pems = connector.sign(&plan, CSR_B64, None).await.unwrap();
    assert_eq!(pems, f.pems);

    let seen = f.server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].header("connector-token"), Some(ONE_TIME));
    assert_eq!(seen[1].header("connector-token"), Some(FRESH));
    assert_eq!(seen[1].json()["variables"]["csr"], CSR_B64);
    assert!(
        seen.iter()
            .all(|s| s.method == "POST" && s.header("content-type") == Some("application/json"))
    );
}

#[tokio::test]
async fn compass_renews_and_revokes_over_mtls_and_a_revoked_certificate_needs_reenrollment() {
    let f = compass_fixture(true).await;
    let connector = CompassConnector::new(settings(&f.tls)).unwrap();
    let identity = f.tls.client_ca.client_identity("app");
    let mtls_url = f.server.url("/mtls/graphql");

    let plan = connector.begin_renew(&mtls_url, &identity).await.unwrap();
    assert_eq!(plan.auth, SigningAuth::ClientCertificate);
    assert_eq!(plan.sign_url, mtls_url);
    assert_eq!(plan.subject, SUBJECT);
    let pems = connector
        .sign(&plan, CSR_B64, Some(&identity))
        .await
        .unwrap();
    assert_eq!(pems, f.pems);
    assert!(
        f.server
            .seen()
            .iter()
            .all(|s| s.client_certificate && s.header("connector-token").is_none())
    );

    connector.revoke(&mtls_url, &identity).await.unwrap();
    assert!(f.revoked.load(Ordering::SeqCst));

    let err = connector
        .begin_renew(&mtls_url, &identity)
        .await
        .unwrap_err();
    assert!(matches!(err, ProtocolError::GraphQl { .. }), "{err}");
    assert!(err.needs_reenrollment());
}

#[tokio::test]
async fn compass_revocation_answered_false_is_an_error() {
    let f = compass_fixture(false).await;
    let connector = CompassConnector::new(settings(&f.tls)).unwrap();
    let identity = f.tls.client_ca.client_identity("app");
    let err = connector
        .revoke(&f.server.url("/mtls/graphql"), &identity)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProtocolError::RevocationNotConfirmed { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn compass_rejected_token_is_a_graphql_error_without_reenrollment_or_the_token() {
    let f = compass_fixture(true).await;
    let connector = CompassConnector::new(settings(&f.tls)).unwrap();
    let err = connector
        .begin_enroll(
            &f.server.url("/connector/graphql"),
            Some(&Token::new("burned-token")),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ProtocolError::GraphQl { .. }), "{err}");
    assert!(err.to_string().contains("Token not found"));
    assert!(!err.needs_reenrollment());
    assert!(!format!("{err} {err:?}").contains("burned-token"));
}

#[tokio::test]
async fn compass_enroll_without_a_token_sends_nothing() {
    let f = compass_fixture(true).await;
    let connector = CompassConnector::new(settings(&f.tls)).unwrap();
    let err = connector
        .begin_enroll(&f.server.url("/connector/graphql"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ProtocolError::MissingToken { .. }), "{err}");
    assert!(f.server.seen().is_empty());
}

#[tokio::test]
async fn signing_a_renewal_plan_without_an_identity_is_refused() {
    let f = compass_fixture(true).await;
    let connector = CompassConnector::new(settings(&f.tls)).unwrap();
    let identity = f.tls.client_ca.client_identity("app");
    let plan = connector
        .begin_renew(&f.server.url("/mtls/graphql"), &identity)
        .await
        .unwrap();
    let err = connector.sign(&plan, CSR_B64, None).await.unwrap_err();
    assert!(
        matches!(err, ProtocolError::MissingIdentity { .. }),
        "{err}"
    );
}

/// A Kyma connector-service with the paths of the upstream OpenAPI file.
fn kyma_rest(pems: IssuedPems, base: Arc<OnceLock<String>>, revoked: Arc<AtomicBool>) -> Handler {
    Arc::new(move |seen: &Seen| {
        let base = base.get().unwrap();
        let certificates = || {
            Reply::Json(
                201,
                json!({"crt": b64(&pems.chain_pem), "clientCrt": b64(&pems.client_pem), "caCrt": b64(&pems.ca_pem)}),
            )
        };
        let forbidden = |message: &str| Reply::Json(403, json!({"code": 403, "error": message}));
        let path = seen.path_and_query.as_str();
        match (seen.method.as_str(), path) {
            ("GET", p)
                if p == format!("/v1/applications/signingRequests/info?token={ONE_TIME}") =>
            {
                Reply::Json(
                    200,
                    json!({
                        "csrUrl": format!("{base}/v1/applications/certificates?token={FRESH}"),
                        "api": {
                            "metadataUrl": format!("{base}/app/v1/metadata/services"),
                            "eventsUrl": format!("{base}/app/v1/events"),
                            "infoUrl": format!("{base}/v1/applications/management/info"),
                            "certificatesUrl": format!("{base}/v1/applications/certificates"),
                        },
                        "certificate": {"subject": SUBJECT, "extensions": "", "key-algorithm": "rsa2048"}
                    }),
                )
            }
            ("GET", p) if p.starts_with("/v1/applications/signingRequests/info") => {
                forbidden("Invalid token.")
            }
            ("POST", p) if p == format!("/v1/applications/certificates?token={FRESH}") => {
                if seen.json()["csr"] != CSR_B64 {
                    return Reply::Json(400, json!({"code": 400, "error": "Invalid CSR."}));
                }
                certificates()
            }
            (
                _,
                "/v1/applications/management/info"
                | "/v1/applications/certificates/renewals"
                | "/v1/applications/certificates/revocations",
            ) if !seen.client_certificate => forbidden("No client certificate."),
            _ if revoked.load(Ordering::SeqCst) => forbidden("Certificate has been revoked."),
            ("GET", "/v1/applications/management/info") => Reply::Json(
                200,
                json!({
                    "clientIdentity": {"application": "app"},
                    "urls": {
                        "eventsUrl": format!("{base}/app/v1/events"),
                        "renewCertUrl": format!("{base}/v1/applications/certificates/renewals"),
                        "revokeCertUrl": format!("{base}/v1/applications/certificates/revocations"),
                    },
                    "certificate": {"subject": SUBJECT, "extensions": "", "key-algorithm": "rsa2048"}
                }),
            ),
            ("POST", "/v1/applications/certificates/renewals") if seen.json()["csr"] == CSR_B64 => {
                certificates()
            }
            ("POST", "/v1/applications/certificates/revocations") => {
                revoked.store(true, Ordering::SeqCst);
                Reply::Text(201, String::new())
            }
            _ => Reply::Json(404, json!({"code": 404, "error": "Not found."})),
        }
    })
}

async fn rest_fixture() -> Fixture {
    let tls = TlsSetup::new(&["127.0.0.1"], ClientAuth::Optional, TlsVersion::Tls13);
    let pems = issued(&tls);
    let base = Arc::new(OnceLock::new());
    let revoked = Arc::new(AtomicBool::new(false));
    let server =
        TestServer::tls(&tls, kyma_rest(pems.clone(), base.clone(), revoked.clone())).await;
    base.set(server.url("/").as_str().trim_end_matches('/').to_owned())
        .unwrap();
    Fixture {
        tls,
        server,
        pems,
        revoked,
    }
}

#[tokio::test]
async fn kyma_rest_enrolls_through_the_configuration_url_and_csr_url() {
    let f = rest_fixture().await;
    let connector = RestConnector::new(settings(&f.tls)).unwrap();
    let configuration_url = f.server.url(&format!(
        "/v1/applications/signingRequests/info?token={ONE_TIME}"
    ));

    let plan = connector
        .begin_enroll(&configuration_url, None)
        .await
        .unwrap();
    assert_eq!(plan.subject, SUBJECT);
    assert_eq!(plan.key_algorithm.as_deref(), Some("rsa2048"));
    assert_eq!(plan.auth, SigningAuth::TokenInUrl);
    assert_eq!(plan.sign_url.query(), Some("token=fresh-token"));
    assert_eq!(
        plan.renewal_url,
        Some(f.server.url("/v1/applications/management/info"))
    );

    let pems = connector.sign(&plan, CSR_B64, None).await.unwrap();
    assert_eq!(pems, f.pems);
    let seen = f.server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].header("content-type"), Some("application/json"));
    assert!(seen.iter().all(|s| !s.client_certificate));
}

#[tokio::test]
async fn kyma_rest_token_given_separately_replaces_the_one_in_the_url() {
    let f = rest_fixture().await;
    let connector = RestConnector::new(settings(&f.tls)).unwrap();
    let url = f
        .server
        .url("/v1/applications/signingRequests/info?token=old");
    let plan = connector
        .begin_enroll(&url, Some(&Token::new(ONE_TIME)))
        .await
        .unwrap();
    assert_eq!(plan.subject, SUBJECT);
}

#[tokio::test]
async fn kyma_rest_invalid_token_is_an_http_403_without_reenrollment() {
    let f = rest_fixture().await;
    let connector = RestConnector::new(settings(&f.tls)).unwrap();
    let url = f
        .server
        .url("/v1/applications/signingRequests/info?token=wrong");
    let err = connector.begin_enroll(&url, None).await.unwrap_err();
    assert!(
        matches!(err, ProtocolError::Status { status: 403, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("Invalid token."));
    assert!(!err.needs_reenrollment());
}

#[tokio::test]
async fn kyma_rest_renews_and_revokes_over_mtls_and_a_revoked_certificate_needs_reenrollment() {
    let f = rest_fixture().await;
    let connector = RestConnector::new(settings(&f.tls)).unwrap();
    let identity = f.tls.client_ca.client_identity("app");
    let info_url = f.server.url("/v1/applications/management/info");

    let plan = connector.begin_renew(&info_url, &identity).await.unwrap();
    assert_eq!(plan.auth, SigningAuth::ClientCertificate);
    assert_eq!(
        plan.sign_url,
        f.server.url("/v1/applications/certificates/renewals")
    );
    assert_eq!(plan.renewal_url, Some(info_url.clone()));
    let pems = connector
        .sign(&plan, CSR_B64, Some(&identity))
        .await
        .unwrap();
    assert_eq!(pems, f.pems);

    connector.revoke(&info_url, &identity).await.unwrap();
    assert!(f.revoked.load(Ordering::SeqCst));
    let last = f.server.seen().pop().unwrap();
    assert_eq!((last.method.as_str(), last.body.len()), ("POST", 0));

    let err = connector
        .begin_renew(&info_url, &identity)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProtocolError::Status { status: 403, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("Certificate has been revoked."));
    assert!(err.needs_reenrollment());
}
