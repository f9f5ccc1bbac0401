//! The plain-HTTP admin API: tokens, inspection, revocation and fault switches.

mod common;

use common::*;
use kyma_connector_sim::{Endpoint, Fault, FaultScope, Simulator, fingerprint};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn admin(sim: &Simulator, path: &str) -> url::Url {
    sim.admin_url().join(path).expect("admin path joins")
}

async fn admin_get(sim: &Simulator, path: &str) -> (StatusCode, Value) {
    json_of(admin_client().get(admin(sim, path)).send().await.unwrap()).await
}

#[tokio::test]
async fn index_lists_the_urls_and_the_server_ca_path() {
    let sim = start().await;
    let (status, body) = admin_get(&sim, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["compass_token_url"], sim.compass_token_url().as_str());
    assert_eq!(body["compass_mtls_url"], sim.compass_mtls_url().as_str());
    assert_eq!(
        body["server_ca_path"],
        sim.server_ca_path().display().to_string()
    );
    let pem = admin_client()
        .get(admin(&sim, "server-ca.pem"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(pem, sim.server_ca_pem());
}

#[tokio::test]
async fn minted_compass_token_opens_the_token_secured_url() {
    let sim = start().await;
    let response = admin_client()
        .post(admin(&sim, "tokens/compass"))
        .send()
        .await
        .unwrap();
    let (status, minted) = json_of(response).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(minted["url"], sim.compass_token_url().as_str());
    let (_, body) = graphql(
        &client(&sim),
        &sim.compass_token_url(),
        minted["token"].as_str(),
        json!({"query": CONFIGURATION}),
    )
    .await;
    assert!(body["data"]["result"].is_object(), "{body}");
}

#[tokio::test]
async fn minted_rest_token_comes_with_a_working_configuration_url_for_any_client() {
    let sim = start().await;
    let response = admin_client()
        .post(admin(&sim, "tokens/kyma-rest?client_id=orders"))
        .send()
        .await
        .unwrap();
    let (_, minted) = json_of(response).await;
    let url = minted["url"].as_str().unwrap();
    assert!(url.contains(minted["token"].as_str().unwrap()));
    let (status, info) = json_of(client(&sim).get(url).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        info["certificate"]["subject"]
            .as_str()
            .unwrap()
            .ends_with("CN=orders")
    );
}

#[tokio::test]
async fn issued_certificates_are_listed_by_fingerprint() {
    let sim = start().await;
    let enrolled = compass_enroll(&sim, &rsa_key()).await;
    let expected = fingerprint(&first_der(&enrolled.cert_pem));
    let (_, list) = admin_get(&sim, "certificates").await;
    assert_eq!(list[0]["fingerprint"], expected.as_str());
    assert_eq!(list[0]["pem"], enrolled.cert_pem.as_str());
    assert_eq!(list[0]["protocol"], "compass");
    assert!(list[0]["not_after"].as_str().unwrap().ends_with('Z'));
    let (status, one) = admin_get(&sim, &format!("certificates/{expected}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        one["subject"],
        "C=DE,ST=Waldorf,L=Waldorf,O=Org,OU=OrgUnit,CN=my-app"
    );
    let (status, _) = admin_get(&sim, &format!("certificates/{}", "0".repeat(64))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn revoking_through_admin_blocks_renewal() {
    let sim = start().await;
    let key = rsa_key();
    let enrolled = rest_enroll(&sim, &key).await;
    let fp = fingerprint(&first_der(&enrolled.cert_pem));
    let response = admin_client()
        .post(admin(&sim, &format!("revocations/{fp}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (_, revocations) = admin_get(&sim, "revocations").await;
    assert_eq!(revocations, json!([fp]));

    let mtls = mtls_client(&sim, &enrolled.cert_pem, &enrolled.key_pem);
    let renew = format!(
        "https://{}/v1/applications/certificates/renewals",
        sim.mtls_addr()
    );
    let (status, body) = json_of(
        mtls.post(&renew)
            .json_body(&json!({"csr": csr(&key, "my-app")}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "Certificate has been revoked.");

    // An administrator cleans up the revocation list: the certificate renews again.
    let lift = || {
        admin_client()
            .delete(admin(&sim, &format!("revocations/{fp}")))
            .send()
    };
    assert_eq!(lift().await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(admin_get(&sim, "revocations").await.1, json!([]));
    let response = mtls
        .post(&renew)
        .json_body(&json!({"csr": csr(&key, "my-app")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(lift().await.unwrap().status(), StatusCode::NOT_FOUND);
}

/// A request on the mTLS listener, with the simulator's own freshly enrolled certificate.
async fn management_info(
    mtls: &reqwest::Client,
    sim: &Simulator,
) -> Result<reqwest::Response, reqwest::Error> {
    mtls.get(format!(
        "https://{}/v1/applications/management/info",
        sim.mtls_addr()
    ))
    .send()
    .await
}

async fn put_fault(sim: &Simulator, body: Value) {
    let put = admin_client()
        .put(admin(sim, "fault"))
        .json_body(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::NO_CONTENT, "{body}");
}

#[tokio::test]
async fn gateway_faults_switched_over_http_refuse_only_on_the_mtls_listener() {
    let sim = start().await;
    let key = rsa_key();
    let enrolled = rest_enroll(&sim, &key).await;
    let mtls = mtls_client(&sim, &enrolled.cert_pem, &enrolled.key_pem);

    // A gateway's 403: plain text, not the connector's {code, error}.
    put_fault(
        &sim,
        json!({"fault": {"kind": "gateway_refusal"}, "scope": "until_cleared"}),
    )
    .await;
    let (_, url) = sim.mint_rest_token();
    let token_call = client(&sim).get(url).send().await.unwrap();
    assert_eq!(
        token_call.status(),
        StatusCode::OK,
        "the token listener is not behind it"
    );
    for _ in 0..2 {
        let refused = management_info(&mtls, &sim).await.unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert_eq!(refused.text().await.unwrap(), "RBAC: access denied");
    }
    assert_eq!(sim.request_counts().get(Endpoint::GatewayRefusal), 2);
    assert_eq!(sim.request_counts().get(Endpoint::RestManagementInfo), 0);
    put_fault(
        &sim,
        json!({"fault": {"kind": "gateway_refusal", "status": 407, "body": "proxy says no"}, "scope": {"next": 1}}),
    )
    .await;
    let refused = management_info(&mtls, &sim).await.unwrap();
    assert_eq!(refused.status(), StatusCode::PROXY_AUTHENTICATION_REQUIRED);
    assert_eq!(refused.text().await.unwrap(), "proxy says no");

    // A handshake refused with an alert.
    put_fault(
        &sim,
        json!({"fault": {"kind": "tls_alert", "alert": "unknown_ca"}, "scope": "until_cleared"}),
    )
    .await;
    let (_, url) = sim.mint_rest_token();
    assert_eq!(
        client(&sim).get(url).send().await.unwrap().status(),
        StatusCode::OK
    );
    // A new client: a pooled connection would not shake hands again.
    let mtls = mtls_client(&sim, &enrolled.cert_pem, &enrolled.key_pem);
    let error = management_info(&mtls, &sim).await.unwrap_err();
    assert!(
        format!("{error:?}").contains("AlertReceived(UnknownCA)"),
        "{error:?}"
    );
    assert_eq!(sim.request_counts().get(Endpoint::RefusedHandshake), 1);

    let delete = admin_client()
        .delete(admin(&sim, "fault"))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    let response = management_info(&mtls, &sim).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let unknown = admin_client()
        .put(admin(&sim, "fault"))
        .json_body(
            &json!({"fault": {"kind": "tls_alert", "alert": "teapot"}, "scope": "until_cleared"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn faults_are_set_read_and_cleared_over_http() {
    let sim = start().await;
    let put = admin_client()
        .put(admin(&sim, "fault"))
        .json_body(&json!({"fault": {"kind": "unavailable"}, "scope": {"next": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        sim.active_fault().map(|a| (a.fault, a.scope)),
        Some((Fault::Unavailable, FaultScope::Next(2)))
    );
    let (_, current) = admin_get(&sim, "fault").await;
    assert_eq!(current["fault"]["kind"], "unavailable");

    let (_, url) = sim.mint_rest_token();
    let response = client(&sim).get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

    let delete = admin_client()
        .delete(admin(&sim, "fault"))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.active_fault(), None);
    let (_, current) = admin_get(&sim, "fault").await;
    assert!(current.is_null());
}

#[tokio::test]
async fn a_malformed_fault_is_refused_with_a_reason() {
    let sim = start().await;
    let response = admin_client()
        .put(admin(&sim, "fault"))
        .json_body(&json!({"fault": {"kind": "latency"}, "scope": "until_cleared"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("delay"));
    assert_eq!(sim.active_fault(), None);
}

#[tokio::test]
async fn counters_are_readable_over_http() {
    let sim = start().await;
    rest_enroll(&sim, &rsa_key()).await;
    let (_, counters) = admin_get(&sim, "counters").await;
    assert_eq!(counters["rest.signingRequests/info"], 1);
    assert_eq!(counters["rest.certificates"], 1);
    assert_eq!(counters["compass.configuration"], 0);
}
