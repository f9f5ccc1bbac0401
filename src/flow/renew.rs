//! Renewal over mTLS: current identity in, verified and swapped material out.

use std::time::SystemTime;

use tracing::{debug, info};

use super::{FlowError, connector_for, generate_key, identity_of, renewal_url, verify_and_swap};
use crate::config::CertificateConfig;
use crate::keys::{build_csr, csr_base64};
use crate::protocol::{Connector, ProtocolError};
use crate::store::{ConsumerPaths, CurrentMaterial, Store};
use crate::subject::Subject;
use crate::verify::VerifyWarning;
use crate::x509::CertInfo;

/// A completed renewal: the new certificate is on disk.
#[derive(Debug)]
pub struct Renewed {
    pub info: CertInfo,
    pub previous: CertInfo,
    pub warnings: Vec<VerifyWarning>,
    pub paths: ConsumerPaths,
}

/// Renews `cfg`'s certificate now, whatever the schedule says.
/// A certificate recorded as revoked is tried all the same: a revocation list cleaned up by
/// an administrator, or a misclassified refusal, heals with the next renewal.
pub async fn renew(cfg: &CertificateConfig, store: &Store) -> Result<Renewed, FlowError> {
    let current = renewable_current(cfg, store)?;
    let state = store.read_state()?;
    let renewal_url = renewal_url(cfg, &state)?;

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

    let (info, warnings) =
        verify_and_swap(cfg, &issued, key, &subject, Some(current.info.lifetime())).await?;
    info!(
        old = %current.info.fingerprint_sha256,
        new = %info.fingerprint_sha256,
        not_after = %crate::verify::timestamp(info.not_after),
        "certificate swapped"
    );
    Ok(Renewed {
        info,
        previous: current.info,
        warnings,
        paths: store.consumer_paths(),
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
            not_after: crate::verify::timestamp(not_after),
            source: error,
        },
        _ => FlowError::Protocol(error),
    }
}

/// The current material, if it can still authenticate a renewal and is not recorded as
/// revoked (what `revoke` and `enroll --if-needed` go by).
pub fn usable_current(
    cfg: &CertificateConfig,
    store: &Store,
) -> Result<CurrentMaterial, FlowError> {
    let current = renewable_current(cfg, store)?;
    if store
        .read_state()?
        .is_revoked(&current.info.fingerprint_sha256)
    {
        return Err(FlowError::Revoked);
    }
    Ok(current)
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
            not_after: crate::verify::timestamp(current.info.not_after),
        });
    }
    Ok(current)
}
