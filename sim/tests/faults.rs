//! Every fault, observed the way a client would notice it, and the fault scopes.

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use kyma_connector_sim::{Endpoint, Fault, FaultScope, Simulator};
use reqwest::StatusCode;
use serde_json::{Value, json};
use x509_parser::prelude::*;

/// `GET signingRequests/info` with a fresh token: the cheapest faultable request.
async fn rest_info(sim: &Simulator) -> reqwest::Response {
    let (_, url) = sim.mint_rest_token();
    client(sim).get(url).send().await.expect("response arrives")
}

/// A REST signing response (`{crt, clientCrt, caCrt}`) for a fresh token, as JSON.
async fn rest_sign(sim: &Simulator) -> Value {
    let client = client(sim);
    let (_, url) = sim.mint_rest_token();
    let (_, info) = json_of(client.get(url).send().await.unwrap()).await;
    let response = client
        .post(info["csrUrl"].as_str().unwrap())
        .json_body(&json!({"csr": csr(&rsa_key(), "my-app")}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

fn certificate_of(body: &Value) -> (Vec<u8>, String) {
    let pem = b64_pem(&body["clientCrt"]);
    (first_der(&pem), pem)
}

#[tokio::test]
async fn latency_delays_the_answer() {
    let sim = start().await;
    sim.set_fault(
        Fault::Latency {
            delay: Duration::from_millis(500),
        },
        FaultScope::Next(1),
    );
    let started = Instant::now();
    let response = rest_info(&sim).await;
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "processed after the delay"
    );
    assert_eq!(sim.active_fault(), None);
}

#[tokio::test]
async fn internal_error_answers_500_in_each_protocols_format_without_spending_the_token() {
    let sim = start().await;
    sim.set_fault(Fault::InternalError, FaultScope::Next(2));
    let (token, url) = sim.mint_rest_token();
    let (status, body) = json_of(client(&sim).get(url.clone()).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["code"], 500);

    let compass_token = sim.mint_compass_token();
    let (status, body) = graphql(
        &client(&sim),
        &sim.compass_token_url(),
        Some(&compass_token),
        json!({"query": CONFIGURATION}),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body["errors"][0]["message"].is_string());

    // Neither token was spent: the requests were not processed.
    let (status, _) = json_of(
        client(&sim)
            .get(sim.rest_info_url(&token))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = graphql(
        &client(&sim),
        &sim.compass_token_url(),
        Some(&compass_token),
        json!({"query": CONFIGURATION}),
    )
    .await;
    assert!(body["data"]["result"].is_object(), "{body}");
}

#[tokio::test]
async fn unavailable_answers_503_with_retry_after() {
    let sim = start().await;
    sim.set_fault(Fault::Unavailable, FaultScope::Next(1));
    let response = rest_info(&sim).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let (_, body) = json_of(response).await;
    assert_eq!(body["code"], 503);
    assert_eq!(
        rest_info(&sim).await.status(),
        StatusCode::OK,
        "only the next request"
    );
}

#[tokio::test]
async fn malformed_json_keeps_the_status_but_breaks_the_body() {
    let sim = start().await;
    sim.set_fault(Fault::MalformedJson, FaultScope::Next(1));
    let response = rest_info(&sim).await;
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().await.unwrap();
    assert!(!bytes.is_empty());
    assert!(serde_json::from_slice::<Value>(&bytes).is_err());
}

#[tokio::test]
async fn invalid_base64_spoils_every_certificate_field() {
    let sim = start().await;
    sim.set_fault(Fault::InvalidBase64, FaultScope::Next(1));
    let body = rest_sign(&sim).await;
    for field in ["crt", "clientCrt", "caCrt"] {
        let text = body[field].as_str().expect("field is a string");
        assert!(STANDARD.decode(text).is_err(), "{field} decoded");
    }
}

#[tokio::test]
async fn a_certificate_fault_waits_for_a_signing_request() {
    let sim = start().await;
    sim.set_fault(Fault::InvalidBase64, FaultScope::Next(1));
    assert_eq!(rest_info(&sim).await.status(), StatusCode::OK);
    assert!(sim.active_fault().is_some(), "info must not consume it");
    let body = rest_sign(&sim).await;
    assert!(
        STANDARD
            .decode(body["clientCrt"].as_str().unwrap())
            .is_err()
    );
    assert_eq!(sim.active_fault(), None);
}

#[tokio::test]
async fn foreign_key_certifies_another_public_key() {
    let sim = start().await;
    sim.set_fault(Fault::ForeignKey, FaultScope::Next(1));
    let body = rest_sign(&sim).await;
    let (der, _) = certificate_of(&body);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_ne!(
        cert.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&rsa_key()).as_slice()
    );
    assert_eq!(sim.issued_certificates()[0].fault, Some(Fault::ForeignKey));
}

#[tokio::test]
async fn wrong_subject_changes_the_common_name() {
    let sim = start().await;
    sim.set_fault(Fault::WrongSubject, FaultScope::Next(1));
    let body = rest_sign(&sim).await;
    let (der, _) = certificate_of(&body);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let cn = cert.subject().iter_common_name().next().unwrap();
    assert_ne!(cn.as_str().unwrap(), "my-app");
}

#[tokio::test]
async fn expired_certificate_ended_before_now() {
    let sim = start().await;
    sim.set_fault(Fault::ExpiredCertificate, FaultScope::Next(1));
    let body = rest_sign(&sim).await;
    let (der, _) = certificate_of(&body);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert!(cert.validity().not_after < ASN1Time::now());
}

#[tokio::test]
async fn unrelated_ca_signs_a_certificate_the_returned_ca_does_not_verify() {
    let sim = start().await;
    sim.set_fault(Fault::UnrelatedCa, FaultScope::Next(1));
    let key = rsa_key();
    let body = rest_sign(&sim).await;
    let enrolled = enrolled_from_rest(&key, &body);
    let der = first_der(&enrolled.cert_pem);
    let ca_der = first_der(&enrolled.ca_pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    assert_eq!(cert.issuer(), ca.subject(), "same issuer name");
    // The signature does not verify: the mTLS listener (which trusts the real CA) refuses it.
    let client = mtls_client(&sim, &enrolled.cert_pem, &enrolled.key_pem);
    let refused = client
        .get(sim.rest_management_info_url())
        .send()
        .await
        .is_err();
    assert!(refused);
}

#[tokio::test]
async fn stall_sends_headers_then_nothing() {
    let sim = start().await;
    sim.set_fault(
        Fault::Stall {
            duration: Duration::from_secs(3600),
        },
        FaultScope::Next(1),
    );
    let response = tokio::time::timeout(TIMEOUT, rest_info(&sim))
        .await
        .expect("headers arrive");
    assert_eq!(response.status(), StatusCode::OK);
    let body = tokio::time::timeout(Duration::from_millis(500), response.bytes()).await;
    assert!(body.is_err(), "the body must not arrive");
}

#[tokio::test]
async fn oversized_body_streams_tens_of_mebibytes() {
    let sim = start().await;
    let size = 20 * 1024 * 1024;
    sim.set_fault(Fault::OversizedBody { bytes: size }, FaultScope::Next(1));
    let response = rest_info(&sim).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.content_length(),
        None,
        "streamed, no length announced"
    );
    let bytes = response.bytes().await.expect("body arrives");
    assert_eq!(bytes.len() as u64, size);
    assert!(serde_json::from_slice::<Value>(&bytes).is_err());
}

#[tokio::test]
async fn dropped_handshake_closes_the_connection_before_tls() {
    let sim = start().await;
    sim.set_fault(Fault::DropHandshake, FaultScope::Next(1));
    let (_, url) = sim.mint_rest_token();
    assert!(client(&sim).get(url.clone()).send().await.is_err());
    assert_eq!(sim.request_counts().get(Endpoint::DroppedHandshake), 1);
    let response = client(&sim)
        .get(url)
        .send()
        .await
        .expect("next connection works");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_fault_until_cleared_stays_until_cleared() {
    let sim = start().await;
    sim.set_fault(Fault::Unavailable, FaultScope::UntilCleared);
    for _ in 0..3 {
        assert_eq!(
            rest_info(&sim).await.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    sim.clear_fault();
    assert_eq!(rest_info(&sim).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn faulted_requests_are_counted() {
    let sim = start().await;
    sim.set_fault(Fault::InternalError, FaultScope::Next(2));
    rest_info(&sim).await;
    rest_info(&sim).await;
    rest_info(&sim).await;
    assert_eq!(sim.request_counts().get(Endpoint::RestInfo), 3);
}

#[tokio::test]
async fn faults_do_not_touch_the_admin_api() {
    let sim = start().await;
    sim.set_fault(Fault::InternalError, FaultScope::UntilCleared);
    let response = admin_client()
        .get(sim.admin_url().join("counters").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        sim.request_counts().total(),
        0,
        "admin calls are not counted"
    );
}
