//! What the simulator remembers for inspection: issued certificates, revocations and request
//! counters. Does not decide anything about requests.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Serialize, Serializer};

use crate::fault::Fault;
use crate::tokens::Protocol;

/// One certificate the simulator handed out (including deliberately wrong ones).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct IssuedCertificate {
    /// Lower-case hex SHA-256 of the DER certificate.
    pub fingerprint: String,
    /// Subject in Go's order, `C=..,ST=..,L=..,O=..,OU=..,CN=..`.
    pub subject: String,
    #[serde(serialize_with = "rfc3339")]
    pub not_before: SystemTime,
    #[serde(serialize_with = "rfc3339")]
    pub not_after: SystemTime,
    /// The certificate, PEM.
    pub pem: String,
    pub protocol: Protocol,
    /// `true` when a client certificate authorised the call (renewal), `false` for a token.
    pub renewal: bool,
    /// The certificate fault that shaped this response, if any.
    pub fault: Option<Fault>,
}

impl fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("fingerprint", &self.fingerprint)
            .field("subject", &self.subject)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("protocol", &self.protocol)
            .field("renewal", &self.renewal)
            .field("fault", &self.fault)
            .finish_non_exhaustive()
    }
}

fn rfc3339<S: Serializer>(value: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    let formatted = time::OffsetDateTime::from(*value)
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(serde::ser::Error::custom)?;
    serializer.serialize_str(&formatted)
}

/// What a request was, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    /// A Compass `configuration` root field.
    CompassConfiguration,
    /// A Compass `signCertificateSigningRequest` root field.
    CompassSign,
    /// A Compass `revokeCertificate` root field.
    CompassRevoke,
    /// A Compass request whose document did not parse or validate, or was not a POST.
    CompassInvalid,
    /// `GET /v1/applications/signingRequests/info`.
    RestInfo,
    /// `POST /v1/applications/certificates`.
    RestSign,
    /// `GET /v1/applications/management/info`.
    RestManagementInfo,
    /// `POST /v1/applications/certificates/renewals`.
    RestRenew,
    /// `POST /v1/applications/certificates/revocations`.
    RestRevoke,
    /// `GET /v1/health`.
    Health,
    /// Any other path or method.
    Unknown,
    /// A connection closed before its handshake by [`Fault::DropHandshake`].
    DroppedHandshake,
    /// A handshake refused with an alert by [`Fault::TlsAlert`].
    RefusedHandshake,
    /// A request answered by [`Fault::GatewayRefusal`] instead of the connector.
    GatewayRefusal,
}

impl Endpoint {
    pub const ALL: [Endpoint; 14] = [
        Endpoint::CompassConfiguration,
        Endpoint::CompassSign,
        Endpoint::CompassRevoke,
        Endpoint::CompassInvalid,
        Endpoint::RestInfo,
        Endpoint::RestSign,
        Endpoint::RestManagementInfo,
        Endpoint::RestRenew,
        Endpoint::RestRevoke,
        Endpoint::Health,
        Endpoint::Unknown,
        Endpoint::DroppedHandshake,
        Endpoint::RefusedHandshake,
        Endpoint::GatewayRefusal,
    ];

    /// The counter's key in the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::CompassConfiguration => "compass.configuration",
            Endpoint::CompassSign => "compass.signCertificateSigningRequest",
            Endpoint::CompassRevoke => "compass.revokeCertificate",
            Endpoint::CompassInvalid => "compass.invalid",
            Endpoint::RestInfo => "rest.signingRequests/info",
            Endpoint::RestSign => "rest.certificates",
            Endpoint::RestManagementInfo => "rest.management/info",
            Endpoint::RestRenew => "rest.certificates/renewals",
            Endpoint::RestRevoke => "rest.certificates/revocations",
            Endpoint::Health => "health",
            Endpoint::Unknown => "unknown",
            Endpoint::DroppedHandshake => "tls.dropped_handshake",
            Endpoint::RefusedHandshake => "tls.refused_handshake",
            Endpoint::GatewayRefusal => "gateway.refusal",
        }
    }
}

/// A snapshot of the request counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCounts {
    counts: BTreeMap<Endpoint, u64>,
}

impl RequestCounts {
    /// How many requests reached `endpoint` (faulted ones included).
    pub fn get(&self, endpoint: Endpoint) -> u64 {
        self.counts.get(&endpoint).copied().unwrap_or(0)
    }

    /// Requests and dropped connections, all endpoints together.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

impl Serialize for RequestCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(
            Endpoint::ALL
                .iter()
                .map(|endpoint| (endpoint.as_str(), self.get(*endpoint))),
        )
    }
}

#[derive(Debug, Default)]
struct Inner {
    issued: Vec<IssuedCertificate>,
    revoked: BTreeSet<String>,
    counts: RequestCounts,
}

/// The shared record; every method takes the lock briefly.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    inner: Mutex<Inner>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn record_issued(&self, certificate: IssuedCertificate) {
        self.lock().issued.push(certificate);
    }

    pub fn issued(&self) -> Vec<IssuedCertificate> {
        self.lock().issued.clone()
    }

    pub fn find_issued(&self, fingerprint: &str) -> Option<IssuedCertificate> {
        self.lock()
            .issued
            .iter()
            .find(|c| c.fingerprint.eq_ignore_ascii_case(fingerprint))
            .cloned()
    }

    /// Marks a fingerprint revoked; returns `false` when it already was.
    pub fn revoke(&self, fingerprint: &str) -> bool {
        self.lock().revoked.insert(fingerprint.to_ascii_lowercase())
    }

    /// Takes a fingerprint off the revocation list, as an administrator cleaning it up
    /// would; returns `false` when it was not on it.
    pub fn unrevoke(&self, fingerprint: &str) -> bool {
        self.lock()
            .revoked
            .remove(&fingerprint.to_ascii_lowercase())
    }

    pub fn is_revoked(&self, fingerprint: &str) -> bool {
        self.lock().revoked.contains(fingerprint)
    }

    pub fn revoked(&self) -> Vec<String> {
        self.lock().revoked.iter().cloned().collect()
    }

    pub fn count(&self, endpoint: Endpoint) {
        *self.lock().counts.counts.entry(endpoint).or_insert(0) += 1;
    }

    pub fn counts(&self) -> RequestCounts {
        self.lock().counts.clone()
    }
}
