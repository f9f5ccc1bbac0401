//! Fixtures for tests that drive the store through the library, not the binary: one
//! certificate's configuration for a temporary directory, and material as a verified
//! renewal hands it over. Verifies nothing.

use std::path::Path;
use std::time::{Duration, SystemTime};

use kyma_certd::config::{self, CertificateConfig, Checks};
use kyma_certd::pki::verify::VerifiedMaterial;

use super::ca::{SUBJECT, TestCa};

/// One `[[certificate]]` writing into `dir`, with `extra` keys appended.
pub fn certificate(dir: &Path, extra: &str) -> CertificateConfig {
    let text = format!(
        "[[certificate]]\nname = \"orders\"\nprotocol = \"compass\"\ndir = {:?}\n{extra}\n",
        dir.to_str().expect("temporary paths are UTF-8")
    );
    let config = config::parse_with(&text, Path::new("test.toml"), Checks::Syntax).unwrap();
    config.certificates.into_iter().next().unwrap()
}

/// A fresh key and a certificate for it, valid for a day from now.
pub fn material() -> VerifiedMaterial {
    TestCa::new("store ca").material(SUBJECT, SystemTime::now(), Duration::from_secs(86_400))
}
