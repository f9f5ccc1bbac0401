//! What a failed exchange over mTLS says about the client certificate it was authenticated
//! with, by evidence: revoked in the connector's own words, refused by something that may
//! sit in front of the connector (a gateway, a proxy, a TLS terminator), or nothing at all.
//! Does not decide what to do about it (the daemon and the commands do).

use std::fmt;

use super::error::{ProtocolError, alert_name};

impl ProtocolError {
    /// What this failure says about the client certificate it was authenticated with.
    /// Only the connector's own words, on a call authenticated with our certificate over
    /// TLS, mean revoked: [`REST_REVOKED`] and the Compass authenticator's refusal
    /// (docs/connector-answers.md gives each answer's upstream source). Every other 401, 403 or 407 and every TLS alert on an
    /// mTLS call is a refusal by something that may sit in front of the connector, and
    /// proves nothing about the certificate.
    pub fn verdict(&self) -> Verdict {
        match self {
            ProtocolError::HandshakeRefused { alert, .. } => Verdict::Refused(Refusal::TlsAlert {
                alert: alert_name(*alert),
            }),
            ProtocolError::Status {
                status,
                message,
                mtls: true,
                from_connector,
                ..
            } => status_verdict(*status, message.as_deref(), *from_connector),
            ProtocolError::ProxyAuthentication { mtls: true, .. } => {
                Verdict::Refused(Refusal::Status {
                    status: 407,
                    connector_message: None,
                })
            }
            ProtocolError::GraphQl {
                mtls: true,
                message,
                ..
            } if is_compass_unauthenticated(message) => Verdict::Revoked,
            _ => Verdict::Inconclusive,
        }
    }

    /// True when the connector refused the one-time token of a token-secured call: the
    /// Compass authenticator's refusal, or a REST 403 in the connector's format. The token
    /// was used, expired, unknown, or for another connector; only a new one helps.
    pub fn token_refused(&self) -> bool {
        match self {
            ProtocolError::GraphQl {
                mtls: false,
                message,
                ..
            } => is_compass_unauthenticated(message),
            ProtocolError::Status {
                status: 403,
                mtls: false,
                from_connector: true,
                ..
            } => true,
            _ => false,
        }
    }

    /// True when the connector itself said the certificate is revoked: only a new one-time
    /// token can help (exit code 3). Refusals by anything else are retried.
    pub fn needs_reenrollment(&self) -> bool {
        self.verdict() == Verdict::Revoked
    }
}

/// What a failed exchange says about the client certificate it was authenticated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The connector said so in its own words: the certificate is revoked.
    Revoked,
    /// Something refused the certificate without the connector's words.
    Refused(Refusal),
    /// Nothing about the certificate: the network, the server's trouble, a bad answer.
    Inconclusive,
}

/// Which refusal, as `status`, the log and the runbook name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// HTTP 401, 403 or 407 to an mTLS call, not saying "revoked" in the connector's format.
    Status {
        status: u16,
        /// The body was in the connector's error format (with this message).
        connector_message: Option<String>,
    },
    /// A TLS alert (RFC 8446 name) refused the handshake of an mTLS call.
    TlsAlert { alert: String },
    /// The alert `certificate_expired` for a certificate that this host's clock says is
    /// still valid.
    ProbableClockSkew,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Status {
                status,
                connector_message: Some(message),
            } => write!(f, "http {status} from the connector: {message}"),
            Refusal::Status {
                status: 403,
                connector_message: None,
            } => f.write_str("http 403 not in the connector's error format"),
            Refusal::Status { status, .. } => write!(f, "http {status}"),
            Refusal::TlsAlert { alert } => write!(f, "tls alert {alert}"),
            Refusal::ProbableClockSkew => {
                f.write_str("tls alert certificate_expired: probable clock skew")
            }
        }
    }
}

/// Statuses that refuse a caller rather than fail a request: unauthenticated, forbidden,
/// proxy authentication required.
const REFUSING_STATUSES: [u16; 3] = [401, 403, 407];

fn status_verdict(status: u16, message: Option<&str>, from_connector: bool) -> Verdict {
    if !REFUSING_STATUSES.contains(&status) {
        return Verdict::Inconclusive;
    }
    let says_revoked = message.is_some_and(|m| REST_REVOKED.contains(&m.trim()));
    if status == 403 && from_connector && says_revoked {
        return Verdict::Revoked;
    }
    Verdict::Refused(Refusal::Status {
        status,
        connector_message: message.filter(|_| from_connector).map(str::to_owned),
    })
}

/// The REST connectors' `error` texts (HTTP 403, `{"code":403,"error":..}`) for a
/// certificate they do not recognise: connector-service's revocation check, and the
/// connectivity-adapter's authorization middleware (neither a token's nor a certificate's
/// identity reached it: the gateway dropped a revoked certificate's).
pub const REST_REVOKED: [&str; 2] = [
    "Certificate has been revoked.",
    "invalid token or certificate",
];

/// The Compass Connector's authenticator, when neither a token's nor a certificate's client
/// id reached it (the hydrator drops a revoked certificate's identity): the frame of
/// `Authenticate()` around its two inner errors, whose wording changed between releases.
const COMPASS_FRAME: (&str, &str) = (
    "Failed to authenticate request. Token authentication error: ",
    " Certificate authentication error: ",
);

/// `AuthenticateCertificate()`'s own errors, which `revokeCertificate` returns unframed.
const COMPASS_CERTIFICATE_ERROR: &str = "Failed to authenticate with Certificate.";

/// Whether a GraphQL error on the certificate-secured URL is the Compass authenticator
/// saying it received no identity for our certificate. Any other error there (an internal
/// error, a database timeout, a gateway's words) is retried with backoff: taking it for a
/// revocation would slow renewals to a probe per `retry_max`, across a whole fleet, after
/// one bad hour of the connector.
fn is_compass_unauthenticated(message: &str) -> bool {
    let (opening, middle) = COMPASS_FRAME;
    let framed = message
        .find(opening)
        .is_some_and(|at| message[at + opening.len()..].contains(middle));
    framed || message.contains(COMPASS_CERTIFICATE_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::RedactedUrl;

    fn url() -> url::Url {
        url::Url::parse("https://connector.example/v1/info").unwrap()
    }

    fn status(
        status: u16,
        message: Option<&str>,
        mtls: bool,
        from_connector: bool,
    ) -> ProtocolError {
        ProtocolError::Status {
            url: RedactedUrl::new(&url()),
            status,
            message: message.map(str::to_owned),
            mtls,
            from_connector,
        }
    }

    #[test]
    fn only_the_connectors_own_words_mean_revoked() {
        let revoked = status(403, Some("Certificate has been revoked."), true, true);
        assert_eq!(revoked.verdict(), Verdict::Revoked);
        assert!(revoked.needs_reenrollment());
        assert_eq!(revoked.reason(), "http");
        // The same words in a gateway's plain text, or on a token call, prove nothing.
        let gateway = status(403, Some("Certificate has been revoked."), true, false);
        assert!(matches!(gateway.verdict(), Verdict::Refused(_)));
        assert!(!gateway.needs_reenrollment());
        let on_token = status(403, Some("Certificate has been revoked."), false, true);
        assert_eq!(on_token.verdict(), Verdict::Inconclusive);
        let graphql_mtls = |message: &str| ProtocolError::GraphQl {
            url: RedactedUrl::new(&url()),
            message: message.into(),
            mtls: true,
        };
        // The Compass authenticator's refusal, in the wording of both releases, bare (the
        // configuration query), wrapped by the signing resolver, and revokeCertificate's.
        for words in [
            "Failed to authenticate request. Token authentication error: Client Id not provided. Certificate authentication error: Client Id not provided.",
            "Failed to authenticate with token: Failed to authenticate request. Token authentication error: Failed to authenticate with one time token.. Certificate authentication error: Failed to authenticate with Certificate. Invalid subject.",
            "Failed to authenticate with Certificate. Invalid request: Client Id not provided.",
            "Failed to authenticate with certificate: Failed to authenticate with Certificate. Invalid subject.",
        ] {
            assert_eq!(graphql_mtls(words).verdict(), Verdict::Revoked, "{words}");
        }
        // Generic words are not the connector's: a gateway or a proxy may say them.
        for words in [
            "the client certificate has been revoked",
            "Unauthorized",
            "forbidden",
            "access denied",
            "Failed to authenticate request. Token authentication error: x",
        ] {
            assert_eq!(
                graphql_mtls(words).verdict(),
                Verdict::Inconclusive,
                "{words}"
            );
        }
        // The REST adapter's words; generic "revoked" words in the connector's format are not.
        let adapter = status(403, Some("invalid token or certificate"), true, true);
        assert_eq!(adapter.verdict(), Verdict::Revoked);
        let other = status(403, Some("the certificate was revoked"), true, true);
        assert!(matches!(other.verdict(), Verdict::Refused(_)));
        // A connector's own trouble is retried, not taken for a revocation.
        assert_eq!(
            graphql_mtls("internal error: database timeout").verdict(),
            Verdict::Inconclusive
        );
        let graphql_token = ProtocolError::GraphQl {
            url: RedactedUrl::new(&url()),
            message: "certificate revoked".into(),
            mtls: false,
        };
        assert_eq!(graphql_token.verdict(), Verdict::Inconclusive);
    }

    #[test]
    fn the_connectors_refusal_of_a_token_is_told_apart_from_a_revocation() {
        let on_token_url = ProtocolError::GraphQl {
            url: RedactedUrl::new(&url()),
            message: "Failed to authenticate request. Token authentication error: Client Id not provided. Certificate authentication error: Client Id not provided.".into(),
            mtls: false,
        };
        assert!(on_token_url.token_refused());
        assert_eq!(on_token_url.verdict(), Verdict::Inconclusive);
        for message in [
            "Invalid token.",
            "Token not provided.",
            "invalid token or certificate",
        ] {
            assert!(
                status(403, Some(message), false, true).token_refused(),
                "{message}"
            );
            assert!(
                !status(403, Some(message), true, true).token_refused(),
                "{message}"
            );
        }
        // A gateway's 403 on the token URL is not the connector's word about the token.
        assert!(!status(403, Some("RBAC: access denied"), false, false).token_refused());
    }

    #[test]
    fn refusals_name_what_refused() {
        let refusal = |e: ProtocolError| match e.verdict() {
            Verdict::Refused(r) => r.to_string(),
            other => panic!("not a refusal: {other:?}"),
        };
        assert_eq!(
            refusal(status(403, Some("RBAC: access denied"), true, false)),
            "http 403 not in the connector's error format"
        );
        assert_eq!(refusal(status(401, None, true, false)), "http 401");
        assert_eq!(refusal(status(407, None, true, false)), "http 407");
        assert_eq!(
            refusal(status(403, Some("Invalid token."), true, true)),
            "http 403 from the connector: Invalid token."
        );
        let alert = ProtocolError::HandshakeRefused {
            url: RedactedUrl::new(&url()),
            alert: rustls::AlertDescription::UnknownCA,
        };
        assert_eq!(alert.reason(), "tls");
        assert!(alert.to_string().contains("alert unknown_ca"), "{alert}");
        assert_eq!(refusal(alert), "tls alert unknown_ca");
        assert_eq!(
            Refusal::ProbableClockSkew.to_string(),
            "tls alert certificate_expired: probable clock skew"
        );
        // Server trouble says nothing about the certificate.
        assert_eq!(
            status(503, None, true, false).verdict(),
            Verdict::Inconclusive
        );
        assert_eq!(
            status(500, None, true, true).verdict(),
            Verdict::Inconclusive
        );
        let untrusted = ProtocolError::UntrustedServer {
            url: RedactedUrl::new(&url()),
            detail: "unknown issuer".into(),
        };
        assert_eq!(untrusted.verdict(), Verdict::Inconclusive);
    }
}
