//! Test fixtures made by code: a throwaway CA that issues client certificates the way a
//! connector does. Test builds only; does not touch the disk.

use std::time::{Duration, SystemTime};

use crate::config::KeyAlgorithm;
use crate::pki::keys::PrivateKey;
use crate::pki::subject::Subject;

pub const SUBJECT: &str = "O=Org,OU=OrgUnit,L=locality,ST=province,C=DE,CN=app-orders";

/// A CA that signs client certificates.
pub struct TestCa {
    pub cert: rcgen::Certificate,
    pub issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = Subject::parse(&format!("O=Test,CN={name}"))
            .unwrap()
            .to_distinguished_name();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2100, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        let issuer = rcgen::Issuer::new(params, key);
        TestCa { cert, issuer }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
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
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = Subject::parse(&text).unwrap().to_distinguished_name();
        params.not_before = not_before.into();
        params.not_after = (not_before + lifetime).into();
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[2]));
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let public = rcgen::SubjectPublicKeyInfo::from_der(key.public_key_der()).unwrap();
        params.signed_by(&public, &self.issuer).unwrap().pem()
    }
}

/// A fresh fast key (tests do not need RSA).
pub fn key() -> PrivateKey {
    PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap()
}

/// What a connector returns for one issuance: (client, ca, chain).
pub fn issued(
    ca: &TestCa,
    key: &PrivateKey,
    not_before: SystemTime,
    lifetime: Duration,
) -> (String, String, String) {
    let client = ca.issue(key, SUBJECT, not_before, lifetime);
    let chain = format!("{client}{}", ca.pem());
    (client, ca.pem(), chain)
}
