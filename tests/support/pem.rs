//! Readers for PEM texts and the times in them: fingerprints, public keys, validity,
//! the base64 bodies a secret scan looks for, and Unix seconds.

use std::time::{SystemTime, UNIX_EPOCH};

use kyma_certd::pki::keys::PrivateKey;
use kyma_certd::pki::x509::CertInfo;
use rustls_pki_types::pem::PemObject as _;

/// SHA-256 of the first certificate in a PEM text, lower-case hex.
pub fn fingerprint(pem: &[u8]) -> String {
    CertInfo::from_pem(std::str::from_utf8(pem).expect("utf-8"))
        .expect("a certificate")
        .fingerprint_sha256
}

/// The SPKI of the first certificate in a PEM text.
pub fn cert_spki(pem: &[u8]) -> Vec<u8> {
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem).expect("a certificate");
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("parses");
    cert.tbs_certificate.subject_pki.raw.to_vec()
}

/// The SPKI of a PKCS#8 PEM key.
pub fn key_spki(pem: &[u8]) -> Vec<u8> {
    let key = PrivateKey::from_pem(std::str::from_utf8(pem).expect("utf-8")).expect("a key");
    key.public_key_der().to_vec()
}

/// notBefore and notAfter of the first certificate in `pem`, in Unix seconds.
pub fn validity_of(pem: &str) -> (i64, i64) {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("a PEM block");
    let cert = block.parse_x509().expect("an X.509 certificate");
    (
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    )
}

/// The base64 body of every PEM block in `pem`, one string per block, without line breaks.
pub fn pem_bodies(pem: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    let mut current: Option<String> = None;
    for line in pem.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN ") {
            current = Some(String::new());
        } else if line.starts_with("-----END ") {
            bodies.extend(current.take());
        } else if let Some(body) = current.as_mut() {
            body.push_str(line);
        }
    }
    bodies
}

/// Three 40-character slices of `text` (start, middle, end): enough to recognise it
/// anywhere, short enough not to depend on line breaks.
pub fn slices(text: &str) -> Vec<String> {
    const LEN: usize = 40;
    assert!(text.len() >= LEN, "too short to slice: {}", text.len());
    let middle = (text.len() - LEN) / 2;
    [0, middle, text.len() - LEN]
        .into_iter()
        .map(|at| text[at..at + LEN].to_owned())
        .collect()
}

/// Seconds since the Unix epoch, as the metrics show times.
pub fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// Unix seconds of an RFC 3339 timestamp.
pub fn unix_of(rfc3339: &str) -> i64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339:?} is not RFC 3339: {e}"))
        .unix_timestamp()
}
