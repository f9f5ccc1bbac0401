//! Fixtures for the store's process-wide tests, built through the public API: a
//! configuration for a temporary directory and self-signed material. Does not verify.
//! The daemon tests use the material too, for certificates a connector would not issue.

#![allow(dead_code)]

use std::path::Path;

use kyma_certd::config::{self, CertificateConfig, Checks, KeyAlgorithm};
use kyma_certd::pki::keys::PrivateKey;
use kyma_certd::pki::verify::VerifiedMaterial;
use kyma_certd::pki::x509::CertInfo;

/// One `[[certificate]]` writing into `dir`, with `extra` keys appended.
pub fn certificate(dir: &Path, extra: &str) -> CertificateConfig {
    let text = format!(
        "[[certificate]]\nname = \"orders\"\nprotocol = \"compass\"\ndir = {:?}\n{extra}\n",
        dir.to_str().expect("temporary paths are UTF-8")
    );
    let config = config::parse_with(&text, Path::new("test.toml"), Checks::Syntax).unwrap();
    config.certificates.into_iter().next().unwrap()
}

/// A key and a self-signed certificate for it, shaped like verified material.
pub fn material() -> VerifiedMaterial {
    self_signed(rcgen::CertificateParams::new(vec!["orders.test".to_owned()]).unwrap())
}

/// A fresh P-256 key and a certificate made from `params` for it, self-signed, shaped
/// like verified material (the certificate doubles as chain and CA).
pub fn self_signed(params: rcgen::CertificateParams) -> VerifiedMaterial {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let pair = rcgen::KeyPair::from_pem(key.to_pem()).unwrap();
    let cert_pem = params.self_signed(&pair).unwrap().pem();
    let info = CertInfo::from_pem(&cert_pem).unwrap();
    VerifiedMaterial {
        chain_pem: format!("{cert_pem}{cert_pem}"),
        ca_pem: cert_pem.clone(),
        cert_pem,
        key,
        info,
        warnings: Vec::new(),
    }
}

/// The mode bits of a file (following symlinks).
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}
