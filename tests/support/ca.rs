//! The one throwaway certificate authority of the tests, made by code: it issues client
//! certificates the way a connector does, leaves for test servers and their clients, and
//! whole sets of material as a verified renewal hands them to the store. The unit tests
//! (`src/testutil.rs`) and the integration tests (`tests/support/mod.rs`) include this
//! same file; each names the crate under test `certd` for it. Does not touch the disk.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SerialNumber, SubjectPublicKeyInfo,
};
use zeroize::Zeroizing;

use super::certd::config::KeyAlgorithm;
use super::certd::pki::keys::PrivateKey;
use super::certd::pki::subject::Subject;
use super::certd::pki::verify::VerifiedMaterial;
use super::certd::pki::x509::CertInfo;
use super::certd::protocol::Identity;

/// The subject connectors put in the client certificates of these tests.
pub const SUBJECT: &str = "O=Org,OU=OrgUnit,L=locality,ST=province,C=DE,CN=app-orders";

/// A CA that signs client certificates and test servers' leaves.
pub struct TestCa {
    pub cert: rcgen::Certificate,
    pub issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    /// A fresh P-256 CA named `O=Test,CN=<name>`, valid from 2000 to 2100.
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = Subject::parse(&format!("O=Test,CN={name}"))
            .unwrap()
            .to_distinguished_name();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2100, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        let issuer = Issuer::new(params, key);
        TestCa { cert, issuer }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    pub fn der(&self) -> rustls_pki_types::CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// A client certificate for `key`'s public key, valid from `not_before` for
    /// `lifetime`, with the subject written in Go's order (C, ST, L, O, OU, CN).
    pub fn issue(
        &self,
        key: &PrivateKey,
        subject: &str,
        not_before: SystemTime,
        lifetime: Duration,
    ) -> String {
        let parsed = Subject::parse(subject).unwrap();
        let mut reordered = parsed.attributes().to_vec();
        reordered.sort_by_key(|(k, _)| *k);
        let text = reordered
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut params = CertificateParams::default();
        params.distinguished_name = Subject::parse(&text).unwrap().to_distinguished_name();
        params.not_before = not_before.into();
        params.not_after = (not_before + lifetime).into();
        params.serial_number = Some(SerialNumber::from_slice(&[2]));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let public = SubjectPublicKeyInfo::from_der(key.public_key_der()).unwrap();
        params.signed_by(&public, &self.issuer).unwrap().pem()
    }

    /// A fresh key and a certificate of `subject` for it, valid from `not_before` for
    /// `lifetime`, shaped like verified material (the chain ends with this CA). Verifies
    /// nothing: an expired certificate is made as easily as a valid one.
    pub fn material(
        &self,
        subject: &str,
        not_before: SystemTime,
        lifetime: Duration,
    ) -> VerifiedMaterial {
        let key = key();
        let (cert_pem, ca_pem, chain_pem) = issued_as(self, &key, subject, not_before, lifetime);
        let info = CertInfo::from_pem(&cert_pem).unwrap();
        VerifiedMaterial {
            cert_pem,
            chain_pem,
            ca_pem,
            key,
            info,
            warnings: Vec::new(),
        }
    }

    /// A leaf for `names` (IP addresses or DNS names) with the given usage: (cert PEM,
    /// key PEM).
    pub fn leaf(
        &self,
        cn: &str,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> (String, String) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A client identity (certificate and key) issued by this CA.
    pub fn client_identity(&self, cn: &str) -> Identity {
        let (cert, key) = self.leaf(cn, &[], ExtendedKeyUsagePurpose::ClientAuth);
        Identity::new(cert, Zeroizing::new(key))
    }
}

/// A fresh fast key (tests do not need RSA).
pub fn key() -> PrivateKey {
    PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap()
}

/// What a connector returns for one issuance of [`SUBJECT`]: (client, ca, chain).
pub fn issued(
    ca: &TestCa,
    key: &PrivateKey,
    not_before: SystemTime,
    lifetime: Duration,
) -> (String, String, String) {
    issued_as(ca, key, SUBJECT, not_before, lifetime)
}

/// What a connector returns for one issuance of `subject`: (client, ca, chain).
fn issued_as(
    ca: &TestCa,
    key: &PrivateKey,
    subject: &str,
    not_before: SystemTime,
    lifetime: Duration,
) -> (String, String, String) {
    let client = ca.issue(key, subject, not_before, lifetime);
    let chain = format!("{client}{}", ca.pem());
    (client, ca.pem(), chain)
}
