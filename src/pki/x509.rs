//! Reads X.509 certificates into the facts the daemon needs (names, fingerprint, validity,
//! public key). Does not decide whether a certificate is acceptable (see `verify`).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use crate::pki::subject::{Subject, SubjectKey};
use crate::schedule::{self, RenewPolicy};
use crate::time_text::timestamp;

/// Why certificate text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum X509Error {
    #[error("no PEM certificate found")]
    NoCertificate,
    #[error("PEM block {index} is malformed")]
    Pem { index: usize },
    #[error("certificate {index} is not valid DER X.509: {reason}")]
    Der { index: usize, reason: String },
    #[error("certificate {index} has trailing bytes after its DER encoding")]
    TrailingData { index: usize },
}

/// What the daemon knows about one certificate. `Debug` leaves out the DER.
#[derive(Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject for display, RFC 4514 style (`CN=..., O=...`).
    pub subject: String,
    /// The subject's (short name or dotted OID, value) pairs, sorted.
    pub subject_attributes: Vec<(String, String)>,
    /// The issuer for display.
    pub issuer: String,
    /// SHA-256 of the DER, lower-case hex without separators.
    pub fingerprint_sha256: String,
    /// Serial number, lower-case hex (the connectors issue them all with serial 2).
    pub serial: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// SubjectPublicKeyInfo DER.
    pub spki_der: Vec<u8>,
    /// The whole certificate DER.
    pub der: Vec<u8>,
}

impl std::fmt::Debug for CertInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertInfo")
            .field("subject", &self.subject)
            .field("issuer", &self.issuer)
            .field("fingerprint_sha256", &self.fingerprint_sha256)
            .field("serial", &self.serial)
            .field("not_before", &timestamp(self.not_before))
            .field("not_after", &timestamp(self.not_after))
            .finish_non_exhaustive()
    }
}

impl CertInfo {
    /// The first certificate of a PEM text.
    pub fn from_pem(text: &str) -> Result<CertInfo, X509Error> {
        let first = pem_certificates(text)?
            .into_iter()
            .next()
            .ok_or(X509Error::NoCertificate)?;
        CertInfo::from_der(first.as_ref(), 1)
    }

    /// One DER certificate; `index` (1-based) only labels errors.
    pub fn from_der(der: &[u8], index: usize) -> Result<CertInfo, X509Error> {
        let (rest, cert) =
            x509_parser::certificate::X509Certificate::from_der(der).map_err(|e| {
                X509Error::Der {
                    index,
                    reason: e.to_string(),
                }
            })?;
        if !rest.is_empty() {
            return Err(X509Error::TrailingData { index });
        }
        let validity = cert.validity();
        Ok(CertInfo {
            subject: cert.subject().to_string(),
            subject_attributes: name_attributes(cert.subject()),
            issuer: cert.issuer().to_string(),
            fingerprint_sha256: hex(sha256(der).as_ref()),
            serial: hex(cert.raw_serial()),
            not_before: system_time(validity.not_before.timestamp()),
            not_after: system_time(validity.not_after.timestamp()),
            spki_der: cert.public_key().raw.to_vec(),
            der: der.to_vec(),
        })
    }

    /// The fingerprint as colon-separated upper-case pairs, as `openssl x509 -fingerprint`
    /// prints it.
    pub fn fingerprint_colon(&self) -> String {
        let mut out = String::with_capacity(self.fingerprint_sha256.len() * 3 / 2);
        for (i, pair) in self.fingerprint_sha256.as_bytes().chunks(2).enumerate() {
            if i > 0 {
                out.push(':');
            }
            out.push_str(&String::from_utf8_lossy(pair).to_ascii_uppercase());
        }
        out
    }

    /// notAfter − notBefore (zero when inverted).
    pub fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or_default()
    }

    /// When this certificate is due for renewal under `policy` and `jitter` (a fraction of
    /// the lifetime): [`schedule::renewal_time`] with this host's stable jitter.
    pub fn renewal_due(&self, policy: RenewPolicy, jitter: f64) -> SystemTime {
        let seed = schedule::jitter_seed(&self.fingerprint_sha256, &schedule::host_name());
        schedule::renewal_time(self.not_before, self.not_after, policy, jitter, seed)
    }

    /// Whether the subject holds exactly `subject`'s attribute/value pairs.
    pub fn subject_matches(&self, subject: &Subject) -> bool {
        let mut ours: Vec<(String, String)> = subject
            .attributes()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
            .collect();
        ours.sort();
        ours == self.subject_attributes
    }

    /// The certificate as PEM text.
    pub fn to_pem(&self) -> String {
        der_to_pem(&self.der)
    }
}

/// Every certificate of a PEM bundle, in order, each parsed. Other PEM sections are
/// skipped; no certificate at all is an error.
pub fn parse_pem_bundle(text: &str) -> Result<Vec<CertInfo>, X509Error> {
    pem_certificates(text)?
        .iter()
        .enumerate()
        .map(|(i, der)| CertInfo::from_der(der.as_ref(), i + 1))
        .collect()
}

/// The DER of every certificate of a PEM text, in order.
pub fn pem_certificates(text: &str) -> Result<Vec<CertificateDer<'static>>, X509Error> {
    let mut out = Vec::new();
    for (i, item) in CertificateDer::pem_slice_iter(text.as_bytes()).enumerate() {
        out.push(item.map_err(|_| X509Error::Pem { index: i + 1 })?);
    }
    if out.is_empty() {
        return Err(X509Error::NoCertificate);
    }
    Ok(out)
}

/// PEM text for one DER certificate (64-column base64, trailing newline).
pub fn der_to_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 60);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// SHA-256 digest.
pub fn sha256(data: &[u8]) -> aws_lc_rs::digest::Digest {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn name_attributes(name: &X509Name<'_>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = name
        .iter_attributes()
        .map(|attr| {
            let key = SubjectKey::from_oid(attr.attr_type())
                .map(|k| k.as_str().to_owned())
                .unwrap_or_else(|| attr.attr_type().to_id_string());
            let value = attr
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|_| format!("#{}", hex(attr.attr_value().data)));
            (key, value)
        })
        .collect();
    out.sort();
    out
}

fn system_time(unix_seconds: i64) -> SystemTime {
    if unix_seconds >= 0 {
        UNIX_EPOCH + Duration::from_secs(unix_seconds.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(unix_seconds.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(cn: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = Subject::parse(&format!("O=Org,C=DE,CN={cn}"))
            .unwrap()
            .to_distinguished_name();
        params.not_before = rcgen::date_time_ymd(2030, 1, 2);
        params.not_after = rcgen::date_time_ymd(2030, 1, 12);
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[2]));
        (params.self_signed(&key).unwrap(), key)
    }

    #[test]
    fn cert_info_reports_names_validity_serial_and_fingerprint() {
        let (cert, key) = self_signed("orders");
        let info = CertInfo::from_pem(&cert.pem()).unwrap();
        assert!(info.subject.contains("CN=orders"), "{}", info.subject);
        assert_eq!(info.issuer, info.subject);
        assert_eq!(info.serial, "02");
        assert_eq!(info.fingerprint_sha256, hex(sha256(cert.der()).as_ref()));
        assert_eq!(info.fingerprint_sha256.len(), 64);
        assert_eq!(info.fingerprint_colon().len(), 95);
        assert_eq!(
            info.not_after.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_894_406_400
        );
        assert_eq!(info.lifetime(), Duration::from_secs(10 * 86_400));
        assert!(crate::pki::keys::spki_equal(
            &info.spki_der,
            &rcgen::PublicKeyData::subject_public_key_info(&key)
        ));
        assert!(info.subject_matches(&Subject::parse("CN=orders,C=DE,O=Org").unwrap()));
        assert!(!info.subject_matches(&Subject::parse("CN=orders,C=DE").unwrap()));
        assert_eq!(info.to_pem(), cert.pem().replace("\r\n", "\n"));
        let debug = format!("{info:?}");
        assert!(debug.contains(&info.fingerprint_sha256));
        assert!(!debug.contains("der: ["), "{debug}");
    }

    #[test]
    fn bundle_yields_every_certificate_in_order_and_skips_other_sections() {
        let (a, key) = self_signed("a");
        let (b, _) = self_signed("b");
        let text = format!("{}{}{}", a.pem(), key.serialize_pem(), b.pem());
        let infos = parse_pem_bundle(&text).unwrap();
        assert_eq!(infos.len(), 2);
        assert!(infos[0].subject.contains("CN=a"));
        assert!(infos[1].subject.contains("CN=b"));
    }

    #[test]
    fn text_without_certificates_or_with_broken_der_is_an_error() {
        assert_eq!(parse_pem_bundle(""), Err(X509Error::NoCertificate));
        assert_eq!(
            CertInfo::from_pem("hello world"),
            Err(X509Error::NoCertificate)
        );
        let broken = der_to_pem(&[0x30, 0x03, 0x02, 0x01, 0x02]);
        assert!(matches!(
            CertInfo::from_pem(&broken),
            Err(X509Error::Der { index: 1, .. })
        ));
        let (cert, _) = self_signed("x");
        let mut der = cert.der().to_vec();
        der.push(0);
        assert_eq!(
            CertInfo::from_pem(&der_to_pem(&der)),
            Err(X509Error::TrailingData { index: 1 })
        );
    }
}
