//! The states a certificate can be in and the reasons a renewal can fail, as the metrics
//! and `/readyz` name them. Does not decide them: the event loop does.

/// The state of one certificate, as `certificate_state{state}` and `/readyz` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertState {
    /// Present, valid, not yet due.
    Valid,
    /// A renewal attempt is running; the current certificate is still valid.
    Renewing,
    /// The last attempt failed and a retry is scheduled; the current one is still valid.
    Backoff,
    /// The last attempt was refused by something that may sit in front of the connector (a
    /// gateway's 403, a 401/407, a TLS alert): retried with backoff; still valid.
    Refused,
    /// Past notAfter: needs a new enrollment.
    Expired,
    /// The connector said in its own words that it is revoked: needs a new enrollment,
    /// though it is still probed every `retry_max` until it expires.
    Revoked,
    /// No certificate on disk (never enrolled, or unreadable).
    Missing,
}

impl CertState {
    pub const ALL: [CertState; 7] = [
        CertState::Valid,
        CertState::Renewing,
        CertState::Backoff,
        CertState::Refused,
        CertState::Expired,
        CertState::Revoked,
        CertState::Missing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CertState::Valid => "valid",
            CertState::Renewing => "renewing",
            CertState::Backoff => "backoff",
            CertState::Refused => "refused",
            CertState::Expired => "expired",
            CertState::Revoked => "revoked",
            CertState::Missing => "missing",
        }
    }

    /// Whether consumers can use the certificate on disk right now: valid, also while a
    /// renewal runs, backs off or is refused (a refusal proves nothing against the
    /// certificate, and it stays valid). Expired, revoked and missing need a new enrollment.
    pub fn is_usable(self) -> bool {
        matches!(
            self,
            CertState::Valid | CertState::Renewing | CertState::Backoff | CertState::Refused
        )
    }
}

/// Why a renewal failed: the `reason` label of `renewal_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// Connect, DNS, timeout, reset.
    Network,
    /// TLS handshake (an expired or foreign client certificate ends here).
    Tls,
    /// An unexpected HTTP status.
    Http,
    /// The body did not follow the connector's protocol.
    Protocol,
    /// The returned certificate failed verification.
    Verify,
    /// Writing the new generation to disk failed.
    Write,
}

impl FailureReason {
    pub const ALL: [FailureReason; 6] = [
        FailureReason::Network,
        FailureReason::Tls,
        FailureReason::Http,
        FailureReason::Protocol,
        FailureReason::Verify,
        FailureReason::Write,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Network => "network",
            FailureReason::Tls => "tls",
            FailureReason::Http => "http",
            FailureReason::Protocol => "protocol",
            FailureReason::Verify => "verify",
            FailureReason::Write => "write",
        }
    }
}
