//! What passes between the daemon and a connector, whatever the protocol: the
//! [`Connector`] trait, the [`SigningPlan`] its first step learns, the [`IssuedPems`] it
//! returns and the [`Protocol`] names. Holds no protocol's wire format.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use url::Url;

use super::error::{ProtocolError, RedactedUrl};
use super::http::Identity;
use crate::pki::keys::KeyAlgorithm;
use crate::pki::secret::Token;

/// Which wire protocol a connector speaks (`protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Compass / UCL connector, GraphQL.
    Compass,
    /// Kyma Application Connector connector-service, REST.
    KymaRest,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Compass => "compass",
            Protocol::KymaRest => "kyma-rest",
        }
    }
}

/// How the signing request of a [`SigningPlan`] is authenticated.
#[derive(Clone, PartialEq, Eq)]
pub enum SigningAuth {
    /// Compass enrollment: this fresh token goes in the `Connector-Token` header.
    ConnectorToken(Token),
    /// Kyma REST enrollment: the credential is the `token` query parameter of `sign_url`.
    TokenInUrl,
    /// Renewal: our current client certificate (mutual TLS).
    ClientCertificate,
}

impl fmt::Debug for SigningAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SigningAuth::ConnectorToken(_) => f.write_str("ConnectorToken(<redacted>)"),
            SigningAuth::TokenInUrl => f.write_str("TokenInUrl"),
            SigningAuth::ClientCertificate => f.write_str("ClientCertificate"),
        }
    }
}

/// What the first step of an enrollment or renewal learned: what to put in the CSR and
/// where and how to send it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningPlan {
    /// The subject the CSR must carry, as the server wrote it (`O=..,OU=..,CN=..`).
    pub subject: String,
    /// The key algorithm the server announced (`rsa2048`), if it announced one.
    pub key_algorithm: Option<String>,
    /// Where to send the CSR. May carry a one-time token in its query: never log it whole.
    pub sign_url: Url,
    pub auth: SigningAuth,
    /// The mTLS URL to keep for renewals and revocation (Compass
    /// `certificateSecuredConnectorURL`, REST `api.infoUrl`), if the server gave one.
    pub renewal_url: Option<Url>,
    /// What else the server said about this identity, for `connection.json`.
    pub facts: ConnectionFacts,
}

/// What a connector says about an identity beyond the CSR: its client id and the URLs
/// clients of the connector need (Compass `directorURL`, REST `metadataUrl`, ...). Never
/// a URL that carries a token (`csrUrl`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionFacts {
    /// REST: `clientIdentity.application` of `management/info`. Compass names the
    /// identity only in the subject's CN.
    pub client_id: Option<String>,
    /// Each URL under the name the connector gave it.
    pub urls: BTreeMap<String, Url>,
}

impl SigningPlan {
    /// The announced key algorithm, if it is one this daemon knows.
    pub fn announced_key_algorithm(&self) -> Option<KeyAlgorithm> {
        match self.key_algorithm.as_deref()?.to_ascii_lowercase().as_str() {
            "rsa2048" => Some(KeyAlgorithm::Rsa2048),
            "rsa3072" => Some(KeyAlgorithm::Rsa3072),
            "rsa4096" => Some(KeyAlgorithm::Rsa4096),
            "ecdsa-p256" | "ecdsap256" | "p256" => Some(KeyAlgorithm::EcdsaP256),
            _ => None,
        }
    }
}

impl fmt::Debug for SigningPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningPlan")
            .field("subject", &self.subject)
            .field("key_algorithm", &self.key_algorithm)
            .field("sign_url", &RedactedUrl::new(&self.sign_url))
            .field("auth", &self.auth)
            .field(
                "renewal_url",
                &self.renewal_url.as_ref().map(RedactedUrl::new),
            )
            .field("facts", &self.facts)
            .finish()
    }
}

/// The three PEM texts a connector returns, decoded from base64 and each checked to hold
/// at least one well-formed `CERTIFICATE` block (nothing more is verified here).
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedPems {
    /// The issued client certificate.
    pub client_pem: String,
    /// The CA certificate(s), one or more blocks in any order.
    pub ca_pem: String,
    /// Client certificate followed by the CA chain.
    pub chain_pem: String,
}

impl fmt::Debug for IssuedPems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size = |s: &String| format!("<{} bytes>", s.len());
        f.debug_struct("IssuedPems")
            .field("client_pem", &size(&self.client_pem))
            .field("ca_pem", &size(&self.ca_pem))
            .field("chain_pem", &size(&self.chain_pem))
            .finish()
    }
}

/// One connector protocol. The daemon drives it as: `begin_enroll` or `begin_renew`, then
/// `sign` with a CSR made for the plan's subject; `revoke` on request.
pub trait Connector {
    /// Token-secured first step of enrollment: learns the subject, the key algorithm,
    /// where and how to sign, and the renewal URL to keep. Compass: `url` is the
    /// token-secured connector URL and `token` is required. REST: `url` is the
    /// configuration URL; `token`, when given, replaces its `token` query parameter.
    fn begin_enroll(
        &self,
        url: &Url,
        token: Option<&Token>,
    ) -> impl Future<Output = Result<SigningPlan, ProtocolError>> + Send;

    /// mTLS first step of a renewal, at the renewal URL learned at enrollment.
    fn begin_renew(
        &self,
        renewal_url: &Url,
        identity: &Identity,
    ) -> impl Future<Output = Result<SigningPlan, ProtocolError>> + Send;

    /// Sends the CSR (standard padded base64 of the PEM text) as the plan says (token or
    /// mTLS; `identity` is required for [`SigningAuth::ClientCertificate`]).
    fn sign(
        &self,
        plan: &SigningPlan,
        csr_base64: &str,
        identity: Option<&Identity>,
    ) -> impl Future<Output = Result<IssuedPems, ProtocolError>> + Send;

    /// Revokes the identity's certificate (mTLS only).
    fn revoke(
        &self,
        renewal_url: &Url,
        identity: &Identity,
    ) -> impl Future<Output = Result<(), ProtocolError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> SigningPlan {
        SigningPlan {
            subject: "O=Org,CN=app".into(),
            key_algorithm: Some("rsa2048".into()),
            sign_url: Url::parse("https://c.example/v1/applications/certificates?token=SECRET")
                .unwrap(),
            auth: SigningAuth::ConnectorToken(Token::new("ALSO-SECRET")),
            renewal_url: None,
            facts: ConnectionFacts::default(),
        }
    }

    #[test]
    fn plan_debug_hides_tokens_in_headers_and_urls() {
        let shown = format!("{:?}", plan());
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("O=Org,CN=app"));
    }

    #[test]
    fn announced_key_algorithm_is_understood_when_known() {
        let mut p = plan();
        assert_eq!(p.announced_key_algorithm(), Some(KeyAlgorithm::Rsa2048));
        p.key_algorithm = Some("dsa512".into());
        assert_eq!(p.announced_key_algorithm(), None);
    }

    #[test]
    fn issued_pems_debug_shows_sizes_not_bodies() {
        let pems = IssuedPems {
            client_pem: "BODY-A".into(),
            ca_pem: "BODY-B".into(),
            chain_pem: "BODY-C".into(),
        };
        assert!(!format!("{pems:?}").contains("BODY"));
    }
}
