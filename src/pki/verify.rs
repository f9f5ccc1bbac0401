//! Decides whether what a connector returned may replace the current certificate
//! (DESIGN.md section 4): every check before anything touches the disk. Does not talk to
//! the connector nor write files.

use std::fmt;
use std::time::{Duration, SystemTime};

use rustls_pki_types::{CertificateDer, UnixTime};

use crate::pki::keys::PrivateKey;
use crate::pki::subject::Subject;
use crate::pki::x509::{CertInfo, X509Error, der_to_pem, pem_certificates};
use crate::schedule::RenewPolicy;
/// Kept here for the renewal path and the daemon, which format times with it.
pub use crate::time_text::timestamp;

/// How far in the future a fresh certificate's notBefore may lie (server clock skew).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// A lifetime more than this many times the previous one is flagged.
pub const LIFETIME_GROWTH_WARNING: u32 = 2;

/// The three decoded PEM texts a connector returned.
#[derive(Debug, Clone, Copy)]
pub struct ReturnedPems<'a> {
    /// The client certificate (its first block is the leaf).
    pub client_cert: &'a str,
    /// The CA certificate(s), one or more blocks in any order.
    pub ca: &'a str,
    /// The chain: the client certificate, then the CA chain.
    pub chain: &'a str,
}

/// What the certificate must satisfy.
#[derive(Debug, Clone, Copy)]
pub struct Expectations<'a> {
    /// The subject that was requested in the CSR.
    pub subject: &'a Subject,
    pub now: SystemTime,
    /// The renewal policy and jitter (a fraction of the lifetime) from the configuration. A
    /// window too long for the lifetime is clamped (a warning), never a reason to refuse;
    /// only a stale certificate, past even the clamped renewal point, is refused.
    pub renew: RenewPolicy,
    pub jitter: f64,
    /// The lifetime of the certificate being replaced, if any.
    pub previous_lifetime: Option<Duration>,
}

/// Something worth a log line that does not stop the swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyWarning {
    /// The new lifetime is more than `LIFETIME_GROWTH_WARNING` times the previous one.
    LifetimeMuchLonger { previous: Duration, new: Duration },
    /// The configured renewal window (with its jitter) is too long for this lifetime: the
    /// certificate renews at [`crate::schedule::CLAMPED_RENEW_AT`] of it instead.
    WindowClamped {
        /// The setting as written in the configuration (`renew_before = "2h"`).
        setting: String,
        lifetime: Duration,
    },
}

impl fmt::Display for VerifyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyWarning::LifetimeMuchLonger { previous, new } => write!(
                f,
                "the new certificate lives {} while the previous one lived {}",
                humantime::format_duration(*new),
                humantime::format_duration(*previous)
            ),
            VerifyWarning::WindowClamped { setting, lifetime } => write!(
                f,
                "{setting} is too long for a certificate that lives {}: renewing at {:.0}% of its lifetime instead (set a shorter window for this connector)",
                humantime::format_duration(*lifetime),
                crate::schedule::CLAMPED_RENEW_AT * 100.0
            ),
        }
    }
}

/// Why returned material was refused. Each check has its own variant.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the client certificate cannot be read")]
    ClientCert(#[source] X509Error),
    #[error("the CA certificate cannot be read")]
    Ca(#[source] X509Error),
    #[error("the certificate chain cannot be read")]
    Chain(#[source] X509Error),
    #[error("the certificate chain does not start with the client certificate")]
    ChainMismatch,
    #[error("the certificate {fingerprint} is for another public key than the one sent")]
    PublicKeyMismatch { fingerprint: String },
    #[error("the certificate subject `{got}` differs from the requested `{expected}`")]
    SubjectMismatch { expected: String, got: String },
    #[error("the certificate has an empty or inverted validity period")]
    EmptyValidity,
    #[error("the certificate is not valid before {not_before}, too far in the future")]
    NotYetValid { not_before: String },
    #[error("the certificate expired at {not_after}")]
    Expired { not_after: String },
    #[error("the certificate does not chain to the returned CA: {reason}")]
    Untrusted { reason: String },
    #[error(
        "the certificate is stale: issued {not_before}, it is already past its renewal point {renew_from} (not after {not_after})"
    )]
    Stale {
        not_before: String,
        renew_from: String,
        not_after: String,
    },
}

impl VerifyError {
    /// The certificate was issued long ago: renewing it would get the same again at once.
    pub fn is_stale(&self) -> bool {
        matches!(self, VerifyError::Stale { .. })
    }
}

/// The renewal settings as an operator wrote them, for a warning that names them.
fn window_setting(renew: RenewPolicy, jitter: f64) -> String {
    let window = match renew {
        RenewPolicy::At(at) => format!("renew_at = \"{:.0}%\"", at * 100.0),
        RenewPolicy::Before(before) => {
            format!("renew_before = \"{}\"", humantime::format_duration(before))
        }
    };
    if jitter > 0.0 {
        format!("{window} with jitter = \"{:.0}%\"", jitter * 100.0)
    } else {
        window
    }
}

/// Material that passed every check, ready for `Store::swap`. `Debug` shows the
/// certificate facts only, never a PEM body or the key.
#[derive(Clone)]
pub struct VerifiedMaterial {
    /// The leaf certificate, PEM.
    pub cert_pem: String,
    pub key: PrivateKey,
    /// The leaf followed by the CA chain, PEM.
    pub chain_pem: String,
    /// The returned CA certificate(s), PEM.
    pub ca_pem: String,
    /// Facts about the leaf.
    pub info: CertInfo,
    pub warnings: Vec<VerifyWarning>,
}

impl fmt::Debug for VerifiedMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedMaterial")
            .field("info", &self.info)
            .field("key", &self.key)
            .field("warnings", &self.warnings)
            .finish_non_exhaustive()
    }
}

/// Runs every check of DESIGN.md section 4 on what a connector returned for `key`.
pub fn verify(
    returned: ReturnedPems<'_>,
    key: PrivateKey,
    expect: &Expectations<'_>,
) -> Result<VerifiedMaterial, VerifyError> {
    let client_ders = pem_certificates(returned.client_cert).map_err(VerifyError::ClientCert)?;
    let leaf_der = &client_ders[0];
    let info = CertInfo::from_der(leaf_der.as_ref(), 1).map_err(VerifyError::ClientCert)?;
    let ca_ders = pem_certificates(returned.ca).map_err(VerifyError::Ca)?;
    for (i, der) in ca_ders.iter().enumerate() {
        CertInfo::from_der(der.as_ref(), i + 1).map_err(VerifyError::Ca)?;
    }
    let chain_ders = pem_certificates(returned.chain).map_err(VerifyError::Chain)?;
    for (i, der) in chain_ders.iter().enumerate() {
        CertInfo::from_der(der.as_ref(), i + 1).map_err(VerifyError::Chain)?;
    }
    if chain_ders[0] != *leaf_der {
        return Err(VerifyError::ChainMismatch);
    }

    if !key.matches_spki(&info.spki_der) {
        return Err(VerifyError::PublicKeyMismatch {
            fingerprint: info.fingerprint_sha256.clone(),
        });
    }
    if !info.subject_matches(expect.subject) {
        return Err(VerifyError::SubjectMismatch {
            expected: expect.subject.to_string(),
            got: info.subject.clone(),
        });
    }
    check_validity(&info, expect.now)?;
    check_chain(leaf_der, &ca_ders, &chain_ders[1..], &info, expect.now)?;
    // The window is clamped to the lifetime, so a certificate issued now is never due: one
    // that is has been issued long ago, and renewing it would fetch the same again.
    let renew_from = crate::schedule::earliest_renewal_time(
        info.not_before,
        info.not_after,
        expect.renew,
        expect.jitter,
    );
    if expect.now >= renew_from {
        return Err(VerifyError::Stale {
            not_before: timestamp(info.not_before),
            renew_from: timestamp(renew_from),
            not_after: timestamp(info.not_after),
        });
    }

    let mut warnings = Vec::new();
    if crate::schedule::window_is_clamped(info.lifetime(), expect.renew) {
        warnings.push(VerifyWarning::WindowClamped {
            setting: window_setting(expect.renew, expect.jitter),
            lifetime: info.lifetime(),
        });
    }
    if let Some(previous) = expect.previous_lifetime {
        let new = info.lifetime();
        if !previous.is_zero() && new > previous.saturating_mul(LIFETIME_GROWTH_WARNING) {
            warnings.push(VerifyWarning::LifetimeMuchLonger { previous, new });
        }
    }

    let cert_pem = der_to_pem(leaf_der.as_ref());
    let ca_pem: String = ca_ders.iter().map(|d| der_to_pem(d.as_ref())).collect();
    let rest: String = if chain_ders.len() > 1 {
        chain_ders[1..]
            .iter()
            .map(|d| der_to_pem(d.as_ref()))
            .collect()
    } else {
        ca_pem.clone()
    };
    Ok(VerifiedMaterial {
        chain_pem: format!("{cert_pem}{rest}"),
        cert_pem,
        ca_pem,
        key,
        info,
        warnings,
    })
}

/// Whether the certificate in `cert_pem` chains to a CA of `ca_pem` for client
/// authentication (through the rest of `chain_pem`), at a moment of its validity: what
/// `check` asks of the files on disk.
pub fn chains_to(cert_pem: &str, chain_pem: &str, ca_pem: &str) -> Result<(), VerifyError> {
    let untrusted = |reason: String| VerifyError::Untrusted { reason };
    let leaf = crate::pki::x509::pem_certificates(cert_pem)
        .map_err(|e| untrusted(e.to_string()))?
        .into_iter()
        .next()
        .ok_or_else(|| untrusted("no certificate".into()))?;
    let info = CertInfo::from_pem(cert_pem).map_err(|e| untrusted(e.to_string()))?;
    let cas = crate::pki::x509::pem_certificates(ca_pem).map_err(|e| untrusted(e.to_string()))?;
    let chain =
        crate::pki::x509::pem_certificates(chain_pem).map_err(|e| untrusted(e.to_string()))?;
    let rest: Vec<CertificateDer<'static>> = chain.into_iter().filter(|c| *c != leaf).collect();
    check_chain(&leaf, &cas, &rest, &info, info.not_before)
}

fn check_validity(info: &CertInfo, now: SystemTime) -> Result<(), VerifyError> {
    if info.not_after <= info.not_before {
        return Err(VerifyError::EmptyValidity);
    }
    if info.not_before > now + MAX_CLOCK_SKEW {
        return Err(VerifyError::NotYetValid {
            not_before: timestamp(info.not_before),
        });
    }
    if info.not_after <= now {
        return Err(VerifyError::Expired {
            not_after: timestamp(info.not_after),
        });
    }
    Ok(())
}

fn check_chain(
    leaf: &CertificateDer<'_>,
    cas: &[CertificateDer<'static>],
    chain_rest: &[CertificateDer<'static>],
    info: &CertInfo,
    now: SystemTime,
) -> Result<(), VerifyError> {
    let untrusted = |e: webpki::Error| VerifyError::Untrusted {
        reason: e.to_string(),
    };
    let end_entity = webpki::EndEntityCert::try_from(leaf).map_err(untrusted)?;
    let anchors = cas
        .iter()
        .map(|der| webpki::anchor_from_trusted_cert(der).map(|a| a.to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(untrusted)?;
    let intermediates: Vec<CertificateDer<'_>> =
        chain_rest.iter().chain(cas.iter()).cloned().collect();
    // The validity was checked above with skew allowance; check the path at a moment
    // inside the leaf's validity so that a server clock slightly ahead is not refused.
    let at = now.max(info.not_before);
    let since_epoch = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &intermediates,
            UnixTime::since_unix_epoch(since_epoch),
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .map_err(untrusted)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{SUBJECT, TestCa, issued, key};

    const DAY: Duration = Duration::from_secs(86_400);

    fn expect(subject: &Subject, now: SystemTime) -> Expectations<'_> {
        Expectations {
            subject,
            now,
            renew: RenewPolicy::At(0.7),
            jitter: 0.05,
            previous_lifetime: None,
        }
    }

    fn pems<'a>(t: &'a (String, String, String)) -> ReturnedPems<'a> {
        ReturnedPems {
            client_cert: &t.0,
            ca: &t.1,
            chain: &t.2,
        }
    }

    #[test]
    fn fresh_certificate_from_the_ca_for_our_key_passes() {
        let ca = TestCa::new("ca");
        let key = key();
        let now = SystemTime::now();
        let got = issued(&ca, &key, now, 10 * DAY);
        let subject = Subject::parse(SUBJECT).unwrap();
        let material = verify(pems(&got), key.clone(), &expect(&subject, now)).unwrap();
        assert_eq!(material.info.lifetime(), 10 * DAY);
        assert!(material.chain_pem.starts_with(&material.cert_pem));
        assert_eq!(
            crate::pki::x509::parse_pem_bundle(&material.chain_pem)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(material.key.public_key_der(), key.public_key_der());
        assert!(material.warnings.is_empty());
        let debug = format!("{material:?}");
        assert!(!debug.contains("BEGIN"), "{debug}");
    }

    #[test]
    fn ca_bundle_in_any_order_with_an_unrelated_ca_still_verifies() {
        let ca = TestCa::new("ca");
        let other = TestCa::new("other");
        let key = key();
        let now = SystemTime::now();
        let (client, ca_pem, chain) = issued(&ca, &key, now, DAY);
        let bundle = format!("{}{ca_pem}", other.pem());
        let subject = Subject::parse(SUBJECT).unwrap();
        let returned = (client, bundle, chain);
        assert!(verify(pems(&returned), key, &expect(&subject, now)).is_ok());
    }

    #[test]
    fn certificate_for_another_key_is_refused() {
        let ca = TestCa::new("ca");
        let got = issued(&ca, &key(), SystemTime::now(), DAY);
        let subject = Subject::parse(SUBJECT).unwrap();
        let err = verify(pems(&got), key(), &expect(&subject, SystemTime::now())).unwrap_err();
        assert!(
            matches!(err, VerifyError::PublicKeyMismatch { .. }),
            "{err}"
        );
    }

    #[test]
    fn certificate_with_another_subject_is_refused() {
        let ca = TestCa::new("ca");
        let key = key();
        let now = SystemTime::now();
        let client = ca.issue(&key, "O=Org,CN=intruder", now, DAY);
        let got = (client.clone(), ca.pem(), format!("{client}{}", ca.pem()));
        let subject = Subject::parse(SUBJECT).unwrap();
        let err = verify(pems(&got), key, &expect(&subject, now)).unwrap_err();
        assert!(matches!(err, VerifyError::SubjectMismatch { .. }), "{err}");
    }

    #[test]
    fn certificate_from_an_unrelated_ca_is_refused() {
        let ca = TestCa::new("ca");
        let other = TestCa::new("other");
        let key = key();
        let now = SystemTime::now();
        let (client, _, chain) = issued(&ca, &key, now, DAY);
        let got = (client, other.pem(), chain);
        let subject = Subject::parse(SUBJECT).unwrap();
        let err = verify(pems(&got), key, &expect(&subject, now)).unwrap_err();
        assert!(matches!(err, VerifyError::Untrusted { .. }), "{err}");
    }

    #[test]
    fn expired_and_future_certificates_are_refused() {
        let ca = TestCa::new("ca");
        let key = key();
        let now = SystemTime::now();
        let subject = Subject::parse(SUBJECT).unwrap();
        let old = issued(&ca, &key, now - 2 * DAY, DAY);
        let err = verify(pems(&old), key.clone(), &expect(&subject, now)).unwrap_err();
        assert!(matches!(err, VerifyError::Expired { .. }), "{err}");
        let future = issued(&ca, &key, now + Duration::from_secs(600), DAY);
        let err = verify(pems(&future), key.clone(), &expect(&subject, now)).unwrap_err();
        assert!(matches!(err, VerifyError::NotYetValid { .. }), "{err}");
    }

    #[test]
    fn server_clock_a_little_ahead_is_tolerated() {
        let ca = TestCa::new("ca");
        let key = key();
        let now = SystemTime::now();
        let got = issued(&ca, &key, now + Duration::from_secs(120), DAY);
        let subject = Subject::parse(SUBJECT).unwrap();
        assert!(verify(pems(&got), key, &expect(&subject, now)).is_ok());
    }

    #[test]
    fn a_stale_certificate_is_refused_but_never_a_fresh_one_for_its_window() {
        let ca = TestCa::new("ca");
        let key = key();
        let now = SystemTime::now();
        let subject = Subject::parse(SUBJECT).unwrap();
        // 10 days, issued 6.6 days ago: 66% elapsed, due at 70% - 5% = 65%.
        let got = issued(&ca, &key, now - DAY.mul_f64(6.6), 10 * DAY);
        let err = verify(pems(&got), key.clone(), &expect(&subject, now)).unwrap_err();
        assert!(err.is_stale(), "{err}");
        // A guide's renew_before = "2h" with 10% jitter on a 1-hour certificate: kept, with
        // a warning naming the setting, and due at 70% less at most 10% of the lifetime.
        let hour = Duration::from_secs(3600);
        let mut e = expect(&subject, now);
        e.renew = RenewPolicy::Before(2 * hour);
        e.jitter = 0.1;
        let fresh = issued(&ca, &key, now, hour);
        let material = verify(pems(&fresh), key.clone(), &e).expect("a fresh certificate is kept");
        assert_eq!(
            material.warnings,
            [VerifyWarning::WindowClamped {
                setting: "renew_before = \"2h\" with jitter = \"10%\"".into(),
                lifetime: hour
            }]
        );
        assert!(material.warnings[0].to_string().contains("renew_before"));
        let due = crate::schedule::earliest_renewal_time(now, now + hour, e.renew, e.jitter);
        assert_eq!(due, now + hour.mul_f64(0.6));
        // Clamped or not, a certificate issued long ago is stale.
        let older = issued(&ca, &key, now - hour.mul_f64(0.65), hour);
        let err = verify(pems(&older), key, &e).unwrap_err();
        assert!(err.is_stale(), "{err}");
    }

    #[test]
    fn much_longer_lifetime_passes_with_a_warning() {
        let ca = TestCa::new("ca");
        let key = key();
        let now = SystemTime::now();
        let got = issued(&ca, &key, now, 10 * DAY);
        let subject = Subject::parse(SUBJECT).unwrap();
        let mut e = expect(&subject, now);
        e.previous_lifetime = Some(DAY);
        let material = verify(pems(&got), key, &e).unwrap();
        assert_eq!(
            material.warnings,
            [VerifyWarning::LifetimeMuchLonger {
                previous: DAY,
                new: 10 * DAY
            }]
        );
    }

    #[test]
    fn chain_that_does_not_start_with_the_client_certificate_is_refused() {
        let ca = TestCa::new("ca");
        let key = key();
        let now = SystemTime::now();
        let (client, ca_pem, _) = issued(&ca, &key, now, DAY);
        let got = (client, ca_pem.clone(), ca_pem);
        let subject = Subject::parse(SUBJECT).unwrap();
        let err = verify(pems(&got), key, &expect(&subject, now)).unwrap_err();
        assert!(matches!(err, VerifyError::ChainMismatch), "{err}");
    }

    #[test]
    fn unreadable_pem_is_refused_per_field() {
        let ca = TestCa::new("ca");
        let key = key();
        let now = SystemTime::now();
        let subject = Subject::parse(SUBJECT).unwrap();
        let (client, ca_pem, chain) = issued(&ca, &key, now, DAY);
        let cases = [
            ("garbage".to_owned(), ca_pem.clone(), chain.clone()),
            (client.clone(), "garbage".to_owned(), chain.clone()),
            (client.clone(), ca_pem.clone(), String::new()),
        ];
        let errs: Vec<_> = cases
            .iter()
            .map(|c| verify(pems(c), key.clone(), &expect(&subject, now)).unwrap_err())
            .collect();
        assert!(matches!(errs[0], VerifyError::ClientCert(_)));
        assert!(matches!(errs[1], VerifyError::Ca(_)));
        assert!(matches!(errs[2], VerifyError::Chain(_)));
    }

    #[test]
    fn the_earliest_renewal_time_subtracts_the_full_jitter() {
        let worst_case_renewal_time = |info: &CertInfo, renew, jitter| {
            crate::schedule::earliest_renewal_time(info.not_before, info.not_after, renew, jitter)
        };
        let ca = TestCa::new("ca");
        let key = key();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let (client, _, _) = issued(&ca, &key, start, 100 * DAY);
        let info = CertInfo::from_pem(&client).unwrap();
        assert_eq!(
            worst_case_renewal_time(&info, RenewPolicy::At(0.7), 0.05),
            start + 65 * DAY
        );
        assert_eq!(
            worst_case_renewal_time(&info, RenewPolicy::Before(30 * DAY), 0.05),
            start + 65 * DAY
        );
        // A window longer than the lifetime is clamped to 70% of it.
        assert_eq!(
            worst_case_renewal_time(&info, RenewPolicy::Before(300 * DAY), 0.0),
            start + 70 * DAY
        );
        // Never earlier than the schedule's floor, 10% of the lifetime, jitter included.
        assert_eq!(
            worst_case_renewal_time(&info, RenewPolicy::Before(85 * DAY), 0.5),
            start + 10 * DAY
        );
        // A policy that cannot be read still waits for the floor.
        assert_eq!(
            worst_case_renewal_time(&info, RenewPolicy::At(f64::NAN), f64::INFINITY),
            start + 10 * DAY
        );
    }
}
