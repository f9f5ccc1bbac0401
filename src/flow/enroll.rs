//! First enrollment with a one-time token: the token-secured URL in, the first verified
//! certificate and the learned renewal URL out.

use std::time::SystemTime;

use tracing::{debug, info, warn};

use super::conversation::{Answer, connector_for, generate_key, verify_and_commit};
use super::error::FlowError;
use super::ledger::{self, Fact};
use crate::config::CertificateConfig;
use crate::hooks::hook_key;
use crate::pki::keys::{build_csr, csr_base64};
use crate::pki::subject::Subject;
use crate::pki::x509::CertInfo;
use crate::protocol::Connector;
use crate::store::{Expect, Store};
use crate::token::{EnrollTarget, OneTimeToken, enroll_target};

/// What `enroll` was given.
#[derive(Debug)]
pub struct EnrollRequest {
    /// `--url`; see [`crate::token::enroll_target`] for what is used when it is absent.
    pub url: Option<String>,
    /// The one-time token in any form; kyma-rest may carry it in the URL instead.
    pub token: Option<OneTimeToken>,
}

/// Checks, before the one-time token is sent, everything that could make the issued
/// certificate unusable: the store can be written where the files go (modes, ownership,
/// the types of the paths consumers read) and the outputs can be produced. A token is
/// spent once: failing here keeps it for the next try.
/// Returns whether a certificate is in place now (the new one replaces it).
async fn preflight(cfg: &CertificateConfig) -> Result<bool, FlowError> {
    crate::outputs::preflight(&cfg.outputs)?;
    let store = Store::new(cfg);
    // Off the event loop: the lock may wait, and files are read.
    let replaces = tokio::task::spawn_blocking(move || {
        store.preflight()?;
        Ok::<_, crate::store::StoreError>(!matches!(store.load_current(), Ok(None)))
    })
    .await
    .map_err(|_| FlowError::Interrupted)??;
    debug!("the store and the outputs are ready for a new certificate");
    Ok(replaces)
}

/// Enrolls `cfg`'s certificate, replacing whatever was there (an operator's decision).
pub async fn enroll(
    cfg: &CertificateConfig,
    request: EnrollRequest,
) -> Result<CertInfo, FlowError> {
    // Decided before any request, so that a token in the wrong form is not burned.
    let EnrollTarget { url, token } = enroll_target(
        cfg.protocol,
        request.token,
        request.url.as_deref(),
        cfg.connector_url.as_ref(),
    )?;
    let connector = connector_for(cfg)?;
    // Only a certificate that replaces another concerns the dependents: the first one
    // is what they start with.
    let replaces = preflight(cfg).await?;
    debug!(url = %crate::protocol::RedactedUrl::new(&url), "asking the connector for the signing request info");
    let plan = connector.begin_enroll(&url, token.as_ref()).await?;
    drop(token);
    let subject = Subject::parse(&plan.subject)?;
    if let Some(announced) = plan.announced_key_algorithm()
        && announced != cfg.key_algorithm
    {
        debug!(
            announced = announced.as_str(),
            configured = cfg.key_algorithm.as_str(),
            "the connector announced another key algorithm; using the configured one"
        );
    }

    let key = generate_key(cfg.key_algorithm).await?;
    let csr = build_csr(&key, &subject)?;
    debug!("sending the signing request");
    let issued = connector.sign(&plan, &csr_base64(&csr), None).await?;
    // An enrollment replaces whatever is there: the operator asked for it.
    let committed = verify_and_commit(
        cfg,
        Answer {
            plan: &plan,
            issued: &issued,
            key,
            subject: &subject,
        },
        None,
        Expect::Anything,
    )
    .await?;
    let info = committed.info;

    // The first certificate is what the dependents start with: no hook owes it.
    let fact = Fact::Enrolled {
        at: SystemTime::now(),
        fingerprint: info.fingerprint_sha256.clone(),
        protocol: cfg.protocol,
        renewal_url: plan.renewal_url.clone(),
        told: (!replaces).then(|| cfg.on_renew.iter().map(hook_key).collect()),
    };
    let store = Store::new(cfg);
    tokio::task::spawn_blocking(move || ledger::record(&store, &[fact]))
        .await
        .map_err(|_| FlowError::Interrupted)??;
    if plan.renewal_url.is_none() && cfg.renewal_url.is_none() {
        warn!("the connector announced no renewal URL; set `renewal_url` or renewals will fail");
    }
    info!(fingerprint = %info.fingerprint_sha256, not_after = %crate::pki::verify::timestamp(info.not_after), "enrolled");
    Ok(info)
}
