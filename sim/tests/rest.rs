//! The Kyma REST connector-service as a client sees it: the configuration URL, signing with
//! the one-time token, management info, renewal and revocation over mTLS, and the error format.

mod common;

use std::time::Duration;

use common::*;
use kyma_connector_sim::{Endpoint, SimConfig, Simulator, fingerprint};
use reqwest::StatusCode;
use serde_json::{Value, json};
use url::Url;
use x509_parser::prelude::*;

async fn get(client: &reqwest::Client, url: impl reqwest::IntoUrl) -> (StatusCode, Value) {
    json_of(client.get(url).send().await.expect("request completes")).await
}

async fn post(
    client: &reqwest::Client,
    url: impl reqwest::IntoUrl,
    body: Value,
) -> (StatusCode, Value) {
    json_of(
        client
            .post(url)
            .json_body(&body)
            .send()
            .await
            .expect("request completes"),
    )
    .await
}

fn assert_app_error(status: StatusCode, body: &Value, expected: StatusCode, message: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["code"], expected.as_u16(), "{body}");
    let text = body["error"].as_str().expect("error is a string");
    assert!(
        text.contains(message),
        "{text:?} should contain {message:?}"
    );
}

async fn info(sim: &Simulator) -> Value {
    let (_, url) = sim.mint_rest_token();
    let (status, body) = get(&client(sim), url).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn token_of(url: &str) -> String {
    Url::parse(url)
        .expect("url parses")
        .query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .expect("token parameter")
}

#[tokio::test]
async fn configuration_url_announces_csr_url_api_urls_and_subject() {
    let sim = start().await;
    let (token, url) = sim.mint_rest_token();
    assert_eq!(url, sim.rest_info_url(&token));
    let (status, body) = get(&client(&sim), url).await;
    assert_eq!(status, StatusCode::OK);

    let csr_url = Url::parse(body["csrUrl"].as_str().unwrap()).unwrap();
    assert_eq!(csr_url.port(), Some(sim.token_addr().port()));
    assert_eq!(csr_url.path(), "/v1/applications/certificates");
    assert_ne!(
        token_of(csr_url.as_str()),
        token,
        "csrUrl carries a fresh token"
    );

    let api = &body["api"];
    let info_url = Url::parse(api["infoUrl"].as_str().unwrap()).unwrap();
    assert_eq!(info_url, sim.rest_management_info_url());
    assert_eq!(info_url.port(), Some(sim.mtls_addr().port()));
    for key in ["metadataUrl", "eventsUrl", "certificatesUrl"] {
        assert!(
            api[key]
                .as_str()
                .is_some_and(|u| u.starts_with("https://127.0.0.1:")),
            "{key}"
        );
    }
    assert_eq!(
        body["certificate"],
        json!({
            "subject": "OU=OrgUnit,O=Org,L=Waldorf,ST=Waldorf,C=DE,CN=my-app",
            "extensions": "",
            "key-algorithm": "rsa2048"
        })
    );
}

#[tokio::test]
async fn configuration_token_is_replaced_by_the_one_in_csr_url() {
    let sim = start().await;
    let (_, url) = sim.mint_rest_token();
    let client = client(&sim);
    let (first, _) = get(&client, url.clone()).await;
    assert_eq!(first, StatusCode::OK);
    let (status, body) = get(&client, url).await;
    assert_app_error(status, &body, StatusCode::FORBIDDEN, "Invalid token.");
}

#[tokio::test]
async fn missing_and_unknown_tokens_are_forbidden() {
    let sim = start().await;
    let client = client(&sim);
    let mut without = sim.rest_info_url("x");
    without.set_query(None);
    let (status, body) = get(&client, without).await;
    assert_app_error(status, &body, StatusCode::FORBIDDEN, "Token not provided.");
    let (status, body) = get(&client, sim.rest_info_url("made-up")).await;
    assert_app_error(status, &body, StatusCode::FORBIDDEN, "Invalid token.");
    let compass_token = sim.mint_compass_token();
    let (status, body) = get(&client, sim.rest_info_url(&compass_token)).await;
    assert_app_error(status, &body, StatusCode::FORBIDDEN, "Invalid token.");
}

#[tokio::test]
async fn an_expired_token_is_forbidden() {
    let sim = start_with(SimConfig {
        token_ttl: Duration::from_millis(200),
        ..SimConfig::default()
    })
    .await;
    let (_, url) = sim.mint_rest_token();
    // Time itself is the condition here: wait out the TTL.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, body) = get(&client(&sim), url).await;
    assert_app_error(status, &body, StatusCode::FORBIDDEN, "Invalid token.");
}

#[tokio::test]
async fn signing_returns_chain_client_and_ca_as_base64_pem() {
    let sim = start().await;
    let key = rsa_key();
    let enrolled = rest_enroll(&sim, &key).await;
    assert_eq!(enrolled.ca_pem, sim.client_ca_pem());
    assert_eq!(
        enrolled.chain_pem,
        format!("{}{}", enrolled.cert_pem, enrolled.ca_pem)
    );
    let der = first_der(&enrolled.cert_pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(cert.raw_serial(), &[2]);
    assert_eq!(
        cert.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
    );
    let issued = sim.issued_certificates();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].fingerprint, fingerprint(&der));
    assert_eq!(issued[0].protocol, kyma_connector_sim::Protocol::KymaRest);
}

#[tokio::test]
async fn the_signing_token_is_deleted_only_on_success() {
    let sim = start().await;
    let client = client(&sim);
    let body = info(&sim).await;
    let csr_url = body["csrUrl"].as_str().unwrap().to_owned();
    let key = rsa_key();

    let (status, refused) = post(&client, &csr_url, json!({"csr": csr(&key, "wrong-app")})).await;
    assert_app_error(
        status,
        &refused,
        StatusCode::BAD_REQUEST,
        "CSR: Invalid common name provided.",
    );
    let (status, refused) = post(&client, &csr_url, json!({"csr": "%%%"})).await;
    assert_app_error(status, &refused, StatusCode::BAD_REQUEST, "base64");
    let (status, refused) = post(&client, &csr_url, json!({"no": "csr"})).await;
    assert_app_error(
        status,
        &refused,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Error while unmarshalling request body",
    );

    let (status, signed) = post(&client, &csr_url, json!({"csr": csr(&key, "my-app")})).await;
    assert_eq!(status, StatusCode::CREATED, "{signed}");
    let (status, again) = post(&client, &csr_url, json!({"csr": csr(&key, "my-app")})).await;
    assert_app_error(status, &again, StatusCode::FORBIDDEN, "Invalid token.");
}

#[tokio::test]
async fn an_ecdsa_csr_is_a_bad_request_by_default() {
    let sim = start().await;
    let body = info(&sim).await;
    let (status, refused) = post(
        &client(&sim),
        body["csrUrl"].as_str().unwrap(),
        json!({"csr": csr(&ecdsa_key(), "my-app")}),
    )
    .await;
    assert_app_error(status, &refused, StatusCode::BAD_REQUEST, "rsa");
}

#[tokio::test]
async fn management_info_names_the_application_and_the_renewal_urls() {
    let sim = start().await;
    let enrolled = rest_enroll(&sim, &rsa_key()).await;
    let mtls = mtls_client(&sim, &enrolled.cert_pem, &enrolled.key_pem);
    let (status, body) = get(&mtls, sim.rest_management_info_url()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["clientIdentity"]["application"], "my-app");
    let mtls_port = sim.mtls_addr().port();
    let renew = Url::parse(body["urls"]["renewCertUrl"].as_str().unwrap()).unwrap();
    let revoke = Url::parse(body["urls"]["revokeCertUrl"].as_str().unwrap()).unwrap();
    assert_eq!(renew.port(), Some(mtls_port));
    assert_eq!(renew.path(), "/v1/applications/certificates/renewals");
    assert_eq!(revoke.path(), "/v1/applications/certificates/revocations");
    assert!(body["urls"]["metadataUrl"].is_string() && body["urls"]["eventsUrl"].is_string());
    assert_eq!(
        body["certificate"]["subject"],
        "OU=OrgUnit,O=Org,L=Waldorf,ST=Waldorf,C=DE,CN=my-app"
    );
}

async fn management_urls(sim: &Simulator, mtls: &reqwest::Client) -> (String, String) {
    let (_, body) = get(mtls, sim.rest_management_info_url()).await;
    (
        body["urls"]["renewCertUrl"].as_str().unwrap().to_owned(),
        body["urls"]["revokeCertUrl"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn renewal_over_mtls_returns_a_new_certificate_for_the_same_subject() {
    let sim = start().await;
    let enrolled = rest_enroll(&sim, &rsa_key()).await;
    let mtls = mtls_client(&sim, &enrolled.cert_pem, &enrolled.key_pem);
    let (renew_url, _) = management_urls(&sim, &mtls).await;
    let new_key = other_rsa_key();
    let (status, body) = post(&mtls, &renew_url, json!({"csr": csr(&new_key, "my-app")})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let renewed = enrolled_from_rest(&new_key, &body);
    assert_ne!(renewed.cert_pem, enrolled.cert_pem);
    let issued = sim.issued_certificates();
    assert_eq!(issued.len(), 2);
    assert!(issued[1].renewal);
    assert_eq!(issued[0].subject, issued[1].subject);
}

#[tokio::test]
async fn a_revoked_certificate_cannot_renew_but_still_connects() {
    let sim = start().await;
    let key = rsa_key();
    let enrolled = rest_enroll(&sim, &key).await;
    let mtls = mtls_client(&sim, &enrolled.cert_pem, &enrolled.key_pem);
    let (renew_url, revoke_url) = management_urls(&sim, &mtls).await;

    let response = mtls.post(&revoke_url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(response.bytes().await.unwrap().is_empty());
    assert_eq!(
        sim.revocations(),
        vec![fingerprint(&first_der(&enrolled.cert_pem))]
    );

    let (status, body) = post(&mtls, &renew_url, json!({"csr": csr(&key, "my-app")})).await;
    assert_app_error(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "Certificate has been revoked.",
    );
    assert_eq!(body["error"], "Certificate has been revoked.");
    // The handshake and management info still work: only renewal checks revocation.
    let (status, _) = get(&mtls, sim.rest_management_info_url()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sim.issued_certificates().len(), 1);
}

#[tokio::test]
async fn the_connectivity_adapter_refuses_a_revoked_certificate_on_every_mtls_call() {
    let sim = start().await;
    sim.set_rest_flavour(kyma_connector_sim::RestFlavour::ConnectivityAdapter);
    let key = rsa_key();
    let enrolled = rest_enroll(&sim, &key).await;
    let mtls = mtls_client(&sim, &enrolled.cert_pem, &enrolled.key_pem);
    let (renew_url, _) = management_urls(&sim, &mtls).await;
    sim.revoke(&fingerprint(&first_der(&enrolled.cert_pem)));

    let adapter = kyma_connector_sim::ADAPTER_UNAUTHENTICATED;
    let (status, body) = get(&mtls, sim.rest_management_info_url()).await;
    assert_app_error(status, &body, StatusCode::FORBIDDEN, adapter);
    assert_eq!(body["error"], adapter);
    let (status, body) = post(&mtls, &renew_url, json!({"csr": csr(&key, "my-app")})).await;
    assert_app_error(status, &body, StatusCode::FORBIDDEN, adapter);
    // A used token gets the same words on the token-secured URL.
    let (token, info_url) = sim.mint_rest_token();
    let client = client(&sim);
    assert_eq!(get(&client, info_url.clone()).await.0, StatusCode::OK);
    let (status, body) = get(&client, info_url).await;
    assert_app_error(status, &body, StatusCode::FORBIDDEN, adapter);
    drop(token);
    assert_eq!(sim.issued_certificates().len(), 1);
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_answer_in_the_error_format() {
    let sim = start().await;
    let client = client(&sim);
    let base = format!("https://{}", sim.token_addr());
    let (status, body) = get(&client, format!("{base}/v1/applications/nothing")).await;
    assert_app_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "Requested resource could not be found.",
    );
    let (status, body) = post(
        &client,
        format!("{base}/v1/applications/signingRequests/info"),
        json!({}),
    )
    .await;
    assert_app_error(
        status,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed.",
    );
    // Certificate-secured operations are not served on the token-secured listener.
    let (status, body) = get(&client, format!("{base}/v1/applications/management/info")).await;
    assert_app_error(status, &body, StatusCode::NOT_FOUND, "could not be found");
    let counts = sim.request_counts();
    assert_eq!(counts.get(Endpoint::Unknown), 3);
}

#[tokio::test]
async fn counters_count_each_endpoint() {
    let sim = start().await;
    let enrolled = rest_enroll(&sim, &rsa_key()).await;
    let mtls = mtls_client(&sim, &enrolled.cert_pem, &enrolled.key_pem);
    let (renew_url, _) = management_urls(&sim, &mtls).await;
    post(&mtls, &renew_url, json!({"csr": csr(&rsa_key(), "my-app")})).await;
    let counts = sim.request_counts();
    assert_eq!(counts.get(Endpoint::RestInfo), 1);
    assert_eq!(counts.get(Endpoint::RestSign), 1);
    assert_eq!(counts.get(Endpoint::RestManagementInfo), 1);
    assert_eq!(counts.get(Endpoint::RestRenew), 1);
    assert_eq!(counts.get(Endpoint::RestRevoke), 0);
}
