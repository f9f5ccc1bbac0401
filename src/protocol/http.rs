//! The one HTTPS client both connector protocols use: trust settings, mutual TLS identity,
//! per-request timeout, a hard cap on response size, and safe request logging. Does not
//! know about GraphQL or REST payloads.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tracing::trace;
use url::Url;
use zeroize::Zeroizing;

use super::error::{ProtocolError, RedactedUrl, describe_chain};
use super::proxy::{self, ProxySetting, ShownProxy};
use super::server_date::{ServerDate, parse_http_date};
use crate::pki::secret::Token;

/// Largest response body read from a connector; anything longer is an error.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Sent on every request.
pub const USER_AGENT: &str = concat!("kyma-certd/", env!("CARGO_PKG_VERSION"));

/// How to reach a connector.
#[derive(Clone)]
pub struct HttpSettings {
    /// PEM bundle: when set, the connector's TLS certificate must chain to one of these
    /// (and nothing else is trusted); when `None`, the system roots are used.
    pub server_ca_pem: Option<Vec<u8>>,
    /// Bound on a whole request: connect, TLS, sending, and reading the full response.
    pub timeout: Duration,
    /// Allow `http://` URLs (tests, local simulators). Off: such URLs are refused.
    pub allow_insecure_http: bool,
    /// How to reach the connector: the environment's proxy variables, directly, or
    /// through a configured proxy (which then ignores the environment).
    pub proxy: ProxySetting,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            server_ca_pem: None,
            timeout: Duration::from_secs(30),
            allow_insecure_http: false,
            proxy: ProxySetting::Environment,
        }
    }
}

impl fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSettings")
            .field(
                "server_ca_pem",
                &self
                    .server_ca_pem
                    .as_ref()
                    .map(|p| format!("<{} bytes>", p.len())),
            )
            .field("timeout", &self.timeout)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("proxy", &ShownProxy(&self.proxy))
            .finish()
    }
}

/// The client certificate chain and private key used for mutual TLS.
pub struct Identity {
    chain_pem: String,
    key_pem: Zeroizing<String>,
}

impl Identity {
    /// `chain_pem`: the client certificate first, then any intermediates. `key_pem`: its
    /// private key (PKCS#8, PKCS#1 RSA or SEC1 EC, unencrypted).
    pub fn new(chain_pem: impl Into<String>, key_pem: Zeroizing<String>) -> Self {
        Identity {
            chain_pem: chain_pem.into(),
            key_pem,
        }
    }

    pub fn chain_pem(&self) -> &str {
        &self.chain_pem
    }

    fn to_reqwest(&self) -> Result<reqwest::Identity, ProtocolError> {
        let mut both = Zeroizing::new(Vec::with_capacity(
            self.chain_pem.len() + self.key_pem.len() + 1,
        ));
        both.extend_from_slice(self.chain_pem.as_bytes());
        both.push(b'\n');
        both.extend_from_slice(self.key_pem.as_bytes());
        reqwest::Identity::from_pem(&both).map_err(|e| ProtocolError::Identity {
            detail: describe_chain(&e),
        })
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field(
                "chain_pem",
                &format_args!("<{} bytes>", self.chain_pem.len()),
            )
            .field("key_pem", &format_args!("<redacted>"))
            .finish()
    }
}

/// One request to a connector.
pub(crate) struct Request<'a> {
    /// The protocol step, for logs ("configuration", "sign", ...).
    pub operation: &'static str,
    pub method: Method,
    pub url: &'a Url,
    /// A JSON body, sent with `Content-Type: application/json`.
    pub json: Option<Zeroizing<Vec<u8>>>,
    /// Sent as the `Connector-Token` header (Compass).
    pub connector_token: Option<&'a Token>,
    /// Authenticates with this client certificate (mutual TLS).
    pub identity: Option<&'a Identity>,
}

/// A complete response, body read in full (within [`MAX_BODY_BYTES`]).
#[derive(Debug)]
pub(crate) struct Response {
    pub status: StatusCode,
    pub body: Bytes,
    pub url: RedactedUrl,
    /// The request was authenticated with a client certificate.
    pub mtls: bool,
}

impl Response {
    /// The error for a non-2xx answer, with the server's message when it sent one, and
    /// whether the body is in the connector's own error format (what tells the connector's
    /// 403 "revoked" from a gateway's). Same rule for both protocols.
    pub(crate) fn status_error(&self) -> ProtocolError {
        let status = self.status.as_u16();
        let from_connector = super::decode::is_connector_error(&self.body, status);
        let message = super::decode::error_message(&self.body).or_else(|| {
            // A gateway's plain-text refusal ("RBAC: access denied") tells the operator
            // where to look; other plain bodies stay out of the error, as before.
            (self.mtls && !from_connector && matches!(status, 401 | 403 | 407))
                .then(|| super::decode::text_excerpt(&self.body))
                .flatten()
        });
        ProtocolError::Status {
            url: self.url.clone(),
            status,
            message,
            mtls: self.mtls,
            from_connector,
        }
    }
}

/// Sends requests with the configured trust, timeout and limits.
pub(crate) struct HttpClient {
    settings: HttpSettings,
    roots: Option<Vec<reqwest::Certificate>>,
    /// For calls without a client certificate; mTLS calls build their own client.
    anonymous: reqwest::Client,
    /// The `Date` header of the last response, with the local time it arrived at.
    last_date: std::sync::Mutex<Option<ServerDate>>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    pub(crate) fn new(settings: HttpSettings) -> Result<Self, ProtocolError> {
        let roots = settings
            .server_ca_pem
            .as_deref()
            .map(parse_server_ca)
            .transpose()?;
        let anonymous = build_client(&settings, roots.as_deref(), None)?;
        Ok(HttpClient {
            settings,
            roots,
            anonymous,
            last_date: std::sync::Mutex::new(None),
        })
    }

    /// The `Date` header of the last response received, if it had a valid one.
    pub(crate) fn last_server_date(&self) -> Option<ServerDate> {
        *self
            .last_date
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Refuses URLs this client must not call.
    pub(crate) fn check_url(&self, url: &Url) -> Result<(), ProtocolError> {
        match url.scheme() {
            "https" => Ok(()),
            "http" if self.settings.allow_insecure_http => Ok(()),
            "http" => Err(ProtocolError::InsecureUrl { url: url.into() }),
            _ => Err(ProtocolError::UnsupportedScheme { url: url.into() }),
        }
    }

    /// Sends `request` and reads the whole response, all within the configured timeout.
    pub(crate) async fn execute(&self, request: Request<'_>) -> Result<Response, ProtocolError> {
        self.check_url(request.url)?;
        let url = request.url;
        // Only an answer over TLS to our certificate says anything about it: with
        // `allow_insecure_http` anyone on the path could have written a "revoked".
        let mtls = request.identity.is_some() && url.scheme() == "https";
        let client = match request.identity {
            Some(identity) => build_client(&self.settings, self.roots.as_deref(), Some(identity))?,
            None => self.anonymous.clone(),
        };
        let mut builder = client
            .request(request.method.clone(), url.clone())
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(token) = request.connector_token {
            let mut value =
                HeaderValue::from_str(token.expose()).map_err(|_| ProtocolError::InvalidToken)?;
            value.set_sensitive(true);
            builder = builder.header("Connector-Token", value);
        }
        let sent_bytes = request.json.as_ref().map_or(0, |b| b.len());
        if let Some(json) = request.json {
            builder = builder
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(json.to_vec());
        }

        let timeout = self.settings.timeout;
        let started = Instant::now();
        let exchange = async {
            let response = builder
                .send()
                .await
                .map_err(|e| ProtocolError::from_transport(e, url, timeout, mtls))?;
            let status = response.status();
            if let Some(server) = response
                .headers()
                .get(reqwest::header::DATE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_http_date)
            {
                *self
                    .last_date
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ServerDate {
                    server,
                    local: std::time::SystemTime::now(),
                });
            }
            let body = read_capped(response, url, timeout, mtls).await?;
            Ok::<_, ProtocolError>((status, body))
        };
        let outcome = tokio::time::timeout(timeout, exchange).await;
        let safe = RedactedUrl::new(url);
        let (status, body) = match outcome {
            Ok(Ok(done)) => done,
            Ok(Err(err)) => {
                trace!(
                    method = %request.method,
                    url = %safe,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    sent_bytes,
                    error = %err,
                    "connector request failed"
                );
                return Err(err);
            }
            Err(_) => {
                trace!(method = %request.method, url = %safe, "connector request timed out");
                return Err(ProtocolError::Timeout { url: safe, timeout });
            }
        };
        trace!(
            operation = request.operation,
            method = %request.method,
            url = %safe,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            sent_bytes,
            body_bytes = body.len(),
            "connector response"
        );
        Ok(Response {
            status,
            body,
            url: safe,
            mtls,
        })
    }
}

/// A client with the settings' trust and timeout, redirects off, and `identity` for mTLS.
fn build_client(
    settings: &HttpSettings,
    roots: Option<&[reqwest::Certificate]>,
    identity: Option<&Identity>,
) -> Result<reqwest::Client, ProtocolError> {
    let timeout = settings.timeout;
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .https_only(!settings.allow_insecure_http);
    if let Some(roots) = roots {
        builder = builder.tls_certs_only(roots.iter().cloned());
    }
    builder = proxy::configure(builder, &settings.proxy)?;
    if let Some(identity) = identity {
        builder = builder.identity(identity.to_reqwest()?);
    }
    builder.build().map_err(|e| ProtocolError::Client {
        detail: describe_chain(&e.without_url()),
    })
}

/// Reads the body chunk by chunk and gives up as soon as it passes [`MAX_BODY_BYTES`].
async fn read_capped(
    mut response: reqwest::Response,
    url: &Url,
    timeout: Duration,
    mtls: bool,
) -> Result<Bytes, ProtocolError> {
    let too_large = || ProtocolError::BodyTooLarge {
        url: url.into(),
        limit: MAX_BODY_BYTES,
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ProtocolError::from_transport(e, url, timeout, mtls))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

/// Parses a PEM bundle of trust anchors; at least one certificate, no malformed block.
fn parse_server_ca(pem: &[u8]) -> Result<Vec<reqwest::Certificate>, ProtocolError> {
    let mut roots = Vec::new();
    for (index, item) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let der = item.map_err(|e| ProtocolError::ServerCa {
            detail: format!("pem block {} is malformed: {e}", index + 1),
        })?;
        let cert =
            reqwest::Certificate::from_der(der.as_ref()).map_err(|e| ProtocolError::ServerCa {
                detail: describe_chain(&e.without_url()),
            })?;
        roots.push(cert);
    }
    if roots.is_empty() {
        return Err(ProtocolError::ServerCa {
            detail: "no pem CERTIFICATE block found".into(),
        });
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_debug_hides_the_key() {
        let id = Identity::new(
            "-----BEGIN CERTIFICATE-----",
            Zeroizing::new("PRIVATE-KEY-BYTES".into()),
        );
        let shown = format!("{id:?}");
        assert!(!shown.contains("PRIVATE-KEY-BYTES"));
        assert!(!shown.contains("BEGIN"));
    }

    #[test]
    fn server_ca_without_certificates_is_refused() {
        let err = HttpClient::new(HttpSettings {
            server_ca_pem: Some(b"not a pem file".to_vec()),
            ..HttpSettings::default()
        })
        .unwrap_err();
        assert!(matches!(err, ProtocolError::ServerCa { .. }), "{err}");
    }

    #[test]
    fn plain_http_is_refused_unless_allowed() {
        let url = Url::parse("http://127.0.0.1:1/v1/info?token=SECRET").unwrap();
        let strict = HttpClient::new(HttpSettings::default()).unwrap();
        let err = strict.check_url(&url).unwrap_err();
        assert!(matches!(err, ProtocolError::InsecureUrl { .. }));
        assert!(!err.to_string().contains("SECRET"));
        let relaxed = HttpClient::new(HttpSettings {
            allow_insecure_http: true,
            ..HttpSettings::default()
        })
        .unwrap();
        assert!(relaxed.check_url(&url).is_ok());
        let ftp = Url::parse("ftp://127.0.0.1/x").unwrap();
        assert!(matches!(
            relaxed.check_url(&ftp),
            Err(ProtocolError::UnsupportedScheme { .. })
        ));
    }

    #[test]
    fn user_agent_names_the_daemon_and_version() {
        assert!(USER_AGENT.starts_with("kyma-certd/"));
        assert!(USER_AGENT.len() > "kyma-certd/".len());
    }
}
