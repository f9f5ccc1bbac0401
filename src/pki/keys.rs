//! Private keys and certificate signing requests: generation, PEM import/export, and a
//! CSR that is checked locally before it leaves the process. Does not talk to a
//! connector nor write files.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::encoding::AsDer;
use base64::Engine as _;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateSigningRequestDer, PrivateKeyDer};
use x509_parser::prelude::FromDer;
use zeroize::Zeroizing;

use crate::pki::subject::Subject;

/// The kinds of key this daemon generates and reads (`key_algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EcdsaP256,
}

impl KeyAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa2048 => "rsa2048",
            KeyAlgorithm::Rsa3072 => "rsa3072",
            KeyAlgorithm::Rsa4096 => "rsa4096",
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
        }
    }
}

/// Why a key or CSR could not be made or read. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("generating a {algorithm} key failed")]
    Generate { algorithm: &'static str },
    #[error("no private key found in the PEM text")]
    NoKeyInPem,
    #[error("the private key could not be parsed ({format})")]
    Parse { format: &'static str },
    #[error("unsupported private key: {what} (supported: RSA 2048/3072/4096, ECDSA P-256)")]
    Unsupported { what: String },
    #[error("building the certificate signing request failed: {reason}")]
    BuildCsr { reason: String },
    #[error("the certificate signing request failed its local check: {check}")]
    CsrCheck { check: &'static str },
}

/// A private key, held as PKCS#8 PEM in memory that is wiped on drop. `Debug` shows the
/// algorithm only.
#[derive(Clone)]
pub struct PrivateKey {
    pem: Zeroizing<String>,
    algorithm: KeyAlgorithm,
    public_key_der: Vec<u8>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.algorithm.as_str())
            .field("pem", &"<redacted>")
            .finish()
    }
}

/// How many RSA prime searches one key generation runs at once (see
/// [`set_parallel_searches`]).
static PARALLEL_SEARCHES: AtomicUsize = AtomicUsize::new(1);

/// The most searches worth racing: the gain of a fifth or later search is a few percent.
const MAX_PARALLEL_SEARCHES: usize = 4;

/// Lets every later RSA key generation in this process race up to `searches` independent
/// searches on their own threads and keep the first key found. An RSA key's time is the
/// search for two primes, which varies tenfold from one run to the next; the fastest of
/// two searches takes about two thirds of one (median). For the one-shot commands, where
/// a person or a script waits; the daemon keeps one search per key, since it has days of
/// slack and shares the host with the application it serves.
pub fn set_parallel_searches(searches: usize) {
    PARALLEL_SEARCHES.store(searches.clamp(1, MAX_PARALLEL_SEARCHES), Ordering::Relaxed);
}

impl PrivateKey {
    /// Generates a fresh key. RSA takes up to a second: call from a blocking thread.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<PrivateKey, KeyError> {
        let searches = PARALLEL_SEARCHES.load(Ordering::Relaxed);
        if searches <= 1 || algorithm == KeyAlgorithm::EcdsaP256 {
            return Self::generate_one(algorithm);
        }
        first_success(searches, move || Self::generate_one(algorithm))
    }

    fn generate_one(algorithm: KeyAlgorithm) -> Result<PrivateKey, KeyError> {
        let failed = |_| KeyError::Generate {
            algorithm: algorithm.as_str(),
        };
        let pair = match algorithm {
            KeyAlgorithm::Rsa2048 => {
                rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            }
            KeyAlgorithm::Rsa3072 => {
                rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_3072)
            }
            KeyAlgorithm::Rsa4096 => {
                rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_4096)
            }
            KeyAlgorithm::EcdsaP256 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        }
        .map_err(failed)?;
        Ok(PrivateKey {
            pem: Zeroizing::new(pair.serialize_pem()),
            algorithm,
            public_key_der: rcgen::PublicKeyData::subject_public_key_info(&pair),
        })
    }

    /// Reads the first private key of a PEM text: PKCS#8 (`PRIVATE KEY`), PKCS#1 RSA
    /// (`RSA PRIVATE KEY`) or SEC1 EC (`EC PRIVATE KEY`). Encrypted keys are refused.
    pub fn from_pem(text: &str) -> Result<PrivateKey, KeyError> {
        // The decoded key is wiped when this function returns, whatever it returns.
        let der = Zeroizing::new(
            PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(|_| KeyError::NoKeyInPem)?,
        );
        let pkcs8: Zeroizing<Vec<u8>> = match &*der {
            PrivateKeyDer::Pkcs8(key) => Zeroizing::new(key.secret_pkcs8_der().to_vec()),
            PrivateKeyDer::Pkcs1(key) => {
                let pair = aws_lc_rs::rsa::KeyPair::from_der(key.secret_pkcs1_der())
                    .map_err(|_| KeyError::Parse { format: "PKCS#1" })?;
                let doc = pair
                    .as_der()
                    .map_err(|_| KeyError::Parse { format: "PKCS#1" })?;
                Zeroizing::new(doc.as_ref().to_vec())
            }
            PrivateKeyDer::Sec1(key) => {
                let pair = aws_lc_rs::signature::EcdsaKeyPair::from_private_key_der(
                    &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    key.secret_sec1_der(),
                )
                .map_err(|_| KeyError::Unsupported {
                    what: "an EC key that is not on P-256".into(),
                })?;
                let doc = pair
                    .to_pkcs8v1()
                    .map_err(|_| KeyError::Parse { format: "SEC1" })?;
                Zeroizing::new(doc.as_ref().to_vec())
            }
            _ => {
                return Err(KeyError::Unsupported {
                    what: "an unknown key encoding".into(),
                });
            }
        };
        Self::from_pkcs8_der(&pkcs8)
    }

    fn from_pkcs8_der(pkcs8: &[u8]) -> Result<PrivateKey, KeyError> {
        let pair =
            rcgen::KeyPair::try_from(pkcs8).map_err(|_| KeyError::Parse { format: "PKCS#8" })?;
        let algorithm = if pair.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256 {
            KeyAlgorithm::EcdsaP256
        } else if pair.algorithm() == &rcgen::PKCS_RSA_SHA256 {
            let rsa = aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8)
                .map_err(|_| KeyError::Parse { format: "PKCS#8" })?;
            match rsa.public_modulus_len() * 8 {
                2048 => KeyAlgorithm::Rsa2048,
                3072 => KeyAlgorithm::Rsa3072,
                4096 => KeyAlgorithm::Rsa4096,
                bits => {
                    return Err(KeyError::Unsupported {
                        what: format!("RSA with {bits} bits"),
                    });
                }
            }
        } else {
            return Err(KeyError::Unsupported {
                what: "a key type other than RSA or ECDSA P-256".into(),
            });
        };
        Ok(PrivateKey {
            pem: Zeroizing::new(pair.serialize_pem()),
            algorithm,
            public_key_der: rcgen::PublicKeyData::subject_public_key_info(&pair),
        })
    }

    /// The key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). Secret: never log it.
    pub fn to_pem(&self) -> &str {
        &self.pem
    }

    /// The public key as X.509 SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_key_der
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// Whether a SubjectPublicKeyInfo (from a certificate or CSR) holds this key's public
    /// key. Compares the algorithm and the key bits, not the encoding of the parameters.
    pub fn matches_spki(&self, spki_der: &[u8]) -> bool {
        spki_equal(&self.public_key_der, spki_der)
    }

    pub(crate) fn key_pair(&self) -> Result<rcgen::KeyPair, KeyError> {
        // Decoded here rather than by `KeyPair::from_pem`, whose buffers are not wiped.
        let der = Zeroizing::new(
            PrivateKeyDer::from_pem_slice(self.pem.as_bytes())
                .map_err(|_| KeyError::Parse { format: "PKCS#8" })?,
        );
        rcgen::KeyPair::try_from(&*der).map_err(|_| KeyError::Parse { format: "PKCS#8" })
    }
}

/// Runs `search` on `searches` threads at once and returns the first key found. The
/// other searches are abandoned: they finish in the background and their keys are wiped
/// when dropped. Fails only when every search failed (or none could start a thread and
/// the search on this thread failed).
fn first_success<F>(searches: usize, search: F) -> Result<PrivateKey, KeyError>
where
    F: Fn() -> Result<PrivateKey, KeyError> + Send + Clone + 'static,
{
    let (found, results) = std::sync::mpsc::channel();
    let mut started = 0;
    for _ in 0..searches {
        let found = found.clone();
        let search = search.clone();
        let spawned = std::thread::Builder::new()
            .name("keygen".into())
            .spawn(move || {
                // The receiver is gone once another search won: nothing to report.
                let _ = found.send(search());
            });
        started += usize::from(spawned.is_ok());
    }
    drop(found);
    if started == 0 {
        return search();
    }
    let mut failure = None;
    for result in results {
        match result {
            Ok(key) => return Ok(key),
            Err(err) => failure = Some(err),
        }
    }
    match failure {
        Some(err) => Err(err),
        // Every search thread ended without a result (it panicked): search here instead.
        None => search(),
    }
}

/// Whether two SubjectPublicKeyInfo DER blobs hold the same public key.
pub fn spki_equal(a: &[u8], b: &[u8]) -> bool {
    use x509_parser::x509::SubjectPublicKeyInfo;
    match (
        SubjectPublicKeyInfo::from_der(a),
        SubjectPublicKeyInfo::from_der(b),
    ) {
        (Ok((_, a)), Ok((_, b))) => {
            a.algorithm.algorithm == b.algorithm.algorithm
                && a.subject_public_key.data == b.subject_public_key.data
        }
        _ => false,
    }
}

/// A PEM certificate signing request. It carries only public data but is kept out of
/// logs anyway: `Debug` shows its length.
#[derive(Clone, PartialEq, Eq)]
pub struct CsrPem(String);

impl CsrPem {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CsrPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CsrPem(<{} bytes>)", self.0.len())
    }
}

/// Builds a PEM CSR for `key` with exactly `subject`, then parses it back and checks its
/// signature, subject and public key before returning it: a Compass one-time token is
/// spent even when the signing call fails, so a bad CSR must never be sent.
pub fn build_csr(key: &PrivateKey, subject: &Subject) -> Result<CsrPem, KeyError> {
    let pair = key.key_pair()?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = subject.to_distinguished_name();
    let csr = params
        .serialize_request(&pair)
        .map_err(|e| KeyError::BuildCsr {
            reason: e.to_string(),
        })?;
    let pem = csr.pem().map_err(|e| KeyError::BuildCsr {
        reason: e.to_string(),
    })?;
    check_csr(&pem, key, subject)?;
    Ok(CsrPem(pem))
}

fn check_csr(pem: &str, key: &PrivateKey, subject: &Subject) -> Result<(), KeyError> {
    use x509_parser::certification_request::X509CertificationRequest;
    let der = CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| KeyError::CsrCheck { check: "pem" })?;
    let (rest, csr) = X509CertificationRequest::from_der(der.as_ref())
        .map_err(|_| KeyError::CsrCheck { check: "der" })?;
    if !rest.is_empty() {
        return Err(KeyError::CsrCheck { check: "der" });
    }
    csr.verify_signature()
        .map_err(|_| KeyError::CsrCheck { check: "signature" })?;
    let info = &csr.certification_request_info;
    if !subject.matches_x509(&info.subject) {
        return Err(KeyError::CsrCheck { check: "subject" });
    }
    if !key.matches_spki(info.subject_pki.raw) {
        return Err(KeyError::CsrCheck {
            check: "public key",
        });
    }
    Ok(())
}

/// The CSR as the connectors want it: standard padded base64 of the PEM text, one line.
pub fn csr_base64(csr: &CsrPem) -> String {
    base64::engine::general_purpose::STANDARD.encode(csr.0.as_bytes())
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
