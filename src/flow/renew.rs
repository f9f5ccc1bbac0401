//! Renewal over mTLS: current identity in, verified and swapped material out.

use std::time::SystemTime;

use tracing::{debug, info, warn};

use super::conversation::{
    Answer, connector_for, generate_key, identity_of, renewal_url, verify_and_commit,
};
use super::error::FlowError;
use super::ledger::{Attempted, Fact};
use crate::config::CertificateConfig;
use crate::pki::keys::{build_csr, csr_base64};
use crate::pki::subject::Subject;
use crate::pki::verify::VerifyWarning;
use crate::pki::x509::CertInfo;
use crate::protocol::{Connector, ProtocolError};
use crate::store::{ConsumerPaths, CurrentMaterial, Expect, Store};

/// A completed renewal: the new certificate is on disk.
#[derive(Debug)]
pub struct Renewed {
    pub info: CertInfo,
    pub previous: CertInfo,
    pub warnings: Vec<VerifyWarning>,
    pub paths: ConsumerPaths,
    /// The connector returned a CA bundle that differs from the previous generation's.
    pub ca_changed: bool,
}

/// One renewal: its result, and the certificate it authenticated with.
#[derive(Debug)]
pub struct RenewAttempt {
    /// SHA-256 fingerprint of the certificate the attempt started from.
    pub used: Option<String>,
    pub result: Result<Renewed, FlowError>,
}

impl RenewAttempt {
    /// What the ledger records of this attempt at `at`; `None` when it does not count as
    /// one (see [`FlowError::reached_connector`]).
    pub fn fact(&self, at: SystemTime) -> Option<Fact> {
        let outcome = match &self.result {
            Ok(_) => Attempted::Renewed,
            Err(e) if !e.reached_connector() => return None,
            Err(e) => Attempted::Failed {
                error: crate::errors::error_chain(e),
                evidence: e.evidence(),
            },
        };
        Some(Fact::Attempt {
            at,
            fingerprint: self.used.clone()?,
            outcome,
        })
    }
}

/// Renews `cfg`'s certificate now, whatever the schedule says (the policy decides
/// when). A certificate recorded as revoked is tried all the same: a revocation list
/// cleaned up by an administrator, or a misclassified refusal, heals with the next
/// renewal.
pub async fn renew(cfg: &CertificateConfig, store: &Store) -> RenewAttempt {
    // Reading the files may wait (boundedly) for the directory lock while a files-layout
    // swap completes: off the event loop.
    let current = {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || renewable_current(&cfg, &Store::new(&cfg)))
            .await
            .map_err(|_| FlowError::Interrupted)
            .and_then(|current| current)
    };
    match current {
        Ok(current) => RenewAttempt {
            used: Some(current.info.fingerprint_sha256.clone()),
            result: renew_from(cfg, store, current).await,
        },
        Err(e) => RenewAttempt {
            used: None,
            result: Err(e),
        },
    }
}

async fn renew_from(
    cfg: &CertificateConfig,
    store: &Store,
    current: CurrentMaterial,
) -> Result<Renewed, FlowError> {
    let renewal_url = renewal_url(cfg, &current, store)?;

    let connector = connector_for(cfg)?;
    let identity = identity_of(&current);
    debug!(url = %crate::protocol::RedactedUrl::new(&renewal_url), "asking the connector for the signing request info");
    let not_after = current.info.not_after;
    let plan = connector
        .begin_renew(&renewal_url, &identity)
        .await
        .map_err(|e| expired_by_whose_clock(e, not_after))?;
    let subject = Subject::parse(&plan.subject)?;

    let key = if cfg.rotate_key {
        generate_key(cfg.key_algorithm).await?
    } else {
        current.key.clone()
    };
    let csr = build_csr(&key, &subject)?;
    debug!("sending the signing request");
    let issued = connector
        .sign(&plan, &csr_base64(&csr), Some(&identity))
        .await
        .map_err(|e| expired_by_whose_clock(e, not_after))?;

    // Committed only if the files still hold the certificate this renewal started from:
    // an `enroll` or another renewal meanwhile wins, and this one is discarded.
    let committed = verify_and_commit(
        cfg,
        Answer {
            plan: &plan,
            issued: &issued,
            key,
            subject: &subject,
        },
        Some(current.info.lifetime()),
        Expect::Current(Some(current.info.fingerprint_sha256.clone())),
    )
    .await?;
    let (info, warnings) = (committed.info, committed.warnings);
    let ca_changed = ca_bundle_changed(&current.ca_pem, &issued.ca_pem);
    if ca_changed {
        warn!(
            old_ca = %ca_fingerprints(&current.ca_pem),
            new_ca = %ca_fingerprints(&issued.ca_pem),
            "the connector returned a different CA bundle: servers that verify this client must trust the new CA"
        );
    }
    info!(
        old = %current.info.fingerprint_sha256,
        new = %info.fingerprint_sha256,
        not_after = %crate::pki::verify::timestamp(info.not_after),
        "certificate swapped"
    );
    Ok(Renewed {
        info,
        previous: current.info,
        warnings,
        paths: store.consumer_paths(),
        ca_changed,
    })
}

/// A handshake refused with `certificate_expired` for a certificate that this host's clock
/// still calls valid: one of the two clocks is wrong, and the operator should know which
/// question to ask.
fn expired_by_whose_clock(error: ProtocolError, not_after: SystemTime) -> FlowError {
    match &error {
        ProtocolError::HandshakeRefused {
            alert: rustls::AlertDescription::CertificateExpired,
            ..
        } if not_after > SystemTime::now() => FlowError::ClockSkew {
            not_after: crate::pki::verify::timestamp(not_after),
            source: error,
        },
        _ => FlowError::Protocol(error),
    }
}

/// The current material, if it is present and not expired: all a renewal attempt needs.
pub fn renewable_current(
    cfg: &CertificateConfig,
    store: &Store,
) -> Result<CurrentMaterial, FlowError> {
    let current = store
        .load_current()?
        .ok_or_else(|| FlowError::NotEnrolled {
            // Where the certificate is expected: `dir`, or the files layout's folder.
            dir: store
                .consumer_paths()
                .cert
                .parent()
                .map_or_else(|| cfg.dir.clone(), ToOwned::to_owned),
        })?;
    if current.info.not_after <= SystemTime::now() {
        return Err(FlowError::Expired {
            not_after: crate::pki::verify::timestamp(current.info.not_after),
        });
    }
    Ok(current)
}

/// The DER certificates of a PEM bundle, sorted: the CA bundle as a set, since the
/// connectors return its blocks in any order.
fn ca_set(pem: &str) -> Vec<Vec<u8>> {
    let mut set: Vec<Vec<u8>> = crate::pki::x509::pem_certificates(pem)
        .map(|certs| certs.iter().map(|c| c.to_vec()).collect())
        .unwrap_or_default();
    set.sort();
    set.dedup();
    set
}

/// Whether two CA bundles hold different certificates (order, armour and whitespace aside).
fn ca_bundle_changed(old: &str, new: &str) -> bool {
    ca_set(old) != ca_set(new)
}

/// The short SHA-256 fingerprints of a CA bundle's certificates in the bundle's order,
/// for the log.
fn ca_fingerprints(pem: &str) -> String {
    let certs = crate::pki::x509::pem_certificates(pem).unwrap_or_default();
    let shown: Vec<String> = certs
        .iter()
        .map(|der| crate::pki::x509::hex(&crate::pki::x509::sha256(der).as_ref()[..8]))
        .collect();
    shown.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TestCa;

    #[test]
    fn a_ca_bundle_is_compared_as_a_set_of_certificates() {
        let (a, b) = (TestCa::new("a").pem(), TestCa::new("b").pem());
        assert!(!ca_bundle_changed(&a, &format!("\n{a}\n")));
        assert!(!ca_bundle_changed(&format!("{a}{b}"), &format!("{b}{a}")));
        assert!(ca_bundle_changed(&a, &b));
        assert!(
            ca_bundle_changed(&a, &format!("{a}{b}")),
            "a CA joined the bundle"
        );
        assert_eq!(ca_fingerprints(&format!("{a}{b}")).split(',').count(), 2);
    }
}
