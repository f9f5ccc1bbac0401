//! The renewal path, shared by the one-shot commands and the daemon: the three
//! conversations with a connector (enroll, renew, revoke) from the current files to
//! verified, swapped material; telling the dependents (`dependents`); what to do and
//! when (`policy`); and what is remembered (`ledger`, the one writer of `state.json`).
//! Does not sleep, loop or print.

pub mod dependents;
mod enroll;
pub mod ledger;
pub mod policy;
mod renew;
mod revoke;

pub use enroll::{EnrollRequest, enroll};
pub use renew::{RenewAttempt, Renewed, renew, renewable_current, usable_current};
pub use revoke::{GenerationRevocation, Outcome as RevocationOutcome, revoke};

use std::path::PathBuf;
use std::time::SystemTime;

use crate::config::CertificateConfig;
use crate::pki::keys::{KeyError, PrivateKey};
use crate::pki::subject::SubjectError;
use crate::pki::verify::VerifyError;
use crate::protocol::{
    self, AnyConnector, HttpSettings, Identity, ProtocolError, Refusal, Verdict,
};
use crate::report::FailureReason;
use crate::store::{CurrentMaterial, Store, StoreError};

/// Why a flow did not complete. Every variant keeps the old files untouched.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("no certificate in {dir}: enroll it first with a one-time token")]
    NotEnrolled { dir: PathBuf },
    #[error("the certificate expired at {not_after}: a renewal is impossible, enroll again")]
    Expired { not_after: String },
    #[error("the certificate was revoked: enroll again with a new one-time token")]
    Revoked,
    #[error("no renewal URL is known: enroll again, or set `renewal_url`")]
    NoRenewalUrl,
    /// The token's form or the URL beside it does not fit the protocol: a usage error.
    #[error(transparent)]
    TokenForm(#[from] crate::token::TokenFormError),
    #[error("cannot read the connector CA file {path}")]
    ServerCa {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error(
        "the certificate is valid until {not_after} by this host's clock, yet the handshake was refused as expired: probable clock skew between this host and the connector (check time synchronisation on both)"
    )]
    ClockSkew {
        not_after: String,
        #[source]
        source: ProtocolError,
    },
    #[error("the connector announced an unusable subject")]
    Subject(#[from] SubjectError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("the connector's answer failed verification")]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "work on the blocking pool (key generation, reading or writing the files) was interrupted"
    )]
    Interrupted,
    #[error(transparent)]
    Output(#[from] crate::outputs::OutputError),
}

impl FlowError {
    /// The `reason` label of `kyma_certd_renewal_failures_total`.
    pub fn reason(&self) -> FailureReason {
        match self {
            FlowError::Protocol(e) => match e.reason() {
                "network" => FailureReason::Network,
                "tls" => FailureReason::Tls,
                "http" => FailureReason::Http,
                _ => FailureReason::Protocol,
            },
            FlowError::Verify(_) | FlowError::Subject(_) | FlowError::Key(_) => {
                FailureReason::Verify
            }
            FlowError::Store(_) | FlowError::Interrupted | FlowError::Output(_) => {
                FailureReason::Write
            }
            FlowError::ServerCa { .. } | FlowError::ClockSkew { .. } => FailureReason::Tls,
            FlowError::NotEnrolled { .. }
            | FlowError::Expired { .. }
            | FlowError::Revoked
            | FlowError::NoRenewalUrl
            | FlowError::TokenForm(_) => FailureReason::Protocol,
        }
    }

    /// What this failure proved about the certificate the attempt authenticated with.
    pub fn evidence(&self) -> Option<ledger::Evidence> {
        match self.verdict() {
            Verdict::Revoked => Some(ledger::Evidence::Revoked),
            Verdict::Refused(refusal) => Some(ledger::Evidence::Refused(refusal.to_string())),
            Verdict::Inconclusive => None,
        }
    }

    /// Whether a renewal that ended with this error counts as an attempt. It does not
    /// when it stopped before asking the connector because the certificate expired or
    /// disappeared since it was looked at, nor when its result was discarded because
    /// someone else replaced the certificate meanwhile: then the next look decides.
    pub fn reached_connector(&self) -> bool {
        !self.is_superseded()
            && !matches!(
                self,
                FlowError::NotEnrolled { .. } | FlowError::Expired { .. } | FlowError::Revoked
            )
    }

    /// The files changed under the renewal (an `enroll`, another renewal): its
    /// certificate was discarded, and the new one on disk is what counts.
    pub fn is_superseded(&self) -> bool {
        matches!(
            self,
            FlowError::Store(crate::store::StoreError::Superseded { .. })
        )
    }

    /// Only a new one-time token helps: exit code 3, states expired/revoked/missing.
    /// A refusal by something in front of the connector is not such a case (exit 1).
    pub fn needs_reenrollment(&self) -> bool {
        match self {
            FlowError::NotEnrolled { .. } | FlowError::Expired { .. } | FlowError::Revoked => true,
            FlowError::Protocol(e) => e.needs_reenrollment(),
            _ => false,
        }
    }

    /// Whether the connector refused the one-time token (see [`ProtocolError::token_refused`]).
    pub fn token_refused(&self) -> bool {
        matches!(self, FlowError::Protocol(e) if e.token_refused())
    }

    /// What the connector's answer says about the certificate (see [`ProtocolError::verdict`]).
    pub fn verdict(&self) -> Verdict {
        match self {
            FlowError::Protocol(e) => e.verdict(),
            FlowError::ClockSkew { .. } => Verdict::Refused(Refusal::ProbableClockSkew),
            _ => Verdict::Inconclusive,
        }
    }
}

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

/// What the files say about the certificate, as the policy takes it; only "not found"
/// means missing. Blocks (the directory lock, the disk). `looks`: looks in a row that
/// could not read the files, this one included should it fail too.
pub fn on_disk(store: &Store, looks: u32) -> policy::OnDisk {
    use policy::OnDisk;
    match store.load_current() {
        Ok(None) => OnDisk::Missing(None),
        Err(e) if e.is_unreadable() => OnDisk::Unreadable {
            why: crate::errors::error_chain(&e),
            looks,
        },
        Err(e) => OnDisk::Missing(Some(crate::errors::error_chain(&e))),
        Ok(Some(current)) => OnDisk::Certificate(policy::Seen::from(&current.info)),
    }
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
