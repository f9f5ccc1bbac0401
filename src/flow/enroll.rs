//! First enrollment with a one-time token: the token-secured URL in, the first verified
//! certificate and the learned renewal URL out.

use std::time::SystemTime;

use super::{FlowError, connector_for, generate_key, verify_and_swap};
use crate::config::CertificateConfig;
use crate::keys::{build_csr, csr_base64};
use crate::protocol::Connector;
use crate::store::Store;
use crate::subject::Subject;
use crate::token::{EnrollTarget, OneTimeToken, enroll_target};
use crate::x509::CertInfo;
use tracing::{debug, info, warn};

/// What `enroll` was given.
#[derive(Debug)]
pub struct EnrollRequest {
    /// `--url`; see [`crate::token::enroll_target`] for what is used when it is absent.
    pub url: Option<String>,
    /// The one-time token in any form; kyma-rest may carry it in the URL instead.
    pub token: Option<OneTimeToken>,
}

/// Enrolls `cfg`'s certificate, replacing whatever was there (an operator's decision).
pub async fn enroll(
    cfg: &CertificateConfig,
    store: &Store,
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
    debug!(url = %crate::protocol::RedactedUrl::new(&url), "asking the connector for the signing request info");
    let plan = connector.begin_enroll(&url, token.as_ref()).await?;
    drop(token);
    let subject = Subject::parse(&plan.subject)?;
    if let Some(announced) = plan.announced_key_algorithm() {
        if announced != cfg.key_algorithm {
            debug!(
                announced = announced.as_str(),
                configured = cfg.key_algorithm.as_str(),
                "the connector announced another key algorithm; using the configured one"
            );
        }
    }

    let key = generate_key(cfg.key_algorithm).await?;
    let csr = build_csr(&key, &subject)?;
    debug!("sending the signing request");
    let issued = connector.sign(&plan, &csr_base64(&csr), None).await?;
    let (info, _) = verify_and_swap(cfg, &issued, key, &subject, None).await?;

    let mut state = store.read_state()?;
    state.renewal_url = plan.renewal_url.clone();
    state.revoked = None;
    state.protocol = Some(cfg.protocol);
    state.next_attempt = None;
    state.enrolled_at = Some(SystemTime::now());
    state.last_error = None;
    state.consecutive_failures = 0;
    store.write_state(&state)?;
    if state.renewal_url.is_none() && cfg.renewal_url.is_none() {
        warn!("the connector announced no renewal URL; set `renewal_url` or renewals will fail");
    }
    info!(fingerprint = %info.fingerprint_sha256, not_after = %crate::verify::timestamp(info.not_after), "enrolled");
    Ok(info)
}
