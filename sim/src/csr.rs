//! Decodes and checks a certificate signing request the way the connectors do: base64 of
//! PEM, a valid self-signature, an allowed key type and the expected subject. Does not issue.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey, VerificationAlgorithm,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls_pki_types::CertificateSigningRequestDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION, OID_PKCS1_SHA256WITHRSA,
    OID_SIG_ECDSA_WITH_SHA256,
};
use x509_parser::prelude::FromDer;

use crate::subject::{ExpectedSubject, SubjectMismatch};

/// Why a CSR was refused. Messages never quote the CSR itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    #[error("there was an error while parsing the base64 content; an incorrect value was provided")]
    Base64,
    #[error("the decoded value is not a PEM certificate request")]
    Pem,
    #[error("the certificate request is not valid DER")]
    Der,
    #[error("the certificate request's signature is not valid")]
    Signature,
    #[error("unsupported key algorithm {0}: only rsa keys are accepted")]
    KeyNotRsa(String),
    #[error("unsupported key algorithm {0}: rsa or ecdsa p-256 keys are accepted")]
    KeyNotAllowed(String),
    #[error("unsupported signature algorithm {0}: the request must be signed with sha-256")]
    SignatureAlgorithm(String),
    #[error("invalid subject: {0}")]
    Subject(#[from] SubjectMismatch),
}

/// The key type of an accepted CSR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    EcdsaP256,
}

/// A CSR that passed every check: what issuing needs, nothing else.
pub struct CheckedCsr {
    /// DER SubjectPublicKeyInfo of the requester's key.
    pub spki_der: Vec<u8>,
    pub key: KeyKind,
}

/// Decodes `csr_b64` (standard base64 of the PEM text; line breaks tolerated like Go's
/// decoder) and checks it against `expected`.
pub fn check(
    csr_b64: &str,
    expected: &ExpectedSubject,
    accept_ecdsa: bool,
) -> Result<CheckedCsr, CsrError> {
    let cleaned: String = csr_b64
        .chars()
        .filter(|c| *c != '\r' && *c != '\n')
        .collect();
    let pem = STANDARD.decode(cleaned).map_err(|_| CsrError::Base64)?;
    let der = CertificateSigningRequestDer::from_pem_slice(&pem).map_err(|_| CsrError::Pem)?;
    check_der(der.as_ref(), expected, accept_ecdsa)
}

/// Checks a DER-encoded CSR against `expected`.
pub fn check_der(
    der: &[u8],
    expected: &ExpectedSubject,
    accept_ecdsa: bool,
) -> Result<CheckedCsr, CsrError> {
    let (rest, csr) = X509CertificationRequest::from_der(der).map_err(|_| CsrError::Der)?;
    if !rest.is_empty() {
        return Err(CsrError::Der);
    }
    let info = &csr.certification_request_info;
    let spki = &info.subject_pki;
    let key_oid = &spki.algorithm.algorithm;
    let key = if *key_oid == OID_PKCS1_RSAENCRYPTION {
        KeyKind::Rsa
    } else if *key_oid == OID_KEY_TYPE_EC_PUBLIC_KEY
        && spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .is_some_and(|curve| curve == OID_EC_P256)
    {
        KeyKind::EcdsaP256
    } else if accept_ecdsa {
        return Err(CsrError::KeyNotAllowed(key_oid.to_id_string()));
    } else {
        return Err(CsrError::KeyNotRsa(key_oid.to_id_string()));
    };
    if key == KeyKind::EcdsaP256 && !accept_ecdsa {
        return Err(CsrError::KeyNotRsa("ecdsa".to_owned()));
    }

    let sig_oid = &csr.signature_algorithm.algorithm;
    let algorithm: &'static dyn VerificationAlgorithm = match key {
        KeyKind::Rsa if *sig_oid == OID_PKCS1_SHA256WITHRSA => &RSA_PKCS1_2048_8192_SHA256,
        KeyKind::EcdsaP256 if *sig_oid == OID_SIG_ECDSA_WITH_SHA256 => &ECDSA_P256_SHA256_ASN1,
        _ => return Err(CsrError::SignatureAlgorithm(sig_oid.to_id_string())),
    };
    UnparsedPublicKey::new(algorithm, spki.subject_public_key.data.as_ref())
        .verify(info.raw, csr.signature_value.data.as_ref())
        .map_err(|_| CsrError::Signature)?;

    expected.check(&info.subject)?;
    Ok(CheckedCsr {
        spki_der: spki.raw.to_vec(),
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256,
        PKCS_RSA_SHA256, RsaKeySize,
    };

    fn csr_b64(key: &KeyPair, cn: &str) -> String {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "Org");
        name.push(DnType::OrganizationalUnitName, "OrgUnit");
        name.push(DnType::LocalityName, "Waldorf");
        name.push(DnType::StateOrProvinceName, "Waldorf");
        name.push(DnType::CountryName, "DE");
        name.push(DnType::CommonName, cn);
        params.distinguished_name = name;
        let pem = params
            .serialize_request(key)
            .expect("request serialises")
            .pem()
            .expect("pem encodes");
        STANDARD.encode(pem)
    }

    fn rsa() -> KeyPair {
        KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).expect("rsa keygen works")
    }

    #[test]
    fn rsa_csr_with_the_expected_subject_passes() {
        let key = rsa();
        let checked = check(
            &csr_b64(&key, "my-app"),
            &ExpectedSubject::new("my-app"),
            false,
        )
        .expect("csr accepted");
        assert_eq!(checked.key, KeyKind::Rsa);
        assert_eq!(
            checked.spki_der,
            rcgen::PublicKeyData::subject_public_key_info(&key)
        );
    }

    #[test]
    fn ecdsa_csr_is_refused_unless_allowed() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("p-256 keygen works");
        let csr = csr_b64(&key, "my-app");
        let expected = ExpectedSubject::new("my-app");
        assert!(matches!(
            check(&csr, &expected, false),
            Err(CsrError::KeyNotRsa(_))
        ));
        assert_eq!(
            check(&csr, &expected, true).map(|c| c.key),
            Ok(KeyKind::EcdsaP256)
        );
    }

    #[test]
    fn csr_with_a_broken_signature_is_refused() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("p-256 keygen works");
        let pem = String::from_utf8(STANDARD.decode(csr_b64(&key, "my-app")).unwrap()).unwrap();
        let mut der = CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec();
        // The last byte belongs to the signature value.
        let last = der.len() - 1;
        der[last] ^= 0x01;
        assert!(matches!(
            check_der(&der, &ExpectedSubject::new("my-app"), true),
            Err(CsrError::Signature)
        ));
    }

    #[test]
    fn value_that_is_not_base64_is_refused() {
        assert_eq!(
            check("%%%", &ExpectedSubject::new("my-app"), false).err(),
            Some(CsrError::Base64)
        );
    }

    #[test]
    fn base64_of_something_else_than_pem_is_refused() {
        assert_eq!(
            check(
                &STANDARD.encode("hello"),
                &ExpectedSubject::new("my-app"),
                false
            )
            .err(),
            Some(CsrError::Pem)
        );
    }
}
