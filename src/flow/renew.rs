//! Renewal over mTLS: current identity in, verified and swapped material out.

use std::time::SystemTime;

use tracing::{debug, info};

use super::{
    Answer, FlowError, connector_for, generate_key, identity_of, renewal_url, verify_and_commit,
};
use crate::config::CertificateConfig;
use crate::pki::keys::{build_csr, csr_base64};
use crate::pki::subject::Subject;
use crate::pki::verify::VerifyWarning;
use crate::pki::x509::CertInfo;
use crate::protocol::Connector;
use crate::store::{ConsumerPaths, CurrentMaterial, Expect, Store};

/// A completed renewal: the new certificate is on disk.
#[derive(Debug)]
pub struct Renewed {
    pub info: CertInfo,
    pub previous: CertInfo,
    pub warnings: Vec<VerifyWarning>,
    pub paths: ConsumerPaths,
}

/// Renews `cfg`'s certificate now, whatever the schedule says.
pub async fn renew(cfg: &CertificateConfig, store: &Store) -> Result<Renewed, FlowError> {
    let current = usable_current(cfg, store)?;
    let renewal_url = renewal_url(cfg, &current, store)?;

    let connector = connector_for(cfg)?;
    let identity = identity_of(&current);
    debug!(url = %crate::protocol::RedactedUrl::new(&renewal_url), "asking the connector for the signing request info");
    let plan = connector.begin_renew(&renewal_url, &identity).await?;
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
        .await?;

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
    })
}

/// The current material, if it can still authenticate a renewal.
pub fn usable_current(
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
    if store.state().is_revoked(&current.info.fingerprint_sha256) {
        return Err(FlowError::Revoked);
    }
    if current.info.not_after <= SystemTime::now() {
        return Err(FlowError::Expired {
            not_after: crate::pki::verify::timestamp(current.info.not_after),
        });
    }
    Ok(current)
}
