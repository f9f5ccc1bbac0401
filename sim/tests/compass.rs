//! The Compass connector as a client sees it: one-time tokens, CSR rules, issued certificates,
//! renewal and revocation over mTLS (GraphQL execution itself: compass_graphql.rs).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use kyma_connector_sim::{Endpoint, SimConfig, fingerprint};
use rcgen::DnType;
use reqwest::StatusCode;
use serde_json::json;
use x509_parser::prelude::*;

#[tokio::test]
async fn configuration_returns_a_new_token_the_subject_and_the_mtls_url() {
    let sim = start().await;
    let token = sim.mint_compass_token();
    let (status, body) = graphql(
        &client(&sim),
        &sim.compass_token_url(),
        Some(&token),
        json!({"query": CONFIGURATION}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let result = &body["data"]["result"];
    let next = result["token"]["token"].as_str().expect("token string");
    assert!(!next.is_empty());
    assert_ne!(next, token);
    assert_eq!(
        result["certificateSigningRequestInfo"]["subject"],
        "O=Org,OU=OrgUnit,L=Waldorf,ST=Waldorf,C=DE,CN=my-app"
    );
    assert_eq!(
        result["certificateSigningRequestInfo"]["keyAlgorithm"],
        "rsa2048"
    );
    assert_eq!(
        result["managementPlaneInfo"]["certificateSecuredConnectorURL"],
        sim.compass_mtls_url().as_str()
    );
    assert!(result["managementPlaneInfo"]["directorURL"].is_string());
}

#[tokio::test]
async fn enrollment_returns_a_certificate_that_opens_the_mtls_listener() {
    let sim = start().await;
    let key = rsa_key();
    let enrolled = compass_enroll(&sim, &key).await;
    assert_eq!(enrolled.ca_pem, sim.client_ca_pem());
    assert_eq!(
        enrolled.chain_pem,
        format!("{}{}", enrolled.cert_pem, enrolled.ca_pem)
    );

    let mtls = mtls_client(&sim, &enrolled.cert_pem, &enrolled.key_pem);
    let (status, body) = graphql(
        &mtls,
        &sim.compass_mtls_url(),
        None,
        json!({"query": "{ configuration { certificateSigningRequestInfo { subject } } }"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["data"]["configuration"]["certificateSigningRequestInfo"]["subject"],
        "O=Org,OU=OrgUnit,L=Waldorf,ST=Waldorf,C=DE,CN=my-app"
    );
}

#[tokio::test]
async fn issued_certificate_has_serial_two_client_auth_and_the_configured_validity() {
    let validity = Duration::from_secs(90);
    let sim = start_with(SimConfig {
        validity,
        ..SimConfig::default()
    })
    .await;
    let key = rsa_key();
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let enrolled = compass_enroll(&sim, &key).await;
    let der = first_der(&enrolled.cert_pem);
    let (_, cert) = X509Certificate::from_der(&der).expect("certificate parses");

    assert_eq!(cert.raw_serial(), &[2]);
    let eku = cert
        .extended_key_usage()
        .expect("eku parses")
        .expect("eku present")
        .value;
    assert!(eku.client_auth && !eku.server_auth && !eku.any);
    let ku = cert
        .key_usage()
        .expect("ku parses")
        .expect("ku present")
        .value;
    assert!(ku.digital_signature() && !ku.key_cert_sign());
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    assert_eq!(not_after - not_before, validity.as_secs() as i64);
    assert!(
        (not_before - before).abs() <= 5,
        "notBefore should be now: {not_before} vs {before}"
    );
    assert_eq!(
        cert.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
    );
    assert!(!cert.is_ca());
}

#[tokio::test]
async fn issued_subject_is_re_encoded_in_go_order() {
    let sim = start().await;
    let enrolled = compass_enroll(&sim, &rsa_key()).await;
    let der = first_der(&enrolled.cert_pem);
    let (_, cert) = X509Certificate::from_der(&der).expect("certificate parses");
    let order: Vec<String> = cert
        .subject()
        .iter_attributes()
        .map(|a| a.attr_type().to_id_string())
        .collect();
    // C, ST, L, O, OU, CN
    assert_eq!(
        order,
        [
            "2.5.4.6", "2.5.4.8", "2.5.4.7", "2.5.4.10", "2.5.4.11", "2.5.4.3"
        ]
    );
    let issued = sim.issued_certificates();
    assert_eq!(issued.len(), 1);
    assert_eq!(
        issued[0].subject,
        "C=DE,ST=Waldorf,L=Waldorf,O=Org,OU=OrgUnit,CN=my-app"
    );
    assert_eq!(issued[0].fingerprint, fingerprint(&der));
    assert!(!issued[0].renewal);
}

#[tokio::test]
async fn a_token_works_only_once() {
    let sim = start().await;
    let client = client(&sim);
    let token = sim.mint_compass_token();
    let query = json!({"query": CONFIGURATION});
    let (_, first) = graphql(
        &client,
        &sim.compass_token_url(),
        Some(&token),
        query.clone(),
    )
    .await;
    assert!(first["data"]["result"].is_object(), "{first}");
    let (status, second) = graphql(&client, &sim.compass_token_url(), Some(&token), query).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        error_message(&second),
        kyma_connector_sim::COMPASS_UNAUTHENTICATED
    );
}

#[tokio::test]
async fn a_token_is_burned_even_when_the_document_is_invalid() {
    let sim = start().await;
    let client = client(&sim);
    let token = sim.mint_compass_token();
    let (status, invalid) = graphql(
        &client,
        &sim.compass_token_url(),
        Some(&token),
        json!({"query": "{ configuration { noSuchField } }"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!error_message(&invalid).is_empty());
    let (_, retry) = graphql(
        &client,
        &sim.compass_token_url(),
        Some(&token),
        json!({"query": CONFIGURATION}),
    )
    .await;
    assert!(error_message(&retry).ends_with(kyma_connector_sim::COMPASS_UNAUTHENTICATED));
}

#[tokio::test]
async fn a_token_is_burned_even_when_signing_fails() {
    let sim = start().await;
    let client = client(&sim);
    let url = sim.compass_token_url();
    let key = rsa_key();
    let token = sim.mint_compass_token();
    let (_, wrong) = graphql(
        &client,
        &url,
        Some(&token),
        json!({"query": SIGN, "variables": {"csr": csr(&key, "someone-else")}}),
    )
    .await;
    assert!(error_message(&wrong).contains("CSR: Invalid common name provided."));
    let (_, retry) = graphql(
        &client,
        &url,
        Some(&token),
        json!({"query": SIGN, "variables": {"csr": csr(&key, "my-app")}}),
    )
    .await;
    assert!(error_message(&retry).ends_with(kyma_connector_sim::COMPASS_UNAUTHENTICATED));
    assert!(sim.issued_certificates().is_empty());
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let sim = start_with(SimConfig {
        token_ttl: Duration::from_millis(200),
        ..SimConfig::default()
    })
    .await;
    let token = sim.mint_compass_token();
    // Time itself is the condition here: wait out the TTL.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, body) = graphql(
        &client(&sim),
        &sim.compass_token_url(),
        Some(&token),
        json!({"query": CONFIGURATION}),
    )
    .await;
    assert_eq!(
        error_message(&body),
        kyma_connector_sim::COMPASS_UNAUTHENTICATED
    );
}

#[tokio::test]
async fn a_request_without_a_token_is_refused() {
    let sim = start().await;
    let (status, body) = graphql(
        &client(&sim),
        &sim.compass_token_url(),
        None,
        json!({"query": CONFIGURATION}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        error_message(&body),
        kyma_connector_sim::COMPASS_UNAUTHENTICATED
    );
}

#[tokio::test]
async fn a_rest_token_is_unknown_to_compass() {
    let sim = start().await;
    let (rest_token, _) = sim.mint_rest_token();
    let (_, body) = graphql(
        &client(&sim),
        &sim.compass_token_url(),
        Some(&rest_token),
        json!({"query": CONFIGURATION}),
    )
    .await;
    assert_eq!(
        error_message(&body),
        kyma_connector_sim::COMPASS_UNAUTHENTICATED
    );
}

async fn sign_with_fresh_token(
    sim: &kyma_connector_sim::Simulator,
    csr_b64: &str,
) -> serde_json::Value {
    let token = sim.mint_compass_token();
    graphql(
        &client(sim),
        &sim.compass_token_url(),
        Some(&token),
        json!({"query": SIGN, "variables": {"csr": csr_b64}}),
    )
    .await
    .1
}

#[tokio::test]
async fn a_csr_with_a_missing_or_different_attribute_is_refused() {
    let sim = start().await;
    let key = rsa_key();
    let without_ou: Vec<_> = subject("my-app")
        .into_iter()
        .filter(|(ty, _)| *ty != DnType::OrganizationalUnitName)
        .collect();
    let body = sign_with_fresh_token(&sim, &csr_with(&key, &without_ou)).await;
    assert!(
        error_message(&body).contains("CSR: No organizational unit provided."),
        "{body}"
    );

    let mut other_org = subject("my-app");
    other_org[0] = (DnType::OrganizationName, "Other");
    let body = sign_with_fresh_token(&sim, &csr_with(&key, &other_org)).await;
    assert!(
        error_message(&body).contains("CSR: Invalid organization provided."),
        "{body}"
    );
    assert!(sim.issued_certificates().is_empty());
}

#[tokio::test]
async fn a_csr_in_another_attribute_order_is_accepted() {
    let sim = start().await;
    let mut reordered = subject("my-app");
    reordered.reverse();
    let body = sign_with_fresh_token(&sim, &csr_with(&rsa_key(), &reordered)).await;
    assert!(
        body["data"]["result"]["clientCertificate"].is_string(),
        "{body}"
    );
}

#[tokio::test]
async fn a_token_minted_for_another_client_expects_that_client_as_cn() {
    let sim = start().await;
    let (token, _) = sim.mint_token(kyma_connector_sim::Protocol::Compass, "other-app");
    let (_, body) = graphql(
        &client(&sim),
        &sim.compass_token_url(),
        Some(&token),
        json!({"query": SIGN, "variables": {"csr": csr(&rsa_key(), "other-app")}}),
    )
    .await;
    let issued = enrolled_from_compass(&rsa_key(), &body);
    let der = first_der(&issued.cert_pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let cn = cert.subject().iter_common_name().next().unwrap();
    assert_eq!(cn.as_str().unwrap(), "other-app");
}

#[tokio::test]
async fn an_ecdsa_csr_is_refused_by_default() {
    let sim = start().await;
    let body = sign_with_fresh_token(&sim, &csr(&ecdsa_key(), "my-app")).await;
    assert!(error_message(&body).contains("rsa"), "{body}");
}

#[tokio::test]
async fn an_ecdsa_csr_is_signed_when_accepted() {
    let sim = start_with(SimConfig {
        accept_ecdsa: true,
        ..SimConfig::default()
    })
    .await;
    let key = ecdsa_key();
    let body = sign_with_fresh_token(&sim, &csr(&key, "my-app")).await;
    let enrolled = enrolled_from_compass(&key, &body);
    let der = first_der(&enrolled.cert_pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(
        cert.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
    );
}

#[tokio::test]
async fn a_csr_that_is_not_base64_is_refused() {
    let sim = start().await;
    let body = sign_with_fresh_token(&sim, "not base64 at all").await;
    assert!(error_message(&body).contains("base64"), "{body}");
}

#[tokio::test]
async fn renewal_over_mtls_signs_a_new_key_for_the_callers_cn() {
    let sim = start().await;
    let enrolled = compass_enroll(&sim, &rsa_key()).await;
    let mtls = mtls_client(&sim, &enrolled.cert_pem, &enrolled.key_pem);
    let new_key = other_rsa_key();
    let (_, body) = graphql(
        &mtls,
        &sim.compass_mtls_url(),
        None,
        json!({"query": SIGN, "variables": {"csr": csr(&new_key, "my-app")}}),
    )
    .await;
    let renewed = enrolled_from_compass(&new_key, &body);
    let der = first_der(&renewed.cert_pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(
        cert.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&new_key).as_slice()
    );
    let issued = sim.issued_certificates();
    assert_eq!(issued.len(), 2);
    assert!(issued[1].renewal);

    // The CN comes from the certificate: a CSR for another CN is refused.
    let (_, body) = graphql(
        &mtls,
        &sim.compass_mtls_url(),
        None,
        json!({"query": SIGN, "variables": {"csr": csr(&new_key, "other-app")}}),
    )
    .await;
    assert!(error_message(&body).contains("CSR: Invalid common name provided."));
}

#[tokio::test]
async fn revoke_certificate_needs_a_certificate() {
    let sim = start().await;
    let token = sim.mint_compass_token();
    let (_, body) = graphql(
        &client(&sim),
        &sim.compass_token_url(),
        Some(&token),
        json!({"query": "mutation { result: revokeCertificate }"}),
    )
    .await;
    assert_eq!(
        error_message(&body),
        kyma_connector_sim::COMPASS_REVOKE_UNAUTHENTICATED
    );
    assert!(sim.revocations().is_empty());
}

#[tokio::test]
async fn a_revoked_certificate_gets_an_error_on_every_operation_but_still_connects() {
    let sim = start().await;
    let key = rsa_key();
    let enrolled = compass_enroll(&sim, &key).await;
    let mtls = mtls_client(&sim, &enrolled.cert_pem, &enrolled.key_pem);
    let url = sim.compass_mtls_url();
    let (_, revoked) = graphql(
        &mtls,
        &url,
        None,
        json!({"query": "mutation { result: revokeCertificate }"}),
    )
    .await;
    assert_eq!(revoked, json!({"data": {"result": true}}));
    assert_eq!(
        sim.revocations(),
        vec![fingerprint(&first_der(&enrolled.cert_pem))]
    );

    // The Connector's authenticator gets no identity for a revoked certificate (the
    // hydrator drops it) and says so, in each resolver's wording.
    let unauthenticated = kyma_connector_sim::COMPASS_UNAUTHENTICATED;
    for (body, expected) in [
        (json!({"query": CONFIGURATION}), unauthenticated.to_owned()),
        (
            json!({"query": SIGN, "variables": {"csr": csr(&key, "my-app")}}),
            format!("Failed to authenticate with token: {unauthenticated}"),
        ),
        (
            json!({"query": "mutation { result: revokeCertificate }"}),
            kyma_connector_sim::COMPASS_REVOKE_UNAUTHENTICATED.to_owned(),
        ),
    ] {
        let (status, answer) = graphql(&mtls, &url, None, body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(error_message(&answer), expected);
        assert_eq!(answer["data"], serde_json::Value::Null);
    }
    assert_eq!(sim.issued_certificates().len(), 1);
}

#[tokio::test]
async fn counters_count_each_operation() {
    let sim = start().await;
    compass_enroll(&sim, &rsa_key()).await;
    let counts = sim.request_counts();
    assert_eq!(counts.get(Endpoint::CompassConfiguration), 1);
    assert_eq!(counts.get(Endpoint::CompassSign), 1);
    assert_eq!(counts.get(Endpoint::CompassRevoke), 0);
    assert_eq!(counts.total(), 2);
}
