//! The Kyma Application Connector connector-service REST API under `/v1/applications/`:
//! routing per listener, token and certificate authentication, and the JSON bodies of the
//! OpenAPI contract. Does not issue certificates itself (see `shared`).

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::answers::{
    self, ADAPTER_UNAUTHENTICATED, REST_REVOKED, REST_TOKEN_INVALID, REST_TOKEN_MISSING,
    RestFlavour,
};
use crate::peer::{Peer, Role};
use crate::registry::Endpoint;
use crate::respond::{self, Body};
use crate::shared::{ErrorStyle, Gate, Shared, SignError, SignedFields};
use crate::subject::ExpectedSubject;
use crate::tokens::Protocol;

const INFO_PATH: &str = "/v1/applications/signingRequests/info";
const CERTIFICATES_PATH: &str = "/v1/applications/certificates";
const MANAGEMENT_INFO_PATH: &str = "/v1/applications/management/info";
const RENEWALS_PATH: &str = "/v1/applications/certificates/renewals";
const REVOCATIONS_PATH: &str = "/v1/applications/certificates/revocations";
const HEALTH_PATH: &str = "/v1/health";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Info,
    Sign,
    ManagementInfo,
    Renew,
    Revoke,
    Health,
}

/// Path, method, listener and counter of each operation.
const ROUTES: [(&str, Method, Option<Role>, Route, Endpoint); 6] = [
    (
        INFO_PATH,
        Method::GET,
        Some(Role::Token),
        Route::Info,
        Endpoint::RestInfo,
    ),
    (
        CERTIFICATES_PATH,
        Method::POST,
        Some(Role::Token),
        Route::Sign,
        Endpoint::RestSign,
    ),
    (
        MANAGEMENT_INFO_PATH,
        Method::GET,
        Some(Role::Mtls),
        Route::ManagementInfo,
        Endpoint::RestManagementInfo,
    ),
    (
        RENEWALS_PATH,
        Method::POST,
        Some(Role::Mtls),
        Route::Renew,
        Endpoint::RestRenew,
    ),
    (
        REVOCATIONS_PATH,
        Method::POST,
        Some(Role::Mtls),
        Route::Revoke,
        Endpoint::RestRevoke,
    ),
    (
        HEALTH_PATH,
        Method::GET,
        None,
        Route::Health,
        Endpoint::Health,
    ),
];

/// A refusal in the connector-service's `{"code", "error"}` format.
struct AppError {
    status: StatusCode,
    message: String,
}

impl AppError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        AppError {
            status,
            message: message.into(),
        }
    }

    fn into_response(self) -> Response<Body> {
        ErrorStyle::Rest.response(self.status, &self.message)
    }
}

fn classify(role: Role, method: &Method, path: &str) -> Result<(Route, Endpoint), AppError> {
    let mut path_known = false;
    for (route_path, route_method, route_role, route, endpoint) in &ROUTES {
        if *route_path != path || route_role.is_some_and(|r| r != role) {
            continue;
        }
        if route_method == method {
            return Ok((*route, *endpoint));
        }
        path_known = true;
    }
    Err(if path_known {
        AppError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.")
    } else {
        AppError::new(
            StatusCode::NOT_FOUND,
            "Requested resource could not be found.",
        )
    })
}

pub(crate) async fn handle(
    shared: &Arc<Shared>,
    role: Role,
    peer: Option<&Peer>,
    parts: &Parts,
    body: Bytes,
) -> Response<Body> {
    let classified = classify(role, &parts.method, parts.uri.path());
    let endpoint = match &classified {
        Ok((_, endpoint)) => *endpoint,
        Err(_) => Endpoint::Unknown,
    };
    let malformed = match shared.gate(&[endpoint], ErrorStyle::Rest).await {
        Gate::Answer(response) => return response,
        Gate::Proceed { malformed } => malformed,
    };
    let result = match classified {
        Err(error) => Err(error),
        Ok((route, _)) => {
            let token = query_token(parts);
            match (route, peer) {
                (Route::Info, _) => info(shared, token.as_deref()),
                (Route::Sign, _) => sign(shared, token.as_deref(), &body).await,
                (Route::Health, _) => Ok(respond::json(StatusCode::OK, &serde_json::json!({}))),
                (Route::ManagementInfo, Some(peer)) => {
                    refuse_revoked(shared, peer, route).map(|()| management_info(shared, peer))
                }
                (Route::Renew, Some(peer)) => match refuse_revoked(shared, peer, route) {
                    Ok(()) => renew(shared, peer, &body).await,
                    Err(refused) => Err(refused),
                },
                (Route::Revoke, Some(peer)) => {
                    refuse_revoked(shared, peer, route).map(|()| revoke(shared, peer))
                }
                (_, None) => Err(AppError::new(
                    StatusCode::FORBIDDEN,
                    "A client certificate is required.",
                )),
            }
        }
    };
    let response = result.unwrap_or_else(AppError::into_response);
    if malformed {
        respond::malformed(response).await
    } else {
        response
    }
}

fn query_token(parts: &Parts) -> Option<String> {
    let query = parts.uri.query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.into_owned())
}

#[derive(Serialize)]
struct CertInfo {
    subject: String,
    extensions: String,
    #[serde(rename = "key-algorithm")]
    key_algorithm: &'static str,
}

impl CertInfo {
    fn for_client(client_id: &str) -> Self {
        CertInfo {
            subject: ExpectedSubject::new(client_id).announced_rest(),
            extensions: String::new(),
            key_algorithm: "rsa2048",
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InfoApi {
    metadata_url: String,
    events_url: String,
    info_url: String,
    certificates_url: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InfoResponse {
    csr_url: String,
    api: InfoApi,
    certificate: CertInfo,
}

#[derive(Serialize)]
struct ClientIdentity {
    application: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManagementUrls {
    metadata_url: String,
    events_url: String,
    renew_cert_url: String,
    revoke_cert_url: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManagementInfoResponse {
    client_identity: ClientIdentity,
    urls: ManagementUrls,
    certificate: CertInfo,
}

#[derive(Deserialize)]
struct CsrRequest {
    csr: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CsrResponse {
    crt: String,
    client_crt: String,
    ca_crt: String,
}

impl From<SignedFields> for CsrResponse {
    fn from(fields: SignedFields) -> Self {
        CsrResponse {
            crt: fields.chain,
            client_crt: fields.client,
            ca_crt: fields.ca,
        }
    }
}

fn application_urls(shared: &Shared, application: &str) -> (String, String) {
    let base = format!("/{application}/v1");
    (
        shared
            .rest_mtls_url(&format!("{base}/metadata/services"))
            .into(),
        shared.rest_mtls_url(&format!("{base}/events")).into(),
    )
}

/// The 403 for a missing token, or a used, expired or unknown one, in the flavour's words.
fn token_refused(shared: &Shared, missing: bool) -> AppError {
    let message = match (shared.rest_flavour(), missing) {
        (RestFlavour::ConnectivityAdapter, _) => ADAPTER_UNAUTHENTICATED,
        (RestFlavour::ConnectorService, true) => REST_TOKEN_MISSING,
        (RestFlavour::ConnectorService, false) => REST_TOKEN_INVALID,
    };
    AppError::new(StatusCode::FORBIDDEN, message)
}

/// A revoked certificate's 403, where the flavour checks it: connector-service only on
/// renewals, the connectivity-adapter on every mTLS call (the gateway dropped its identity).
fn refuse_revoked(shared: &Shared, peer: &Peer, route: Route) -> Result<(), AppError> {
    if !shared.registry.is_revoked(&peer.fingerprint) {
        return Ok(());
    }
    match (shared.rest_flavour(), route) {
        (RestFlavour::ConnectivityAdapter, _) => Err(AppError::new(
            StatusCode::FORBIDDEN,
            ADAPTER_UNAUTHENTICATED,
        )),
        (RestFlavour::ConnectorService, Route::Renew) => {
            Err(AppError::new(StatusCode::FORBIDDEN, REST_REVOKED))
        }
        (RestFlavour::ConnectorService, _) => Ok(()),
    }
}

fn client_of_token(shared: &Shared, token: Option<&str>) -> Result<String, AppError> {
    let token = token.ok_or_else(|| token_refused(shared, true))?;
    shared
        .tokens
        .peek(Protocol::KymaRest, token)
        .map_err(|_| token_refused(shared, false))
}

/// `GET signingRequests/info?token=`: replaces the token with a fresh one for `csrUrl`.
fn info(shared: &Shared, token: Option<&str>) -> Result<Response<Body>, AppError> {
    let token = token.ok_or_else(|| token_refused(shared, true))?;
    // Info cannot fail once the token is valid: consuming it at once keeps the swap atomic.
    let application = shared
        .tokens
        .burn(Protocol::KymaRest, token)
        .map_err(|_| token_refused(shared, false))?;
    let fresh = shared.tokens.mint(Protocol::KymaRest, &application);
    let (metadata_url, events_url) = application_urls(shared, &application);
    let body = InfoResponse {
        csr_url: shared.rest_csr_url(&fresh).into(),
        api: InfoApi {
            metadata_url,
            events_url,
            info_url: shared.rest_mtls_url(MANAGEMENT_INFO_PATH).into(),
            certificates_url: shared.rest_token_base_url().into(),
        },
        certificate: CertInfo::for_client(&application),
    };
    Ok(respond::json(StatusCode::OK, &body))
}

async fn sign_body(
    shared: &Arc<Shared>,
    body: &[u8],
    expected: &ExpectedSubject,
    renewal: bool,
) -> Result<Response<Body>, AppError> {
    // connector-service `externalapi/signaturehandler.go`: an internal error, upstream.
    let request: CsrRequest = serde_json::from_slice(body).map_err(|error| {
        AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Error while unmarshalling request body: {error}"),
        )
    })?;
    shared.prepare_signing().await;
    match shared.sign(&request.csr, expected, Protocol::KymaRest, renewal) {
        Ok(fields) => Ok(respond::json(
            StatusCode::CREATED,
            &CsrResponse::from(fields),
        )),
        Err(SignError::Csr(error)) => Err(AppError::new(
            StatusCode::BAD_REQUEST,
            answers::rest_csr(&error),
        )),
        Err(SignError::Issue(error)) => {
            tracing::error!(%error, "signing failed");
            Err(AppError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "failed to sign the certificate",
            ))
        }
    }
}

/// `POST certificates?token=`: the token is deleted only when a certificate was issued.
async fn sign(
    shared: &Arc<Shared>,
    token: Option<&str>,
    body: &[u8],
) -> Result<Response<Body>, AppError> {
    let application = client_of_token(shared, token)?;
    let response = sign_body(shared, body, &ExpectedSubject::new(&application), false).await?;
    if let Some(token) = token {
        shared.tokens.remove(token);
    }
    Ok(response)
}

/// `GET management/info` over mTLS.
fn management_info(shared: &Shared, peer: &Peer) -> Response<Body> {
    let (metadata_url, events_url) = application_urls(shared, &peer.common_name);
    let body = ManagementInfoResponse {
        client_identity: ClientIdentity {
            application: peer.common_name.clone(),
        },
        urls: ManagementUrls {
            metadata_url,
            events_url,
            renew_cert_url: shared.rest_mtls_url(RENEWALS_PATH).into(),
            revoke_cert_url: shared.rest_mtls_url(REVOCATIONS_PATH).into(),
        },
        certificate: CertInfo::for_client(&peer.common_name),
    };
    respond::json(StatusCode::OK, &body)
}

/// `POST certificates/renewals` over mTLS (revoked certificates are refused before).
async fn renew(shared: &Arc<Shared>, peer: &Peer, body: &[u8]) -> Result<Response<Body>, AppError> {
    sign_body(shared, body, &ExpectedSubject::new(&peer.common_name), true).await
}

/// `POST certificates/revocations` over mTLS: 201 with an empty body.
fn revoke(shared: &Shared, peer: &Peer) -> Response<Body> {
    shared.registry.revoke(&peer.fingerprint);
    tracing::info!(fingerprint = %peer.fingerprint, "revoked a client certificate");
    let mut response = Response::new(respond::empty());
    *response.status_mut() = StatusCode::CREATED;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_operations_are_not_served_on_the_mtls_listener() {
        assert!(matches!(
            classify(Role::Mtls, &Method::GET, INFO_PATH),
            Err(AppError {
                status: StatusCode::NOT_FOUND,
                ..
            })
        ));
    }

    #[test]
    fn known_path_with_another_method_is_405() {
        assert!(matches!(
            classify(Role::Mtls, &Method::GET, RENEWALS_PATH),
            Err(AppError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                ..
            })
        ));
    }

    #[test]
    fn renewal_path_is_not_mistaken_for_the_certificates_path() {
        assert_eq!(
            classify(Role::Mtls, &Method::POST, RENEWALS_PATH).ok(),
            Some((Route::Renew, Endpoint::RestRenew))
        );
        assert_eq!(
            classify(Role::Token, &Method::POST, CERTIFICATES_PATH).ok(),
            Some((Route::Sign, Endpoint::RestSign))
        );
    }
}
