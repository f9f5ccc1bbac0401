//! Why a conversation with the connector did not complete, and what that means: the
//! metric's reason, the evidence against the certificate, whether only a new
//! enrollment helps.

use std::path::PathBuf;

use super::ledger;
use crate::pki::keys::KeyError;
use crate::pki::subject::SubjectError;
use crate::pki::verify::VerifyError;
use crate::protocol::{ProtocolError, Refusal, Verdict};
use crate::report::FailureReason;
use crate::store::StoreError;

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
