//! Revocation over mTLS of every generation a certificate keeps that is still valid (the
//! current one and the previous one kept for rollback), each with its own certificate
//! and key; then the removal of those generations, keys overwritten first. Afterwards
//! the certificate is missing until the next enrollment.

use std::time::SystemTime;

use tracing::{info, warn};

use super::conversation::{connector_for, identity_of};
use super::error::FlowError;
use crate::config::CertificateConfig;
use crate::pki::x509::CertInfo;
use crate::protocol::{Connector, Verdict};
use crate::store::{Generation, Role, Store, StoreError};

/// What became of one generation.
#[derive(Debug)]
pub enum Outcome {
    /// Revoked now.
    Revoked,
    /// The connector already refused it as revoked.
    AlreadyRevoked,
    /// Expired: nothing to revoke.
    Expired,
    /// The revocation failed: the generation stays, with its key.
    Failed(FlowError),
}

/// One generation's revocation.
#[derive(Debug)]
pub struct GenerationRevocation {
    pub role: Role,
    /// The generation directory's name (symlink layout).
    pub generation: Option<String>,
    pub info: CertInfo,
    pub outcome: Outcome,
    /// Why its files could not be removed, when they were meant to be.
    pub removal_error: Option<StoreError>,
}

impl GenerationRevocation {
    /// Its files are gone from disk.
    pub fn removed(&self) -> bool {
        !matches!(self.outcome, Outcome::Failed(_)) && self.removal_error.is_none()
    }
}

/// Revokes every generation of `cfg` whose certificate is still valid, then removes
/// every generation whose revocation succeeded (or which expired) from disk. Fails
/// before any request when no generation is valid; otherwise reports each generation,
/// failed ones included.
pub async fn revoke(
    cfg: &CertificateConfig,
    store: &Store,
) -> Result<Vec<GenerationRevocation>, FlowError> {
    let generations = store.generations()?;
    let now = SystemTime::now();
    let Some(newest) = generations.first() else {
        return Err(FlowError::NotEnrolled {
            dir: cfg.dir.clone(),
        });
    };
    if generations.iter().all(|g| g.material.info.not_after <= now) {
        return Err(FlowError::Expired {
            not_after: crate::pki::verify::timestamp(newest.material.info.not_after),
        });
    }
    let connector = connector_for(cfg)?;
    let mut results = Vec::new();
    for generation in &generations {
        let outcome = revoke_one(cfg, store, &connector, generation, now).await;
        results.push(GenerationRevocation {
            role: generation.role,
            generation: generation.material.generation.clone(),
            info: generation.material.info.clone(),
            outcome,
            removal_error: None,
        });
    }
    if let Some(current) = results.iter().find(|r| {
        r.role == Role::Current && matches!(r.outcome, Outcome::Revoked | Outcome::AlreadyRevoked)
    }) {
        let fact = super::ledger::Fact::Revoked {
            at: SystemTime::now(),
            fingerprint: current.info.fingerprint_sha256.clone(),
        };
        super::ledger::record(store, &[fact])?;
    }
    for (generation, result) in generations.iter().zip(&mut results) {
        if matches!(result.outcome, Outcome::Failed(_)) {
            continue;
        }
        if let Err(e) = store.discard(generation) {
            warn!(
                fingerprint = %result.info.fingerprint_sha256,
                error = %crate::errors::error_chain(&e),
                "cannot remove a revoked generation"
            );
            result.removal_error = Some(e);
        }
    }
    Ok(results)
}

/// Revokes one generation with its own certificate, at the URL it was issued with.
async fn revoke_one(
    cfg: &CertificateConfig,
    store: &Store,
    connector: &crate::protocol::AnyConnector,
    generation: &Generation,
    now: SystemTime,
) -> Outcome {
    let material = &generation.material;
    if material.info.not_after <= now {
        return Outcome::Expired;
    }
    let url = match super::conversation::renewal_url(cfg, material, store) {
        Ok(url) => url,
        Err(e) => return Outcome::Failed(e),
    };
    match connector.revoke(&url, &identity_of(material)).await {
        Ok(()) => {
            info!(
                fingerprint = %material.info.fingerprint_sha256,
                generation = generation.role.as_str(),
                "certificate revoked"
            );
            Outcome::Revoked
        }
        Err(e) if e.verdict() == Verdict::Revoked => Outcome::AlreadyRevoked,
        Err(e) => Outcome::Failed(FlowError::Protocol(e)),
    }
}
