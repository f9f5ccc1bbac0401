//! The Kyma Application Connector REST protocol (connector-service and Compass's
//! connectivity adapter): `signingRequests/info` + `csrUrl` for enrollment,
//! `management/info` + `renewCertUrl` / `revokeCertUrl` over mTLS. Owns the decoding of
//! its JSON answers; does not build CSRs or verify results.

use reqwest::Method;
use serde_json::{Value, json};
use tracing::debug;
use url::Url;
use zeroize::Zeroizing;

use super::connector::{ConnectionFacts, Connector, IssuedPems, SigningAuth, SigningPlan};
use super::decode::{
    DecodeError, optional_text, parse_object, require_pem, require_text, resolve_url,
};
use super::error::{ProtocolError, RedactedUrl};
use super::http::{HttpClient, HttpSettings, Identity, Request, Response};
use crate::pki::secret::Token;

/// Talks to a Kyma connector-service (or anything serving the same REST API).
#[derive(Debug)]
pub struct RestConnector {
    pub(super) http: HttpClient,
}

/// The decoded answer of `GET signingRequests/info?token=`.
#[derive(Debug, PartialEq)]
pub(crate) struct SigningInfo {
    pub csr_url: String,
    pub info_url: Option<String>,
    pub subject: String,
    pub key_algorithm: Option<String>,
    /// `api.*` URLs for consumers, by name (`csrUrl`, which carries a token, is not one).
    pub urls: Vec<(&'static str, String)>,
}

/// The decoded answer of `GET management/info` (fields checked where they are needed).
#[derive(Debug, PartialEq)]
pub(crate) struct ManagementInfo {
    pub renew_url: Option<String>,
    pub revoke_url: Option<String>,
    pub subject: Option<String>,
    pub key_algorithm: Option<String>,
    /// `clientIdentity.application`.
    pub application: Option<String>,
    /// `urls.*` for consumers, by name.
    pub urls: Vec<(&'static str, String)>,
}

/// The URL fields of `signingRequests/info`'s `api` object that consumers may need.
const API_URLS: [&str; 4] = ["metadataUrl", "eventsUrl", "certificatesUrl", "infoUrl"];
/// The URL fields of `management/info`'s `urls` object.
const MANAGEMENT_URLS: [&str; 4] = ["metadataUrl", "eventsUrl", "renewCertUrl", "revokeCertUrl"];

/// The text fields `object.<name>` present in `body`, for each of `names`.
fn url_fields(
    body: &Value,
    object: &str,
    names: &[&'static str],
) -> Result<Vec<(&'static str, String)>, DecodeError> {
    let mut found = Vec::new();
    for name in names {
        if let Some(text) = optional_text(body, &[object, name])? {
            found.push((*name, text.to_owned()));
        }
    }
    Ok(found)
}

/// Resolves the URL facts against the URL they came from; an unusable one is left out
/// (consumers' URLs are not needed to renew, so they never fail a renewal).
fn facts(
    base: &Url,
    client_id: Option<String>,
    urls: &[(&'static str, String)],
) -> ConnectionFacts {
    let mut facts = ConnectionFacts {
        client_id,
        ..ConnectionFacts::default()
    };
    for (name, text) in urls {
        match resolve_url(base, text, &[name]) {
            Ok(url) => {
                facts.urls.insert((*name).to_owned(), url);
            }
            Err(e) => debug!(error = %e, "ignoring an unusable url"),
        }
    }
    facts
}

pub(crate) fn decode_signing_info(body: &Value) -> Result<SigningInfo, DecodeError> {
    Ok(SigningInfo {
        csr_url: require_text(body, &["csrUrl"])?.to_owned(),
        info_url: optional_text(body, &["api", "infoUrl"])?.map(str::to_owned),
        subject: require_text(body, &["certificate", "subject"])?.to_owned(),
        key_algorithm: optional_text(body, &["certificate", "key-algorithm"])?.map(str::to_owned),
        urls: url_fields(body, "api", &API_URLS)?,
    })
}

pub(crate) fn decode_management_info(body: &Value) -> Result<ManagementInfo, DecodeError> {
    Ok(ManagementInfo {
        renew_url: optional_text(body, &["urls", "renewCertUrl"])?.map(str::to_owned),
        revoke_url: optional_text(body, &["urls", "revokeCertUrl"])?.map(str::to_owned),
        subject: optional_text(body, &["certificate", "subject"])?.map(str::to_owned),
        key_algorithm: optional_text(body, &["certificate", "key-algorithm"])?.map(str::to_owned),
        application: optional_text(body, &["clientIdentity", "application"])?.map(str::to_owned),
        urls: url_fields(body, "urls", &MANAGEMENT_URLS)?,
    })
}

pub(crate) fn decode_certificates(body: &Value) -> Result<IssuedPems, DecodeError> {
    Ok(IssuedPems {
        client_pem: require_pem(body, &["clientCrt"])?,
        ca_pem: require_pem(body, &["caCrt"])?,
        chain_pem: require_pem(body, &["crt"])?,
    })
}

/// Fails on any non-2xx status (see [`Response::status_error`]).
pub(crate) fn check_status(response: &Response) -> Result<(), ProtocolError> {
    if response.status.is_success() {
        return Ok(());
    }
    Err(response.status_error())
}

/// Checks the status and parses the JSON object body.
pub(crate) fn interpret(response: &Response) -> Result<Value, ProtocolError> {
    check_status(response)?;
    parse_object(&response.body).map_err(|e| e.at(&response.url, false))
}

/// The configuration URL with its `token` query parameter set to `token` (replacing any).
pub(crate) fn with_token(url: &Url, token: &Token) -> Url {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| key != "token")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut out = url.clone();
    out.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("token", token.expose());
    out
}

/// The `token` query parameter of `url`, if any (to keep it out of error messages).
fn url_token(url: &Url) -> Option<Token> {
    url.query_pairs()
        .find(|(key, _)| key == "token")
        .map(|(_, value)| Token::new(value.into_owned()))
}

fn scrubbed(err: ProtocolError, url: &Url) -> ProtocolError {
    match url_token(url) {
        Some(token) => err.scrub(token.expose()),
        None => err,
    }
}

impl RestConnector {
    pub fn new(http: HttpSettings) -> Result<Self, ProtocolError> {
        Ok(RestConnector {
            http: HttpClient::new(http)?,
        })
    }

    async fn send(
        &self,
        operation: &'static str,
        method: Method,
        url: &Url,
        json: Option<Value>,
        identity: Option<&Identity>,
    ) -> Result<Response, ProtocolError> {
        debug!(
            operation,
            host = url.host_str().unwrap_or_default(),
            mtls = identity.is_some(),
            "kyma-rest request"
        );
        self.http
            .execute(Request {
                operation,
                method,
                url,
                json: json.map(|v| Zeroizing::new(v.to_string().into_bytes())),
                connector_token: None,
                identity,
            })
            .await
    }

    /// `GET management/info` over mTLS.
    async fn management_info(
        &self,
        info_url: &Url,
        identity: &Identity,
    ) -> Result<ManagementInfo, ProtocolError> {
        let response = self
            .send(
                "management-info",
                Method::GET,
                info_url,
                None,
                Some(identity),
            )
            .await?;
        let body = interpret(&response)?;
        decode_management_info(&body).map_err(|e| e.at(&response.url, false))
    }
}

fn required_url(
    base: &Url,
    value: Option<String>,
    path: &[&str],
    from: &RedactedUrl,
) -> Result<Url, ProtocolError> {
    let text = value.ok_or_else(|| DecodeError::Missing(path.join(".")).at(from, false))?;
    resolve_url(base, &text, path).map_err(|e| e.at(from, false))
}

impl Connector for RestConnector {
    async fn begin_enroll(
        &self,
        url: &Url,
        token: Option<&Token>,
    ) -> Result<SigningPlan, ProtocolError> {
        let url = match token {
            Some(token) if !token.is_empty() => with_token(url, token),
            _ => url.clone(),
        };
        if url_token(&url).is_none_or(|t| t.is_empty()) {
            return Err(ProtocolError::MissingToken { url: (&url).into() });
        }
        let outcome = async {
            let response = self
                .send("signing-info", Method::GET, &url, None, None)
                .await?;
            let body = interpret(&response)?;
            let info = decode_signing_info(&body).map_err(|e| e.at(&response.url, false))?;
            let sign_url = resolve_url(&url, &info.csr_url, &["csrUrl"])
                .map_err(|e| e.at(&response.url, false))?;
            let renewal_url = info
                .info_url
                .as_deref()
                .map(|text| resolve_url(&url, text, &["api", "infoUrl"]))
                .transpose()
                .map_err(|e| e.at(&response.url, false))?;
            debug!(
                host = url.host_str().unwrap_or_default(),
                subject = %info.subject,
                renewal_url = ?renewal_url.as_ref().map(RedactedUrl::new),
                "kyma-rest signing information received"
            );
            let facts = facts(&url, None, &info.urls);
            Ok(SigningPlan {
                subject: info.subject,
                key_algorithm: info.key_algorithm,
                sign_url,
                auth: SigningAuth::TokenInUrl,
                renewal_url,
                facts,
            })
        }
        .await;
        outcome.map_err(|e| scrubbed(e, &url))
    }

    async fn begin_renew(
        &self,
        renewal_url: &Url,
        identity: &Identity,
    ) -> Result<SigningPlan, ProtocolError> {
        let from = RedactedUrl::new(renewal_url);
        let info = self.management_info(renewal_url, identity).await?;
        let sign_url = required_url(
            renewal_url,
            info.renew_url,
            &["urls", "renewCertUrl"],
            &from,
        )?;
        let subject = info
            .subject
            .ok_or_else(|| DecodeError::Missing("certificate.subject".into()).at(&from, false))?;
        let mut facts = facts(renewal_url, info.application, &info.urls);
        facts.urls.insert("infoUrl".into(), renewal_url.clone());
        Ok(SigningPlan {
            subject,
            key_algorithm: info.key_algorithm,
            sign_url,
            auth: SigningAuth::ClientCertificate,
            renewal_url: Some(renewal_url.clone()),
            facts,
        })
    }

    async fn sign(
        &self,
        plan: &SigningPlan,
        csr_base64: &str,
        identity: Option<&Identity>,
    ) -> Result<IssuedPems, ProtocolError> {
        let url = &plan.sign_url;
        let identity = match plan.auth {
            SigningAuth::ClientCertificate => match identity {
                Some(identity) => Some(identity),
                None => {
                    return Err(ProtocolError::MissingIdentity {
                        url: url.into(),
                        operation: "renew a certificate",
                    });
                }
            },
            SigningAuth::TokenInUrl | SigningAuth::ConnectorToken(_) => None,
        };
        let outcome = async {
            let response = self
                .send(
                    "sign",
                    Method::POST,
                    url,
                    Some(json!({ "csr": csr_base64 })),
                    identity,
                )
                .await?;
            let body = interpret(&response)?;
            decode_certificates(&body).map_err(|e| e.at(&response.url, false))
        }
        .await;
        let pems = outcome.map_err(|e| scrubbed(e, url))?;
        debug!(
            host = url.host_str().unwrap_or_default(),
            "kyma-rest certificate issued"
        );
        Ok(pems)
    }

    async fn revoke(&self, renewal_url: &Url, identity: &Identity) -> Result<(), ProtocolError> {
        let from = RedactedUrl::new(renewal_url);
        let info = self.management_info(renewal_url, identity).await?;
        let revoke_url = required_url(
            renewal_url,
            info.revoke_url,
            &["urls", "revokeCertUrl"],
            &from,
        )?;
        let response = self
            .send("revoke", Method::POST, &revoke_url, None, Some(identity))
            .await?;
        check_status(&response)?;
        debug!(
            host = revoke_url.host_str().unwrap_or_default(),
            "kyma-rest certificate revoked"
        );
        Ok(())
    }
}

#[cfg(test)]
#[path = "rest_tests.rs"]
mod tests;
