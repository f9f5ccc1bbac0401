//! Transport behaviour of the protocol clients against a local server: size cap,
//! timeouts, TLS trust and host checks, client-certificate refusal, secret hygiene.

mod support;

use std::time::{Duration, Instant};

use kyma_certd::pki::secret::Token;
use kyma_certd::protocol::{
    Connector, HttpSettings, MAX_BODY_BYTES, ProtocolError, Refusal, RestConnector, USER_AGENT,
    Verdict,
};
use rcgen::ExtendedKeyUsagePurpose;
use serde_json::json;
use support::ca::TestCa;
use support::fake_server::{ClientAuth, Reply, TestServer, TlsSetup, TlsVersion, always};
use url::Url;

const SECRET: &str = "SECRET-TOKEN-4711";

fn plain_settings(timeout: Duration) -> HttpSettings {
    HttpSettings {
        server_ca_pem: None,
        timeout,
        allow_insecure_http: true,
        ..HttpSettings::default()
    }
}

fn trusting(ca: &TestCa, timeout: Duration) -> HttpSettings {
    HttpSettings {
        server_ca_pem: Some(ca.pem().into_bytes()),
        timeout,
        allow_insecure_http: false,
        ..HttpSettings::default()
    }
}

fn info_path() -> String {
    format!("/v1/applications/signingRequests/info?token={SECRET}")
}

fn management_info() -> serde_json::Value {
    json!({
        "clientIdentity": {"application": "app"},
        "urls": {"renewCertUrl": "/v1/applications/certificates/renewals", "revokeCertUrl": "/v1/applications/certificates/revocations"},
        "certificate": {"subject": "O=Org,CN=app", "key-algorithm": "rsa2048"}
    })
}

fn assert_no_secret(err: &ProtocolError) {
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(SECRET), "secret leaked: {shown}");
}

async fn enroll_rest(settings: HttpSettings, url: &Url) -> (Result<(), ProtocolError>, Duration) {
    let connector = RestConnector::new(settings).unwrap();
    let started = Instant::now();
    let outcome = connector.begin_enroll(url, None).await.map(|_| ());
    (outcome, started.elapsed())
}

#[tokio::test]
async fn endless_body_is_cut_off_at_the_size_cap_long_before_the_timeout() {
    let server = TestServer::plain(always(|| Reply::Endless)).await;
    let (outcome, elapsed) = enroll_rest(
        plain_settings(Duration::from_secs(20)),
        &server.url(&info_path()),
    )
    .await;
    let err = outcome.unwrap_err();
    assert!(
        matches!(err, ProtocolError::BodyTooLarge { limit, .. } if limit == MAX_BODY_BYTES),
        "{err}"
    );
    assert_eq!(err.reason(), "http");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert_no_secret(&err);
}

#[tokio::test]
async fn announced_oversized_body_is_refused() {
    let server = TestServer::plain(always(|| Reply::HugeContentLength)).await;
    let (outcome, _) = enroll_rest(
        plain_settings(Duration::from_secs(20)),
        &server.url(&info_path()),
    )
    .await;
    assert!(matches!(outcome, Err(ProtocolError::BodyTooLarge { .. })));
}

#[tokio::test]
async fn server_stalling_after_headers_times_out_within_the_deadline() {
    let server = TestServer::plain(always(|| Reply::StallAfterHeaders)).await;
    let timeout = Duration::from_millis(400);
    let (outcome, elapsed) = enroll_rest(plain_settings(timeout), &server.url(&info_path())).await;
    let err = outcome.unwrap_err();
    assert!(matches!(err, ProtocolError::Timeout { .. }), "{err}");
    assert_eq!(err.reason(), "network");
    assert!(elapsed >= timeout, "gave up early: {elapsed:?}");
    assert!(
        elapsed < timeout + Duration::from_secs(2),
        "took {elapsed:?}"
    );
    assert_no_secret(&err);
}

#[tokio::test]
async fn server_stalling_before_headers_times_out_within_the_deadline() {
    let server = TestServer::plain(always(|| Reply::StallBeforeHeaders)).await;
    let timeout = Duration::from_millis(400);
    let (outcome, elapsed) = enroll_rest(plain_settings(timeout), &server.url(&info_path())).await;
    let err = outcome.unwrap_err();
    assert_eq!(err.reason(), "network", "{err}");
    assert!(
        elapsed < timeout + Duration::from_secs(2),
        "took {elapsed:?}"
    );
}

#[tokio::test]
async fn unreachable_server_is_a_network_error_without_the_token() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = Url::parse(&format!("http://{addr}{}", info_path())).unwrap();
    let (outcome, _) = enroll_rest(plain_settings(Duration::from_secs(5)), &url).await;
    let err = outcome.unwrap_err();
    assert_eq!(err.reason(), "network", "{err}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    assert_no_secret(&err);
}

#[tokio::test]
async fn plain_http_url_is_refused_without_allow_insecure_http() {
    let server = TestServer::plain(always(|| Reply::Json(200, json!({})))).await;
    let settings = HttpSettings {
        allow_insecure_http: false,
        ..plain_settings(Duration::from_secs(5))
    };
    let (outcome, _) = enroll_rest(settings, &server.url(&info_path())).await;
    let err = outcome.unwrap_err();
    assert!(matches!(err, ProtocolError::InsecureUrl { .. }), "{err}");
    assert!(server.seen().is_empty(), "a request was sent anyway");
    assert_no_secret(&err);
}

#[tokio::test]
async fn server_certificate_from_an_unknown_ca_is_a_tls_error_about_trust() {
    let tls = TlsSetup::new(&["127.0.0.1"], ClientAuth::None, TlsVersion::Tls13);
    let server = TestServer::tls(&tls, always(|| Reply::Json(200, json!({})))).await;
    let stranger = TestCa::new("some other ca");
    for settings in [
        trusting(&stranger, Duration::from_secs(5)),
        HttpSettings {
            timeout: Duration::from_secs(5),
            ..HttpSettings::default()
        },
    ] {
        let (outcome, _) = enroll_rest(settings, &server.url(&info_path())).await;
        let err = outcome.unwrap_err();
        assert_eq!(err.reason(), "tls", "{err}");
        assert!(
            err.to_string().contains("certificate is not trusted"),
            "{err}"
        );
        assert!(!err.needs_reenrollment());
        assert_no_secret(&err);
    }
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn server_certificate_for_another_host_is_a_tls_error_about_the_host() {
    let tls = TlsSetup::new(&["other.example"], ClientAuth::None, TlsVersion::Tls13);
    let server = TestServer::tls(&tls, always(|| Reply::Json(200, json!({})))).await;
    let (outcome, _) = enroll_rest(
        trusting(&tls.server_ca, Duration::from_secs(5)),
        &server.url(&info_path()),
    )
    .await;
    let err = outcome.unwrap_err();
    assert!(matches!(err, ProtocolError::WrongHost { .. }), "{err}");
    assert!(
        err.to_string().contains("does not match host 127.0.0.1"),
        "{err}"
    );
    assert!(!err.needs_reenrollment());
}

async fn renew_with_foreign_certificate(version: TlsVersion) -> ProtocolError {
    let tls = TlsSetup::new(&["127.0.0.1"], ClientAuth::Required, version);
    let server = TestServer::tls(&tls, always(|| Reply::Json(200, management_info()))).await;
    let foreign = TestCa::new("foreign client ca").client_identity("app");
    let connector = RestConnector::new(trusting(&tls.server_ca, Duration::from_secs(5))).unwrap();
    let err = connector
        .begin_renew(&server.url("/v1/applications/management/info"), &foreign)
        .await
        .unwrap_err();
    assert!(server.seen().is_empty());
    err
}

/// An alert proves nothing about the certificate: the same `unknown_ca` comes from a
/// gateway whose client-CA bundle is broken. A refusal, retried; never a revocation.
#[tokio::test]
async fn client_certificate_refused_at_a_tls13_handshake_is_a_refusal_not_a_revocation() {
    let err = renew_with_foreign_certificate(TlsVersion::Tls13).await;
    assert!(
        matches!(err, ProtocolError::HandshakeRefused { .. }),
        "{err}"
    );
    assert!(!err.needs_reenrollment());
    assert!(
        matches!(err.verdict(), Verdict::Refused(Refusal::TlsAlert { .. })),
        "{err}"
    );
    assert_eq!(err.reason(), "tls");
}

#[tokio::test]
async fn client_certificate_refused_at_a_tls12_handshake_is_a_refusal_not_a_revocation() {
    let err = renew_with_foreign_certificate(TlsVersion::Tls12).await;
    assert!(
        matches!(err, ProtocolError::HandshakeRefused { .. }),
        "{err}"
    );
    assert!(!err.needs_reenrollment());
    assert!(
        matches!(err.verdict(), Verdict::Refused(Refusal::TlsAlert { .. })),
        "{err}"
    );
}

#[tokio::test]
async fn trusted_client_certificate_is_accepted_and_plan_points_at_renewal() {
    let tls = TlsSetup::new(
        &["127.0.0.1", "localhost"],
        ClientAuth::Required,
        TlsVersion::Tls13,
    );
    let server = TestServer::tls(&tls, always(|| Reply::Json(200, management_info()))).await;
    let identity = tls.client_ca.client_identity("app");
    let connector = RestConnector::new(trusting(&tls.server_ca, Duration::from_secs(5))).unwrap();
    let info_url = server.url_by_name("/v1/applications/management/info");
    let plan = connector.begin_renew(&info_url, &identity).await.unwrap();
    assert_eq!(
        plan.sign_url.path(),
        "/v1/applications/certificates/renewals"
    );
    assert_eq!(plan.renewal_url.as_ref(), Some(&info_url));
    assert_eq!(plan.subject, "O=Org,CN=app");
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].client_certificate);
    assert_eq!(seen[0].method, "GET");
}

#[tokio::test]
async fn errors_never_contain_the_token_even_when_the_server_echoes_it() {
    let server = TestServer::plain(always(|| {
        Reply::Json(
            403,
            json!({"code": 403, "error": format!("token {SECRET} is unknown")}),
        )
    }))
    .await;
    let (outcome, _) = enroll_rest(
        plain_settings(Duration::from_secs(5)),
        &server.url(&info_path()),
    )
    .await;
    let err = outcome.unwrap_err();
    assert!(
        matches!(err, ProtocolError::Status { status: 403, .. }),
        "{err}"
    );
    assert!(!err.needs_reenrollment());
    assert!(err.to_string().contains("is unknown"), "{err}");
    assert_no_secret(&err);

    // The same with the token given separately: it replaces the one in the URL.
    let connector = RestConnector::new(plain_settings(Duration::from_secs(5))).unwrap();
    let err = connector
        .begin_enroll(
            &server.url("/v1/applications/signingRequests/info?token=stale"),
            Some(&Token::new(SECRET)),
        )
        .await
        .unwrap_err();
    assert_no_secret(&err);
    assert!(
        server
            .seen()
            .last()
            .unwrap()
            .path_and_query
            .ends_with(&format!("token={SECRET}"))
    );
}

#[tokio::test]
async fn requests_name_the_daemon_in_the_user_agent() {
    let server = TestServer::plain(always(|| {
        Reply::Json(403, json!({"code": 403, "error": "no"}))
    }))
    .await;
    let _ = enroll_rest(
        plain_settings(Duration::from_secs(5)),
        &server.url(&info_path()),
    )
    .await;
    let seen = server.seen();
    assert_eq!(seen[0].header("user-agent"), Some(USER_AGENT));
    assert_eq!(seen[0].header("accept"), Some("application/json"));
}

#[tokio::test]
async fn tls_test_helper_issues_usable_server_certificates() {
    // Guards the tests above: a correct setup must succeed.
    let tls = TlsSetup::new(&["127.0.0.1"], ClientAuth::None, TlsVersion::Tls12);
    let server = TestServer::tls(&tls, always(|| Reply::Json(403, json!({"error": "x"})))).await;
    let (outcome, _) = enroll_rest(
        trusting(&tls.server_ca, Duration::from_secs(5)),
        &server.url(&info_path()),
    )
    .await;
    assert!(matches!(
        outcome,
        Err(ProtocolError::Status { status: 403, .. })
    ));
    let _ = tls
        .server_ca
        .leaf("unused", &[], ExtendedKeyUsagePurpose::ClientAuth);
}

/// With `allow_insecure_http`, anyone on the path can write the connector's words: a
/// "revoked" over plain HTTP proves nothing, so it never asks for a new token.
#[tokio::test]
async fn a_revoked_answer_over_plain_http_is_not_taken_for_a_revocation() {
    let server = TestServer::plain(always(|| {
        Reply::Json(
            403,
            json!({"code": 403, "error": "Certificate has been revoked."}),
        )
    }))
    .await;
    let identity = TestCa::new("client ca").client_identity("app");
    let connector = RestConnector::new(plain_settings(Duration::from_secs(5))).unwrap();
    let err = connector
        .begin_renew(&server.url("/v1/applications/management/info"), &identity)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProtocolError::Status { status: 403, .. }),
        "{err}"
    );
    assert!(!err.needs_reenrollment(), "{err}");
    assert_ne!(err.verdict(), Verdict::Revoked);
    assert_eq!(server.seen().len(), 1, "the request was sent");
}
