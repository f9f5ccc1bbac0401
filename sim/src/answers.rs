//! The upstream connectors' literal error answers, in one place, so that clients meet here
//! the words they meet in production. docs/connector-answers.md lists each with the upstream
//! file it comes from. Does not decide when an answer is given (the protocol modules do).

use crate::csr::CsrError;
use crate::subject::SubjectMismatch;

/// Compass Connector, `authentication/authenticator.go` `Authenticate()`: neither a token's
/// nor a certificate's client id reached it. The hydrator drops the identity of a revoked
/// certificate and of a used, expired or unknown token alike, so both get this answer
/// (HTTP 200, `data: null`).
pub const COMPASS_UNAUTHENTICATED: &str = "Failed to authenticate request. Token authentication error: Client Id not provided. Certificate authentication error: Client Id not provided.";

/// `api/certificate_resolver.go` `SignCertificateSigningRequest` wraps the authenticator's
/// error with this.
pub const COMPASS_SIGN_UNAUTHENTICATED_PREFIX: &str = "Failed to authenticate with token: ";

/// `revokeCertificate` authenticates with the certificate alone
/// (`AuthenticateCertificate()`).
pub const COMPASS_REVOKE_UNAUTHENTICATED: &str =
    "Failed to authenticate with Certificate. Invalid request: Client Id not provided.";

/// `api/certificate_resolver.go`: how the Compass signing resolver wraps a CSR problem.
const COMPASS_SIGN_PREFIX: &str = "Error while signing Certificate Signing Request: ";
const COMPASS_BASE64: &str = "Error while decoding Certificate Signing Request: Error while parsing base64 content. Incorrect value provided.";

/// connector-service `internal/revocation/middlewares/revocationcheck.go`, 403, on
/// `certificates/renewals` only (`management/info` is not checked against the list).
pub const REST_REVOKED: &str = "Certificate has been revoked.";
/// connector-service `externalapi/middlewares/tokenresolver.go`, 403.
pub const REST_TOKEN_MISSING: &str = "Token not provided.";
/// connector-service `externalapi/middlewares/tokenresolver.go`, 403: a used, expired or
/// unknown token.
pub const REST_TOKEN_INVALID: &str = "Invalid token.";
/// Compass connectivity-adapter `connectorservice/api/middlewares/authorization.go`, 403,
/// on every call where neither a token's nor a certificate's identity arrived: a revoked
/// certificate (on every mTLS call, `management/info` included) and a bad token alike.
pub const ADAPTER_UNAUTHENTICATED: &str = "invalid token or certificate";
/// connector-service `externalapi/signaturehandler.go`, 400.
const REST_BASE64: &str =
    "There was an error while parsing the base64 content. An incorrect value was provided.";

/// Which server stands behind the simulator's REST API: its answers differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestFlavour {
    /// Kyma's connector-service.
    #[default]
    ConnectorService,
    /// Compass's connectivity-adapter (the REST API as SAP BTP serves it).
    ConnectivityAdapter,
}

/// The REST text for a refused CSR (HTTP 400), in connector-service's words
/// (`internal/certificates/certificates.go`).
pub fn rest_csr(error: &CsrError) -> String {
    match error {
        CsrError::Base64 => REST_BASE64.to_owned(),
        other => csr_words(other),
    }
}

/// The Compass GraphQL message for a refused CSR.
pub fn compass_csr(error: &CsrError) -> String {
    match error {
        CsrError::Base64 => COMPASS_BASE64.to_owned(),
        other => format!("{COMPASS_SIGN_PREFIX}{}", csr_words(other)),
    }
}

/// `internal/certificates/certificates.go` of both connectors (the same code).
fn csr_words(error: &CsrError) -> String {
    match error {
        CsrError::Base64 => REST_BASE64.to_owned(),
        CsrError::Pem => "Error while decoding pem block.".to_owned(),
        CsrError::Der => "Error while parsing CSR: asn1: structure error".to_owned(),
        CsrError::Signature => "CSR signature invalid: crypto/rsa: verification error".to_owned(),
        // Upstream signs what Go's x509 accepts; the simulator's stricter key and signature
        // checks keep their own words, in the upstream's frame.
        CsrError::KeyNotRsa(_) | CsrError::KeyNotAllowed(_) | CsrError::SignatureAlgorithm(_) => {
            format!("Error while creating certificate: {error}")
        }
        CsrError::Subject(mismatch) => subject_words(mismatch),
    }
}

/// `checkSubject` names the first attribute that is missing or different.
fn subject_words(mismatch: &SubjectMismatch) -> String {
    let (key, missing) = match mismatch {
        SubjectMismatch::Missing { key, .. } => (*key, true),
        SubjectMismatch::Repeated { key }
        | SubjectMismatch::Unreadable { key }
        | SubjectMismatch::Different { key, .. } => (*key, false),
    };
    let name = match key {
        "CN" => "common name",
        "C" => "country",
        "O" => "organization",
        "OU" => "organizational unit",
        "L" => "locality",
        "ST" => "province",
        other => other,
    };
    match (key, missing) {
        // A missing common name is an invalid one upstream (`subject.CommonName != cn`).
        ("CN", _) | (_, false) => format!("CSR: Invalid {name} provided."),
        (_, true) => format!("CSR: No {name} provided."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_problems_are_named_in_the_connectors_words() {
        let missing = SubjectMismatch::Missing {
            key: "OU",
            expected: "OrgUnit".into(),
        };
        assert_eq!(
            subject_words(&missing),
            "CSR: No organizational unit provided."
        );
        let different = SubjectMismatch::Different {
            key: "CN",
            found: "x".into(),
            expected: "y".into(),
        };
        assert_eq!(
            compass_csr(&CsrError::Subject(different)),
            "Error while signing Certificate Signing Request: CSR: Invalid common name provided."
        );
        assert!(rest_csr(&CsrError::Base64).starts_with("There was an error while parsing"));
    }
}
