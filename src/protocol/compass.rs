//! The Compass / UCL connector protocol: GraphQL over HTTPS POST, token-secured for
//! enrollment and certificate-secured (mTLS) for renewal and revocation. Owns the GraphQL
//! documents and the decoding of their answers; does not build CSRs or verify results.

use reqwest::Method;
use serde_json::{Value, json};
use tracing::debug;
use url::Url;
use zeroize::Zeroizing;

use super::connector::{ConnectionFacts, Connector, IssuedPems, SigningAuth, SigningPlan};
use super::decode::{
    DecodeError, error_message, graphql_error, optional_text, parse_object, require, require_pem,
    require_text, resolve_url,
};
use super::error::{ProtocolError, RedactedUrl};
use super::http::{HttpClient, HttpSettings, Identity, Request, Response};
use crate::pki::secret::Token;

/// Learns the fresh token, the CSR subject and key algorithm, and the mTLS URL.
pub const CONFIGURATION_QUERY: &str = "query { result: configuration { token { token } certificateSigningRequestInfo { subject keyAlgorithm } managementPlaneInfo { directorURL certificateSecuredConnectorURL } } }";

/// Signs a CSR (variable `csr`: base64 of the PEM text).
pub const SIGN_CSR_MUTATION: &str = "mutation ($csr: String!) { result: signCertificateSigningRequest(csr: $csr) { certificateChain caCertificate clientCertificate } }";

/// Revokes the certificate the request is authenticated with.
pub const REVOKE_MUTATION: &str = "mutation { result: revokeCertificate }";

/// Every GraphQL document this module sends (and nothing else is ever sent).
pub const DOCUMENTS: [&str; 3] = [CONFIGURATION_QUERY, SIGN_CSR_MUTATION, REVOKE_MUTATION];

/// Talks to a Compass connector.
#[derive(Debug)]
pub struct CompassConnector {
    pub(super) http: HttpClient,
}

/// The decoded answer to [`CONFIGURATION_QUERY`].
#[derive(Debug, PartialEq)]
pub(crate) struct Configuration {
    pub token: Option<Token>,
    pub subject: String,
    pub key_algorithm: String,
    pub secured_url: Option<String>,
    pub director_url: Option<String>,
}

impl CompassConnector {
    pub fn new(http: HttpSettings) -> Result<Self, ProtocolError> {
        Ok(CompassConnector {
            http: HttpClient::new(http)?,
        })
    }

    /// POSTs one document and returns the whole answer once `errors` and the status are
    /// checked. Errors never carry `token`, even if the server echoes it.
    async fn call(
        &self,
        operation: &'static str,
        url: &Url,
        document: &'static str,
        variables: Value,
        token: Option<&Token>,
        identity: Option<&Identity>,
    ) -> Result<Value, ProtocolError> {
        debug!(
            operation,
            host = url.host_str().unwrap_or_default(),
            mtls = identity.is_some(),
            "compass request"
        );
        let body = json!({ "query": document, "variables": variables });
        let json = Zeroizing::new(body.to_string().into_bytes());
        let outcome = self
            .http
            .execute(Request {
                operation,
                method: Method::POST,
                url,
                json: Some(json),
                connector_token: token,
                identity,
            })
            .await
            .and_then(|response| interpret(&response));
        outcome.map_err(|e| match token {
            Some(t) => e.scrub(t.expose()),
            None => e,
        })
    }
}

/// Checks the HTTP status and the GraphQL `errors` of a response; returns the parsed body.
pub(crate) fn interpret(response: &Response) -> Result<Value, ProtocolError> {
    let status = response.status.as_u16();
    if response.status.is_success() {
        let body = parse_object(&response.body).map_err(|e| e.at(&response.url, false))?;
        if let Some(message) = graphql_error(&body) {
            return Err(DecodeError::GraphQl(message).at(&response.url, response.mtls));
        }
        require(&body, &["data", "result"]).map_err(|e| e.at(&response.url, false))?;
        return Ok(body);
    }
    if status == 422 {
        let message = error_message(&response.body)
            .unwrap_or_else(|| "the connector rejected the request as invalid".into());
        return Err(DecodeError::GraphQl(message).at(&response.url, false));
    }
    Err(response.status_error())
}

pub(crate) fn decode_configuration(body: &Value) -> Result<Configuration, DecodeError> {
    let token = optional_text(body, &["data", "result", "token", "token"])?.map(Token::new);
    let subject = require_text(
        body,
        &["data", "result", "certificateSigningRequestInfo", "subject"],
    )?;
    let key_algorithm = require_text(
        body,
        &[
            "data",
            "result",
            "certificateSigningRequestInfo",
            "keyAlgorithm",
        ],
    )?;
    let secured_url = optional_text(
        body,
        &[
            "data",
            "result",
            "managementPlaneInfo",
            "certificateSecuredConnectorURL",
        ],
    )?;
    let director_url = optional_text(
        body,
        &["data", "result", "managementPlaneInfo", "directorURL"],
    )?;
    Ok(Configuration {
        token,
        subject: subject.to_owned(),
        key_algorithm: key_algorithm.to_owned(),
        secured_url: secured_url.map(str::to_owned),
        director_url: director_url.map(str::to_owned),
    })
}

pub(crate) fn decode_certification(body: &Value) -> Result<IssuedPems, DecodeError> {
    Ok(IssuedPems {
        client_pem: require_pem(body, &["data", "result", "clientCertificate"])?,
        ca_pem: require_pem(body, &["data", "result", "caCertificate"])?,
        chain_pem: require_pem(body, &["data", "result", "certificateChain"])?,
    })
}

pub(crate) fn decode_revocation(body: &Value) -> Result<bool, DecodeError> {
    require(body, &["data", "result"])?
        .as_bool()
        .ok_or_else(|| DecodeError::WrongType {
            path: "data.result".into(),
            expected: "a boolean",
        })
}

const CONFIGURATION_DIRECTOR_URL: [&str; 4] =
    ["data", "result", "managementPlaneInfo", "directorURL"];

const CONFIGURATION_SECURED_URL: [&str; 4] = [
    "data",
    "result",
    "managementPlaneInfo",
    "certificateSecuredConnectorURL",
];

impl CompassConnector {
    /// Runs the configuration query and turns it into a plan; `identity` set for renewal.
    async fn configuration(
        &self,
        url: &Url,
        token: Option<&Token>,
        identity: Option<&Identity>,
    ) -> Result<SigningPlan, ProtocolError> {
        let safe = url.into();
        let mtls = identity.is_some();
        let body = self
            .call(
                "configuration",
                url,
                CONFIGURATION_QUERY,
                json!({}),
                token,
                identity,
            )
            .await?;
        let scrub = |e: ProtocolError| match token {
            Some(t) => e.scrub(t.expose()),
            None => e,
        };
        let config = decode_configuration(&body).map_err(|e| scrub(e.at(&safe, false)))?;
        let renewal_url = config
            .secured_url
            .as_deref()
            .map(|text| resolve_url(url, text, &CONFIGURATION_SECURED_URL))
            .transpose()
            .map_err(|e| e.at(&safe, false))?;
        let mut facts = ConnectionFacts::default();
        if let Some(secured) = &renewal_url {
            facts
                .urls
                .insert("certificateSecuredConnectorURL".into(), secured.clone());
        }
        if let Some(text) = config.director_url.as_deref() {
            // The Director URL is a fact for consumers, not needed to renew: an unusable
            // one is left out rather than failing the renewal.
            match resolve_url(url, text, &CONFIGURATION_DIRECTOR_URL) {
                Ok(director) => {
                    facts.urls.insert("directorURL".into(), director);
                }
                Err(e) => debug!(error = %e, "ignoring an unusable directorURL"),
            }
        }
        let auth = if mtls {
            SigningAuth::ClientCertificate
        } else {
            match config.token {
                Some(fresh) => SigningAuth::ConnectorToken(fresh),
                None => {
                    return Err(
                        DecodeError::Missing("data.result.token.token".into()).at(&safe, false)
                    );
                }
            }
        };
        debug!(
            host = url.host_str().unwrap_or_default(),
            subject = %config.subject,
            key_algorithm = %config.key_algorithm,
            renewal_url = ?renewal_url.as_ref().map(RedactedUrl::new),
            "compass configuration received"
        );
        Ok(SigningPlan {
            subject: config.subject,
            key_algorithm: Some(config.key_algorithm),
            sign_url: url.clone(),
            auth,
            renewal_url: if mtls {
                renewal_url.or_else(|| Some(url.clone()))
            } else {
                renewal_url
            },
            facts,
        })
    }
}

impl Connector for CompassConnector {
    async fn begin_enroll(
        &self,
        url: &Url,
        token: Option<&Token>,
    ) -> Result<SigningPlan, ProtocolError> {
        let token = match token {
            Some(t) if !t.is_empty() => t,
            _ => return Err(ProtocolError::MissingToken { url: url.into() }),
        };
        self.http.check_url(url)?;
        self.configuration(url, Some(token), None).await
    }

    async fn begin_renew(
        &self,
        renewal_url: &Url,
        identity: &Identity,
    ) -> Result<SigningPlan, ProtocolError> {
        self.configuration(renewal_url, None, Some(identity)).await
    }

    async fn sign(
        &self,
        plan: &SigningPlan,
        csr_base64: &str,
        identity: Option<&Identity>,
    ) -> Result<IssuedPems, ProtocolError> {
        let url = &plan.sign_url;
        let (token, identity) = match &plan.auth {
            SigningAuth::ConnectorToken(token) => (Some(token), None),
            SigningAuth::TokenInUrl => (None, None),
            SigningAuth::ClientCertificate => match identity {
                Some(identity) => (None, Some(identity)),
                None => {
                    return Err(ProtocolError::MissingIdentity {
                        url: url.into(),
                        operation: "sign a certificate",
                    });
                }
            },
        };
        let body = self
            .call(
                "sign",
                url,
                SIGN_CSR_MUTATION,
                json!({ "csr": csr_base64 }),
                token,
                identity,
            )
            .await?;
        let pems = decode_certification(&body).map_err(|e| e.at(&url.into(), false))?;
        debug!(
            host = url.host_str().unwrap_or_default(),
            "compass certificate issued"
        );
        Ok(pems)
    }

    async fn revoke(&self, renewal_url: &Url, identity: &Identity) -> Result<(), ProtocolError> {
        let body = self
            .call(
                "revoke",
                renewal_url,
                REVOKE_MUTATION,
                json!({}),
                None,
                Some(identity),
            )
            .await?;
        match decode_revocation(&body) {
            Ok(true) => {
                debug!(
                    host = renewal_url.host_str().unwrap_or_default(),
                    "compass certificate revoked"
                );
                Ok(())
            }
            Ok(false) => Err(ProtocolError::RevocationNotConfirmed {
                url: renewal_url.into(),
            }),
            Err(e) => Err(e.at(&renewal_url.into(), false)),
        }
    }
}

#[cfg(test)]
#[path = "compass_tests.rs"]
mod tests;
