//! The three conversations with a connector — enroll, renew, revoke — from the current
//! files to verified, swapped material. Shared by the one-shot commands and the daemon.
//! Does not schedule, retry, run hooks or print.

mod enroll;
mod renew;
mod revoke;

pub use enroll::{EnrollRequest, enroll};
pub use renew::{Renewed, renew, renewable_current, usable_current};
pub use revoke::revoke;

use std::path::PathBuf;
use std::time::SystemTime;

use crate::config::CertificateConfig;
use crate::keys::{KeyError, PrivateKey};
use crate::protocol::{
    self, AnyConnector, HttpSettings, Identity, ProtocolError, Refusal, Verdict,
};
use crate::report::FailureReason;
use crate::store::{CurrentMaterial, StoreError};
use crate::subject::SubjectError;
use crate::verify::VerifyError;

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
    #[error("no enrollment URL: pass --url or set `connector_url`")]
    NoEnrollUrl,
    #[error("the enrollment URL is not valid")]
    BadEnrollUrl(#[source] url::ParseError),
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
    #[error("key generation was interrupted")]
    Interrupted,
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
            FlowError::Store(_) | FlowError::Interrupted => FailureReason::Write,
            FlowError::ServerCa { .. } | FlowError::ClockSkew { .. } => FailureReason::Tls,
            FlowError::NotEnrolled { .. }
            | FlowError::Expired { .. }
            | FlowError::Revoked
            | FlowError::NoRenewalUrl
            | FlowError::NoEnrollUrl
            | FlowError::BadEnrollUrl(_) => FailureReason::Protocol,
        }
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
    };
    Ok(protocol::connector(cfg.protocol, http)?)
}

/// Checks what the connector returned (DESIGN.md section 4) and, only if it passes,
/// swaps it in on the blocking pool. Returns the new certificate and any warnings.
pub(crate) async fn verify_and_swap(
    cfg: &CertificateConfig,
    issued: &crate::protocol::IssuedPems,
    key: PrivateKey,
    subject: &crate::subject::Subject,
    previous_lifetime: Option<std::time::Duration>,
) -> Result<(crate::x509::CertInfo, Vec<crate::verify::VerifyWarning>), FlowError> {
    use crate::verify::{Expectations, ReturnedPems, verify};
    let verified = verify(
        ReturnedPems {
            client_cert: &issued.client_pem,
            ca: &issued.ca_pem,
            chain: &issued.chain_pem,
        },
        key,
        &Expectations {
            subject,
            now: SystemTime::now(),
            renew: cfg.renew,
            jitter: cfg.jitter,
            previous_lifetime,
        },
    )?;
    for warning in &verified.warnings {
        tracing::warn!(%warning, "suspicious but allowed certificate");
    }
    let info = verified.info.clone();
    let warnings = verified.warnings.clone();
    let store = crate::store::Store::new(cfg);
    tokio::task::spawn_blocking(move || store.swap(&verified))
        .await
        .map_err(|_| FlowError::Interrupted)??;
    Ok((info, warnings))
}

/// Where renewals and revocations go: the configured override, else what enrollment learned.
pub(crate) fn renewal_url(
    cfg: &CertificateConfig,
    state: &crate::store::StateFile,
) -> Result<url::Url, FlowError> {
    cfg.renewal_url
        .clone()
        .or_else(|| state.renewal_url.clone())
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

/// When `info` (a certificate of `cfg`) is due, with this host's stable jitter.
pub fn scheduled_renewal(cfg: &CertificateConfig, info: &crate::x509::CertInfo) -> SystemTime {
    let seed =
        crate::schedule::jitter_seed(&info.fingerprint_sha256, &crate::schedule::host_name());
    crate::schedule::renewal_time(info.not_before, info.not_after, cfg.renew, cfg.jitter, seed)
}

/// Records an attempt's outcome in `state.json` (what `status` shows). Failing to write
/// the record is logged, never fatal: the certificate itself is what matters.
pub fn record_attempt(store: &crate::store::Store, outcome: Result<(), &FlowError>) {
    // A directory that is gone has nothing to record: writing state.json would create it
    // again (perhaps as the wrong owner, or under an unmounted volume) and the operator
    // restoring it would find a stray directory in the way.
    if !store.dir().is_dir() {
        tracing::debug!(dir = %store.dir().display(), "not recording the attempt: the directory does not exist");
        return;
    }
    let result = store.read_state().and_then(|mut state| {
        let now = SystemTime::now();
        state.last_attempt = Some(now);
        match outcome {
            Ok(()) => {
                state.last_success = Some(now);
                state.consecutive_failures = 0;
                state.last_error = None;
            }
            Err(error) => {
                state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                state.set_error(&error_chain(error));
            }
        }
        record_verdict(store, &mut state, outcome, now);
        store.write_state(&state)
    });
    if let Err(error) = result {
        tracing::warn!(error = %format!("{:#}", anyhow::Error::new(error)), "cannot record the attempt in state.json");
    }
}

/// Keeps the evidence about the certificate that `status` shows: a renewal heals every
/// refusal and revocation; the connector's own "revoked" is kept until then; a refusal
/// only while it is the latest word.
fn record_verdict(
    store: &crate::store::Store,
    state: &mut crate::store::StateFile,
    outcome: Result<(), &FlowError>,
    now: SystemTime,
) {
    let verdict = match outcome {
        Ok(()) => {
            state.revoked = None;
            state.refused = None;
            return;
        }
        Err(error) => error.verdict(),
    };
    state.refused = None;
    if verdict == Verdict::Inconclusive {
        return;
    }
    // The certificate the attempt authenticated with is the current one: the attempt
    // read it moments ago, and a swap by someone else would have ended the attempt.
    let Ok(Some(current)) = store.load_current() else {
        return;
    };
    let fingerprint = current.info.fingerprint_sha256;
    match verdict {
        Verdict::Revoked if !state.is_revoked(&fingerprint) => {
            state.revoked = Some(crate::store::Revocation {
                at: now,
                fingerprint,
            });
        }
        Verdict::Refused(refusal) => {
            state.refused = Some(crate::store::RefusalRecord {
                at: now,
                fingerprint,
                reason: refusal.to_string(),
            });
        }
        Verdict::Revoked | Verdict::Inconclusive => {}
    }
}

/// An error and its causes on one line: "outer: inner: root".
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_an_attempt_never_creates_a_vanished_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("orders");
        let text = format!(
            "[[certificate]]\nname = \"orders\"\nprotocol = \"compass\"\ndir = {:?}\n",
            dir.to_str().unwrap()
        );
        let config = crate::config::parse_with(
            &text,
            std::path::Path::new("t.toml"),
            crate::config::Checks::Syntax,
        )
        .unwrap();
        let store = crate::store::Store::new(&config.certificates[0]);
        let error = FlowError::NotEnrolled { dir: dir.clone() };
        record_attempt(&store, Err(&error));
        assert!(!dir.exists(), "the attempt recreated {}", dir.display());

        std::fs::create_dir(&dir).unwrap();
        record_attempt(&store, Err(&error));
        let state = store.read_state().unwrap();
        assert_eq!(state.consecutive_failures, 1);
        assert!(state.last_error.unwrap().contains("no certificate"));
    }
}
