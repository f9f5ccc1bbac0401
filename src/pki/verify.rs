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
#[path = "verify_tests.rs"]
mod tests;
