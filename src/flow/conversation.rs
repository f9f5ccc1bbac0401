//! What the three conversations share: the connector client for a certificate, the
//! current certificate as an mTLS identity, where renewals go, a new key, and checking
//! and committing what the connector returned.

use std::time::SystemTime;

use super::error::FlowError;
use crate::config::CertificateConfig;
use crate::pki::keys::PrivateKey;
use crate::protocol::{self, AnyConnector, HttpSettings, Identity};
use crate::store::CurrentMaterial;

/// Builds the connector client for a certificate: its protocol, trust and timeout.
pub fn connector_for(cfg: &CertificateConfig) -> Result<AnyConnector, FlowError> {
    let server_ca_pem = match &cfg.server_ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|source| FlowError::ServerCa {
            path: path.clone(),
            source,
        })?),
        None => None,
    };
    let http = HttpSettings {
        server_ca_pem,
        timeout: cfg.timeout,
        allow_insecure_http: cfg.allow_insecure_http,
        proxy: cfg.proxy.clone(),
    };
    Ok(protocol::connector(cfg.protocol, http)?)
}

/// What a conversation hands to [`verify_and_commit`]: the connector's answer and what
/// it was asked for.
pub(crate) struct Answer<'a> {
    pub plan: &'a crate::protocol::SigningPlan,
    pub issued: &'a crate::protocol::IssuedPems,
    pub key: PrivateKey,
    pub subject: &'a crate::pki::subject::Subject,
}

/// A certificate now on disk, with what the verification warned about.
pub(crate) struct Committed {
    pub info: crate::pki::x509::CertInfo,
    pub warnings: Vec<crate::pki::verify::VerifyWarning>,
}

/// Checks what the connector returned (DESIGN.md section 4) and, only if it passes,
/// commits it on the blocking pool together with its `connection.json`, if the files
/// on disk are still what `expect` says (compare-and-swap).
pub(crate) async fn verify_and_commit(
    cfg: &CertificateConfig,
    answer: Answer<'_>,
    previous_lifetime: Option<std::time::Duration>,
    expect: crate::store::Expect,
) -> Result<Committed, FlowError> {
    use crate::pki::verify::{Expectations, ReturnedPems, verify};
    let verified = verify(
        ReturnedPems {
            client_cert: &answer.issued.client_pem,
            ca: &answer.issued.ca_pem,
            chain: &answer.issued.chain_pem,
        },
        answer.key,
        &Expectations {
            subject: answer.subject,
            now: SystemTime::now(),
            renew: cfg.renew,
            jitter: cfg.jitter,
            previous_lifetime,
        },
    )?;
    for warning in &verified.warnings {
        tracing::warn!(%warning, "certificate accepted, with a warning");
    }
    let connection = crate::store::Connection::new(
        cfg.protocol,
        &answer.plan.subject,
        &verified.info,
        answer.plan.renewal_url.clone(),
        &answer.plan.facts,
    );
    let committed = Committed {
        info: verified.info.clone(),
        warnings: verified.warnings.clone(),
    };
    let store = crate::store::Store::new(cfg);
    let (name, outputs) = (cfg.name.clone(), cfg.outputs.clone());
    tokio::task::spawn_blocking(move || {
        // Rendered where they are written: keystore passwords are read, used and wiped
        // off the event loop, and the files exist only for this commit.
        let extra = crate::outputs::render(
            &name,
            crate::outputs::PemTexts {
                key: verified.key.to_pem(),
                cert: &verified.cert_pem,
                chain: &verified.chain_pem,
                ca: &verified.ca_pem,
            },
            &outputs,
        )?;
        let new = crate::store::NewGeneration {
            material: &verified,
            connection: &connection,
            extra: &extra,
        };
        store.commit(&new, &expect).map_err(FlowError::from)
    })
    .await
    .map_err(|_| FlowError::Interrupted)??;
    Ok(committed)
}

/// Where renewals and revocations go: the configured override, else what the current
/// generation's `connection.json` says, else what older versions kept in `state.json`.
pub(crate) fn renewal_url(
    cfg: &CertificateConfig,
    current: &CurrentMaterial,
    store: &crate::store::Store,
) -> Result<url::Url, FlowError> {
    cfg.renewal_url
        .clone()
        .or_else(|| current.connection.as_ref()?.renewal_url.clone())
        .or_else(|| store.state().renewal_url)
        .ok_or(FlowError::NoRenewalUrl)
}

/// The current certificate as an mTLS identity.
pub fn identity_of(current: &CurrentMaterial) -> Identity {
    Identity::new(
        current.chain_pem.clone(),
        zeroize::Zeroizing::new(current.key.to_pem().to_owned()),
    )
}

/// Generates a key off the async thread: RSA-4096 takes about half a second.
pub(crate) async fn generate_key(
    algorithm: crate::config::KeyAlgorithm,
) -> Result<PrivateKey, FlowError> {
    tokio::task::spawn_blocking(move || PrivateKey::generate(algorithm))
        .await
        .map_err(|_| FlowError::Interrupted)?
        .map_err(FlowError::from)
}
