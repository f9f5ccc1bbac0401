//! Revocation over mTLS; afterwards the certificate's state is `revoked`.

use tracing::info;

use super::renew::usable_current;
use super::{FlowError, connector_for, identity_of, renewal_url};
use crate::config::CertificateConfig;
use crate::protocol::Connector;
use crate::store::Store;
use crate::x509::CertInfo;

/// Revokes the current certificate at the connector and records it in `state.json`.
pub async fn revoke(cfg: &CertificateConfig, store: &Store) -> Result<CertInfo, FlowError> {
    let current = usable_current(cfg, store)?;
    let renewal_url = renewal_url(cfg, &current, store)?;
    let connector = connector_for(cfg)?;
    connector
        .revoke(&renewal_url, &identity_of(&current))
        .await?;
    store.update_state(|state| {
        state.revoked = Some(crate::store::Revocation {
            at: std::time::SystemTime::now(),
            fingerprint: current.info.fingerprint_sha256.clone(),
        });
    })?;
    info!(fingerprint = %current.info.fingerprint_sha256, "certificate revoked");
    Ok(current.info)
}
