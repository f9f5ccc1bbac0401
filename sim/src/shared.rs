//! The state every listener shares (authority, tokens, registry, fault slot, URLs, schema)
//! and the steps both protocols have in common: the fault gate in front of each request and
//! the CSR-to-certificate flow. Does not parse protocol requests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::answers::RestFlavour;
use std::time::Duration;

use apollo_compiler::Schema;
use apollo_compiler::validation::Valid;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderValue, Response, StatusCode};
use url::Url;

use crate::csr::{self, CsrError};
use crate::fault::{Fault, FaultSlot, Stage};
use crate::pki::{Authority, IssueError};
use crate::registry::{Endpoint, IssuedCertificate, Registry};
use crate::respond::{self, Body};
use crate::subject::ExpectedSubject;
use crate::tokens::{Protocol, TokenStore};

/// The three listening addresses, fixed at start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Addresses {
    pub token: SocketAddr,
    pub mtls: SocketAddr,
    pub admin: SocketAddr,
}

pub(crate) struct Shared {
    pub app: String,
    /// Lifetime of issued certificates; switchable at run time.
    pub validity: Mutex<Duration>,
    pub accept_ecdsa: bool,
    pub addresses: Addresses,
    /// Where the CA certificates were written.
    pub out_dir: PathBuf,
    pub authority: Authority,
    pub tokens: TokenStore,
    pub registry: Registry,
    pub faults: FaultSlot,
    pub schema: Valid<Schema>,
    /// Which server the REST API answers as; switchable at run time.
    pub rest_flavour: Mutex<crate::answers::RestFlavour>,
}

/// How a protocol formats errors that happen before it looks at a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorStyle {
    /// `{"errors": [{"message": ..}], "data": null}`
    GraphQl,
    /// `{"code": <status>, "error": ..}`
    Rest,
}

impl ErrorStyle {
    pub fn response(self, status: StatusCode, message: &str) -> Response<Body> {
        match self {
            ErrorStyle::GraphQl => respond::json(
                status,
                &serde_json::json!({"errors": [{"message": message}], "data": null}),
            ),
            ErrorStyle::Rest => respond::json(
                status,
                &serde_json::json!({"code": status.as_u16(), "error": message}),
            ),
        }
    }
}

/// What the fault gate decided for a request.
pub(crate) enum Gate {
    /// Process the request; cut the body in half afterwards when `malformed`.
    Proceed { malformed: bool },
    /// Answer with this instead of processing.
    Answer(Response<Body>),
}

/// Why a CSR did not become a certificate.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SignError {
    #[error(transparent)]
    Csr(#[from] CsrError),
    #[error(transparent)]
    Issue(#[from] IssueError),
}

/// The three base64-of-PEM strings of a signing response.
pub(crate) struct SignedFields {
    pub chain: String,
    pub client: String,
    pub ca: String,
}

fn https(addr: SocketAddr, path: &str) -> Url {
    let mut url = Url::parse(&format!("https://{addr}/")).expect("a socket address forms a URL");
    url.set_path(path);
    url
}

fn with_token(mut url: Url, token: &str) -> Url {
    url.query_pairs_mut().append_pair("token", token);
    url
}

/// File name of the server CA certificate in the output folder.
pub(crate) const SERVER_CA_FILE: &str = "server-ca.pem";
/// File name of the client CA certificate in the output folder.
pub(crate) const CLIENT_CA_FILE: &str = "client-ca.pem";

impl Shared {
    pub fn rest_flavour(&self) -> RestFlavour {
        *self
            .rest_flavour
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn set_rest_flavour(&self, flavour: RestFlavour) {
        tracing::info!(?flavour, "rest flavour set");
        *self
            .rest_flavour
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = flavour;
    }

    pub fn validity(&self) -> Duration {
        *self
            .validity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn server_ca_path(&self) -> PathBuf {
        self.out_dir.join(SERVER_CA_FILE)
    }

    pub fn client_ca_path(&self) -> PathBuf {
        self.out_dir.join(CLIENT_CA_FILE)
    }

    pub fn out_dir(&self) -> &Path {
        &self.out_dir
    }

    pub fn compass_token_url(&self) -> Url {
        https(self.addresses.token, "/connector/graphql")
    }

    pub fn compass_mtls_url(&self) -> Url {
        https(self.addresses.mtls, "/connector/graphql")
    }

    pub fn director_url(&self) -> Url {
        https(self.addresses.mtls, "/director/graphql")
    }

    pub fn rest_info_url(&self, token: &str) -> Url {
        with_token(
            https(
                self.addresses.token,
                "/v1/applications/signingRequests/info",
            ),
            token,
        )
    }

    pub fn rest_csr_url(&self, token: &str) -> Url {
        with_token(
            https(self.addresses.token, "/v1/applications/certificates"),
            token,
        )
    }

    /// `certificatesUrl`: the connector-service's base URL on the token-secured listener.
    pub fn rest_token_base_url(&self) -> Url {
        https(self.addresses.token, "/v1/applications")
    }

    pub fn rest_mtls_url(&self, path: &str) -> Url {
        https(self.addresses.mtls, path)
    }

    pub fn admin_url(&self) -> Url {
        Url::parse(&format!("http://{}/", self.addresses.admin))
            .expect("a socket address forms a URL")
    }

    /// Counts the request under each endpoint, then applies a request fault if one is active.
    pub async fn gate(&self, endpoints: &[Endpoint], style: ErrorStyle) -> Gate {
        for endpoint in endpoints {
            self.registry.count(*endpoint);
        }
        match self.faults.take(Stage::Request) {
            None => Gate::Proceed { malformed: false },
            Some(Fault::Latency { delay }) => {
                tokio::time::sleep(delay).await;
                Gate::Proceed { malformed: false }
            }
            Some(Fault::MalformedJson) => Gate::Proceed { malformed: true },
            Some(Fault::InternalError) => Gate::Answer(style.response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal server error (injected fault)",
            )),
            Some(Fault::Unavailable) => {
                let mut response = style.response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service unavailable (injected fault)",
                );
                response
                    .headers_mut()
                    .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
                Gate::Answer(response)
            }
            Some(Fault::Stall { duration }) => Gate::Answer(respond::stalled(duration)),
            Some(Fault::OversizedBody { bytes }) => Gate::Answer(respond::oversized(bytes)),
            // `take(Stage::Request)` yields request faults only.
            Some(_) => Gate::Proceed { malformed: false },
        }
    }

    /// Generates the material of the key and CA faults off the async threads if such a fault
    /// is on and the material does not exist yet, so that [`Shared::sign`] need not block.
    pub async fn prepare_signing(self: &Arc<Self>) {
        let needed = self
            .faults
            .current()
            .is_some_and(|active| matches!(active.fault, Fault::ForeignKey | Fault::UnrelatedCa));
        if needed && !self.authority.has_fault_material() {
            let shared = self.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let _ = shared.authority.fault_material();
            })
            .await;
        }
    }

    /// Checks a base64-of-PEM CSR against `expected` and issues the certificate, applying a
    /// certificate fault if one is active; records what was handed out.
    pub fn sign(
        &self,
        csr_b64: &str,
        expected: &ExpectedSubject,
        protocol: Protocol,
        renewal: bool,
    ) -> Result<SignedFields, SignError> {
        let checked = csr::check(csr_b64, expected, self.accept_ecdsa)?;
        let fault = self.faults.take(Stage::Issuance);
        let deviation = fault.as_ref().and_then(Fault::deviation);
        let issued =
            self.authority
                .issue(&checked.spki_der, expected, self.validity(), deviation)?;
        tracing::info!(
            fingerprint = %issued.fingerprint,
            subject = %issued.subject,
            protocol = protocol.as_str(),
            key = ?checked.key,
            renewal,
            fault = ?fault,
            "issued a client certificate"
        );
        let fields = if fault == Some(Fault::InvalidBase64) {
            // Every field, so that a client reading any one of them notices.
            SignedFields {
                chain: "not base64: chain!".to_owned(),
                client: "not base64: client!".to_owned(),
                ca: "not base64: ca!".to_owned(),
            }
        } else {
            SignedFields {
                chain: STANDARD.encode(issued.chain_pem()),
                client: STANDARD.encode(&issued.pem),
                ca: STANDARD.encode(&issued.ca_pem),
            }
        };
        self.registry.record_issued(IssuedCertificate {
            fingerprint: issued.fingerprint,
            subject: issued.subject,
            not_before: issued.not_before,
            not_after: issued.not_after,
            pem: issued.pem,
            protocol,
            renewal,
            fault,
        });
        Ok(fields)
    }
}
