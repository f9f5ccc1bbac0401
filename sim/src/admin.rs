//! The plain-HTTP loopback admin API: mint tokens, inspect issued certificates, revocations
//! and counters, switch faults. Not subject to faults and not counted. Does not serve the
//! connector protocols.

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;

use crate::answers::RestFlavour;
use crate::fault::ActiveFault;
use crate::respond::{self, Body};
use crate::shared::Shared;
use crate::tokens::Protocol;

#[derive(Serialize)]
struct Minted {
    token: String,
    url: String,
}

/// A one-time token in the three forms the Compass Director returns for an application
/// (`OneTimeTokenForApplication` and its `raw` / `rawEncoded` extension).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct DirectorToken {
    pub token: String,
    /// The token-secured Compass connector URL.
    #[serde(rename = "connectorURL")]
    pub connector_url: String,
    /// The REST adapter's configuration URL with the token:
    /// `.../v1/applications/signingRequests/info?token=..`.
    #[serde(rename = "legacyConnectorURL")]
    pub legacy_connector_url: String,
    /// `{"token":..,"connectorURL":..}` as JSON text.
    pub raw: String,
    /// Standard padded base64 of `raw`.
    #[serde(rename = "rawEncoded")]
    pub raw_encoded: String,
}

#[derive(Serialize)]
struct Index {
    app: String,
    compass_token_url: String,
    compass_mtls_url: String,
    rest_management_info_url: String,
    server_ca_path: String,
    client_ca_path: String,
    endpoints: [&'static str; 12],
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    respond::json(status, &serde_json::json!({"error": message}))
}

fn no_content() -> Response<Body> {
    let mut response = Response::new(respond::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

fn query_value(request: &Request<Incoming>, key: &str) -> Option<String> {
    let query = request.uri().query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Serves one admin request.
pub(crate) async fn route(shared: &Shared, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = request.method().clone();
    match (&method, segments.as_slice()) {
        (&Method::GET, []) => respond::json(StatusCode::OK, &index(shared)),
        (&Method::GET, ["server-ca.pem"]) => pem(shared.authority.server_ca_pem()),
        (&Method::GET, ["client-ca.pem"]) => pem(shared.authority.client_ca_pem()),
        (&Method::POST, ["tokens", "director"]) => {
            let client_id =
                query_value(&request, "client_id").unwrap_or_else(|| shared.app.clone());
            respond::json(StatusCode::CREATED, &mint_director(shared, &client_id))
        }
        (&Method::POST, ["tokens", protocol]) => {
            let protocol = match *protocol {
                "compass" => Protocol::Compass,
                "kyma-rest" => Protocol::KymaRest,
                _ => return error(StatusCode::NOT_FOUND, "protocol is compass or kyma-rest"),
            };
            let client_id =
                query_value(&request, "client_id").unwrap_or_else(|| shared.app.clone());
            respond::json(
                StatusCode::CREATED,
                &mint_json(shared, protocol, &client_id),
            )
        }
        (&Method::POST, ["ca", "rollover"]) => match shared.authority.announce_next_ca() {
            Ok(pem) => {
                tracing::info!("announced a next client CA in every CA bundle");
                respond::json(
                    StatusCode::CREATED,
                    &serde_json::json!({"next_ca_pem": pem}),
                )
            }
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        },
        (&Method::GET, ["certificates"]) => {
            respond::json(StatusCode::OK, &shared.registry.issued())
        }
        (&Method::GET, ["certificates", fingerprint]) => {
            match shared.registry.find_issued(fingerprint) {
                Some(certificate) => respond::json(StatusCode::OK, &certificate),
                None => error(
                    StatusCode::NOT_FOUND,
                    "no certificate with this fingerprint",
                ),
            }
        }
        (&Method::GET, ["revocations"]) => {
            respond::json(StatusCode::OK, &shared.registry.revoked())
        }
        (&Method::POST, ["revocations", fingerprint]) => {
            if !is_fingerprint(fingerprint) {
                return error(StatusCode::BAD_REQUEST, FINGERPRINT_FORMAT);
            }
            shared.registry.revoke(fingerprint);
            no_content()
        }
        (&Method::DELETE, ["revocations", fingerprint]) => {
            if !is_fingerprint(fingerprint) {
                return error(StatusCode::BAD_REQUEST, FINGERPRINT_FORMAT);
            }
            if shared.registry.unrevoke(fingerprint) {
                no_content()
            } else {
                error(StatusCode::NOT_FOUND, "this fingerprint is not revoked")
            }
        }
        (&Method::GET, ["rest-flavour"]) => respond::json(StatusCode::OK, &shared.rest_flavour()),
        (&Method::PUT, ["rest-flavour"]) => {
            let body = match respond::read_body(request.into_body()).await {
                Ok(body) => body,
                Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
            };
            match serde_json::from_slice::<RestFlavour>(&body) {
                Ok(flavour) => {
                    shared.set_rest_flavour(flavour);
                    no_content()
                }
                Err(_) => error(
                    StatusCode::BAD_REQUEST,
                    "expected \"connector-service\" or \"connectivity-adapter\"",
                ),
            }
        }
        (&Method::GET, ["fault"]) => respond::json(StatusCode::OK, &shared.faults.current()),
        (&Method::PUT, ["fault"]) => {
            let body = match respond::read_body(request.into_body()).await {
                Ok(body) => body,
                Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
            };
            match serde_json::from_slice::<ActiveFault>(&body) {
                Ok(active) => {
                    tracing::info!(fault = ?active.fault, scope = ?active.scope, "fault set");
                    shared.faults.set(active.fault, active.scope);
                    no_content()
                }
                Err(e) => error(
                    StatusCode::BAD_REQUEST,
                    &format!("expected {{\"fault\": {{\"kind\": ..}}, \"scope\": ..}}: {e}"),
                ),
            }
        }
        (&Method::DELETE, ["fault"]) => {
            shared.faults.clear();
            no_content()
        }
        (&Method::GET, ["counters"]) => respond::json(StatusCode::OK, &shared.registry.counts()),
        _ => error(
            StatusCode::NOT_FOUND,
            "unknown admin endpoint; GET / lists them",
        ),
    }
}

const FINGERPRINT_FORMAT: &str = "a fingerprint is 64 hex digits (sha-256)";

fn is_fingerprint(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn pem(text: &str) -> Response<Body> {
    respond::with_body(
        StatusCode::OK,
        "application/x-pem-file",
        respond::full(text.to_owned()),
    )
}

/// A token for `client_id` and the URL a client starts with.
pub(crate) fn mint(shared: &Shared, protocol: Protocol, client_id: &str) -> (String, url::Url) {
    let token = shared.tokens.mint(protocol, client_id);
    let url = match protocol {
        Protocol::Compass => shared.compass_token_url(),
        Protocol::KymaRest => shared.rest_info_url(&token),
    };
    (token, url)
}

/// A Director token for `client_id`, usable once at either connector.
pub(crate) fn mint_director(shared: &Shared, client_id: &str) -> DirectorToken {
    use base64::Engine as _;
    let token = shared.tokens.mint_director(client_id);
    let connector_url = shared.compass_token_url().to_string();
    let raw = serde_json::json!({
        "token": token,
        "connectorURL": connector_url,
        "used": false,
        "type": "Application",
    })
    .to_string();
    DirectorToken {
        legacy_connector_url: shared.rest_info_url(&token).into(),
        raw_encoded: base64::engine::general_purpose::STANDARD.encode(&raw),
        raw,
        connector_url,
        token,
    }
}

fn mint_json(shared: &Shared, protocol: Protocol, client_id: &str) -> Minted {
    let (token, url) = mint(shared, protocol, client_id);
    Minted {
        token,
        url: url.into(),
    }
}

fn index(shared: &Shared) -> Index {
    Index {
        app: shared.app.clone(),
        compass_token_url: shared.compass_token_url().into(),
        compass_mtls_url: shared.compass_mtls_url().into(),
        rest_management_info_url: shared
            .rest_mtls_url("/v1/applications/management/info")
            .into(),
        server_ca_path: shared.server_ca_path().display().to_string(),
        client_ca_path: shared.client_ca_path().display().to_string(),
        endpoints: [
            "GET /server-ca.pem",
            "GET /client-ca.pem",
            "POST /tokens/{compass|kyma-rest}[?client_id=]",
            "POST /tokens/director[?client_id=] (token, rawEncoded, legacyConnectorURL)",
            "POST /ca/rollover (a next CA joins every returned CA bundle)",
            "GET /certificates[/{fingerprint}]",
            "GET /revocations",
            "POST|DELETE /revocations/{fingerprint}",
            "GET|PUT|DELETE /fault",
            "GET|PUT /rest-flavour (\"connector-service\" or \"connectivity-adapter\")",
            "GET /counters",
            "GET /",
        ],
    }
}
