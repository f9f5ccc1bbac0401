//! The Compass endpoint as a GraphQL server: documents are validated against the connector
//! schema and executed with aliases, fragments, directives, variables and operation names.

mod common;

use common::*;
use kyma_connector_sim::Endpoint;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn aliases_and_field_selection_are_honoured() {
    let sim = start().await;
    let token = sim.mint_compass_token();
    let (_, body) = graphql(
        &client(&sim),
        &sim.compass_token_url(),
        Some(&token),
        json!({"query": "{ cfg: configuration { info: certificateSigningRequestInfo { algo: keyAlgorithm } } }"}),
    )
    .await;
    assert_eq!(
        body,
        json!({"data": {"cfg": {"info": {"algo": "rsa2048"}}}})
    );
}

#[tokio::test]
async fn fragments_and_skip_directives_are_executed() {
    let sim = start().await;
    let token = sim.mint_compass_token();
    let query = "query Q($skip: Boolean!) { configuration { ...Csr managementPlaneInfo @skip(if: $skip) { directorURL } } } \
                 fragment Csr on Configuration { certificateSigningRequestInfo { keyAlgorithm } }";
    let (_, body) = graphql(
        &client(&sim),
        &sim.compass_token_url(),
        Some(&token),
        json!({"query": query, "variables": {"skip": true}}),
    )
    .await;
    assert_eq!(
        body,
        json!({"data": {"configuration": {"certificateSigningRequestInfo": {"keyAlgorithm": "rsa2048"}}}})
    );
}

#[tokio::test]
async fn an_inline_csr_argument_works_like_a_variable() {
    let sim = start().await;
    let key = rsa_key();
    let query = format!(
        "mutation {{ result: signCertificateSigningRequest(csr: \"{}\") {{ clientCertificate }} }}",
        csr(&key, "my-app")
    );
    let token = sim.mint_compass_token();
    let (_, body) = graphql(
        &client(&sim),
        &sim.compass_token_url(),
        Some(&token),
        json!({"query": query}),
    )
    .await;
    let result = body["data"]["result"].as_object().expect("result object");
    assert_eq!(result.len(), 1, "only the selected field: {body}");
    assert!(b64_pem(&result["clientCertificate"]).starts_with("-----BEGIN CERTIFICATE-----"));
}

#[tokio::test]
async fn operation_name_selects_one_of_several_operations() {
    let sim = start().await;
    let token = sim.mint_compass_token();
    let document = "query A { configuration { token { token } } } query B { configuration { certificateSigningRequestInfo { keyAlgorithm } } }";
    let (_, body) = graphql(
        &client(&sim),
        &sim.compass_token_url(),
        Some(&token),
        json!({"query": document, "operationName": "B"}),
    )
    .await;
    assert_eq!(
        body,
        json!({"data": {"configuration": {"certificateSigningRequestInfo": {"keyAlgorithm": "rsa2048"}}}})
    );
}

#[tokio::test]
async fn invalid_documents_are_rejected_with_errors_and_null_data() {
    let sim = start().await;
    let client = client(&sim);
    for query in [
        "{ configuration { token { token } ",     // syntax error
        "{ configurations { token { token } } }", // unknown field
        "mutation { signCertificateSigningRequest { clientCertificate } }", // missing argument
        "{ configuration }",                      // object without selection
        "mutation { revokeCertificate { x } }",   // selection on a scalar
    ] {
        let token = sim.mint_compass_token();
        let (status, body) = graphql(
            &client,
            &sim.compass_token_url(),
            Some(&token),
            json!({"query": query}),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert!(!error_message(&body).is_empty(), "{query}");
    }
    assert_eq!(sim.request_counts().get(Endpoint::CompassInvalid), 5);
}

#[tokio::test]
async fn a_body_that_is_not_a_graphql_request_is_rejected() {
    let sim = start().await;
    let token = sim.mint_compass_token();
    let response = client(&sim)
        .post(sim.compass_token_url())
        .header(kyma_connector_sim::TOKEN_HEADER, &token)
        .body("this is not json")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!error_message(&body).is_empty());
}

#[tokio::test]
async fn get_requests_are_not_allowed() {
    let sim = start().await;
    let response = client(&sim)
        .get(sim.compass_token_url())
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(!error_message(&body).is_empty());
}
