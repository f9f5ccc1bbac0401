//! Faults a client can observe, switched at run time: what they are, how long they last, and
//! which request consumes them. Does not produce the faulty responses (the server does).

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::pki::Deviation;

/// Default size of [`Fault::OversizedBody`] when the admin API omits it: 32 MiB.
pub const DEFAULT_OVERSIZED_BYTES: u64 = 32 * 1024 * 1024;

/// A misbehaviour of the token-secured and mTLS listeners (never the admin listener).
///
/// Connection faults ([`Fault::DropHandshake`]) are consumed by the next accepted
/// connection; gateway faults ([`Fault::TlsAlert`], [`Fault::GatewayRefusal`]) only by the
/// next connection or request on the mTLS listener, where a gateway would sit; certificate faults ([`Fault::InvalidBase64`] .. [`Fault::UnrelatedCa`]) by the
/// next request that issues a certificate; all others by the next request of any kind.
/// Request faults other than `Latency` and `MalformedJson` answer without processing the
/// request: no token is consumed and no certificate issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Wait this long, then process the request normally.
    Latency {
        #[serde(with = "humane")]
        delay: Duration,
    },
    /// HTTP 500 in the protocol's error format.
    InternalError,
    /// HTTP 503 with `Retry-After: 1`, in the protocol's error format.
    Unavailable,
    /// Process the request, then send only the first half of the JSON body.
    MalformedJson,
    /// The certificate fields of the signing response are not base64.
    InvalidBase64,
    /// The certificate certifies another public key than the CSR's.
    ForeignKey,
    /// The certificate's CN is not the requested one.
    WrongSubject,
    /// The certificate expired an hour ago.
    ExpiredCertificate,
    /// The certificate is signed by a CA with the same name as the returned one but another key.
    UnrelatedCa,
    /// Send the response headers, then nothing for this long, then end the body.
    Stall {
        #[serde(with = "humane")]
        duration: Duration,
    },
    /// Stream a 200 response of this many bytes that never becomes valid JSON.
    OversizedBody {
        #[serde(default = "default_oversized")]
        bytes: u64,
    },
    /// Accept the TCP connection, then close it before the TLS handshake.
    DropHandshake,
    /// mTLS listener only: read the client's hello, then refuse the handshake with this
    /// fatal alert, as a gateway in front of the connector does when its client-CA bundle
    /// is broken (`unknown_ca`) or its clock is wrong (`certificate_expired`).
    TlsAlert { alert: AlertName },
    /// mTLS listener only: answer like a gateway in front of the connector (an Istio
    /// AuthorizationPolicy, a WAF, an authenticating proxy) with this status and a
    /// plain-text body in neither connector's error format. Nothing reaches the connector.
    GatewayRefusal {
        #[serde(default = "default_gateway_status")]
        status: u16,
        #[serde(default = "default_gateway_body")]
        body: String,
    },
}

/// The fatal TLS alerts [`Fault::TlsAlert`] can send, by their RFC 8446 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertName {
    HandshakeFailure,
    BadCertificate,
    UnsupportedCertificate,
    CertificateRevoked,
    CertificateExpired,
    CertificateUnknown,
    UnknownCa,
    AccessDenied,
    InsufficientSecurity,
    InternalError,
    CertificateRequired,
}

impl AlertName {
    /// The alert's code on the wire (RFC 8446 section 6).
    pub fn code(self) -> u8 {
        match self {
            AlertName::HandshakeFailure => 40,
            AlertName::BadCertificate => 42,
            AlertName::UnsupportedCertificate => 43,
            AlertName::CertificateRevoked => 44,
            AlertName::CertificateExpired => 45,
            AlertName::CertificateUnknown => 46,
            AlertName::UnknownCa => 48,
            AlertName::AccessDenied => 49,
            AlertName::InsufficientSecurity => 71,
            AlertName::InternalError => 80,
            AlertName::CertificateRequired => 116,
        }
    }
}

/// What Envoy's RBAC filter answers when an Istio AuthorizationPolicy denies a request.
pub const DEFAULT_GATEWAY_BODY: &str = "RBAC: access denied";

fn default_gateway_status() -> u16 {
    403
}

fn default_gateway_body() -> String {
    DEFAULT_GATEWAY_BODY.to_owned()
}

fn default_oversized() -> u64 {
    DEFAULT_OVERSIZED_BYTES
}

/// How long a fault stays active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultScope {
    /// For the next `n` requests (or connections) it applies to; `Next(0)` clears it.
    Next(u32),
    /// Until [`Simulator::clear_fault`](crate::Simulator::clear_fault).
    UntilCleared,
}

/// The fault currently switched on, with what is left of its scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveFault {
    pub fault: Fault,
    pub scope: FaultScope,
}

/// Which moment of a request's life asks for a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Connection,
    Request,
    Issuance,
    /// A connection accepted on the mTLS listener.
    MtlsConnection,
    /// A request received on the mTLS listener, before the connector sees it.
    MtlsRequest,
}

impl Fault {
    pub(crate) fn stage(&self) -> Stage {
        match self {
            Fault::DropHandshake => Stage::Connection,
            Fault::TlsAlert { .. } => Stage::MtlsConnection,
            Fault::GatewayRefusal { .. } => Stage::MtlsRequest,
            Fault::InvalidBase64
            | Fault::ForeignKey
            | Fault::WrongSubject
            | Fault::ExpiredCertificate
            | Fault::UnrelatedCa => Stage::Issuance,
            Fault::Latency { .. }
            | Fault::InternalError
            | Fault::Unavailable
            | Fault::MalformedJson
            | Fault::Stall { .. }
            | Fault::OversizedBody { .. } => Stage::Request,
        }
    }

    /// The deviation of the issued certificate, for certificate faults that need one.
    pub(crate) fn deviation(&self) -> Option<Deviation> {
        match self {
            Fault::ForeignKey => Some(Deviation::ForeignKey),
            Fault::WrongSubject => Some(Deviation::WrongSubject),
            Fault::ExpiredCertificate => Some(Deviation::Expired),
            Fault::UnrelatedCa => Some(Deviation::UnrelatedCa),
            _ => None,
        }
    }
}

/// The one fault slot shared by all listeners.
#[derive(Debug, Default)]
pub(crate) struct FaultSlot {
    active: Mutex<Option<ActiveFault>>,
}

impl FaultSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ActiveFault>> {
        self.active
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn set(&self, fault: Fault, scope: FaultScope) {
        *self.lock() = match scope {
            FaultScope::Next(0) => None,
            scope => Some(ActiveFault { fault, scope }),
        };
    }

    pub fn clear(&self) {
        *self.lock() = None;
    }

    pub fn current(&self) -> Option<ActiveFault> {
        self.lock().clone()
    }

    /// Consumes one use of the active fault if it belongs to `stage`.
    pub fn take(&self, stage: Stage) -> Option<Fault> {
        let mut slot = self.lock();
        let active = slot.as_mut()?;
        if active.fault.stage() != stage {
            return None;
        }
        let fault = active.fault.clone();
        if let FaultScope::Next(left) = &mut active.scope {
            *left -= 1;
            if *left == 0 {
                *slot = None;
            }
        }
        Some(fault)
    }
}

/// Durations as humane strings (`"250ms"`, `"2s"`, `"1h"`) in the admin API.
mod humane {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_n_fault_is_gone_after_n_uses() {
        let slot = FaultSlot::default();
        slot.set(Fault::InternalError, FaultScope::Next(2));
        assert_eq!(slot.take(Stage::Request), Some(Fault::InternalError));
        assert_eq!(slot.take(Stage::Request), Some(Fault::InternalError));
        assert_eq!(slot.take(Stage::Request), None);
    }

    #[test]
    fn certificate_fault_is_not_consumed_by_other_requests() {
        let slot = FaultSlot::default();
        slot.set(Fault::WrongSubject, FaultScope::Next(1));
        assert_eq!(slot.take(Stage::Request), None);
        assert_eq!(slot.take(Stage::Connection), None);
        assert_eq!(slot.take(Stage::Issuance), Some(Fault::WrongSubject));
        assert_eq!(slot.current(), None);
    }

    #[test]
    fn gateway_faults_are_consumed_only_on_the_mtls_listener() {
        let slot = FaultSlot::default();
        slot.set(
            Fault::TlsAlert {
                alert: AlertName::UnknownCa,
            },
            FaultScope::Next(1),
        );
        assert_eq!(slot.take(Stage::Connection), None);
        assert_eq!(slot.take(Stage::Request), None);
        assert!(slot.take(Stage::MtlsConnection).is_some());
        slot.set(
            Fault::GatewayRefusal {
                status: 401,
                body: String::new(),
            },
            FaultScope::UntilCleared,
        );
        assert_eq!(slot.take(Stage::Request), None);
        assert_eq!(slot.take(Stage::MtlsConnection), None);
        assert!(slot.take(Stage::MtlsRequest).is_some());
        assert!(slot.take(Stage::MtlsRequest).is_some());
    }

    #[test]
    fn until_cleared_fault_stays_until_cleared() {
        let slot = FaultSlot::default();
        slot.set(Fault::Unavailable, FaultScope::UntilCleared);
        for _ in 0..5 {
            assert_eq!(slot.take(Stage::Request), Some(Fault::Unavailable));
        }
        slot.clear();
        assert_eq!(slot.take(Stage::Request), None);
    }

    #[test]
    fn admin_json_form_round_trips() {
        let json = r#"{"fault":{"kind":"latency","delay":"1s 500ms"},"scope":{"next":3}}"#;
        let active: ActiveFault = serde_json::from_str(json).expect("parses");
        assert_eq!(
            active,
            ActiveFault {
                fault: Fault::Latency {
                    delay: Duration::from_millis(1500)
                },
                scope: FaultScope::Next(3)
            }
        );
        let back = serde_json::to_string(&active).expect("serialises");
        assert_eq!(
            serde_json::from_str::<ActiveFault>(&back).expect("parses"),
            active
        );
        let gateway: Fault = serde_json::from_str(r#"{"kind":"gateway_refusal"}"#).expect("parses");
        assert_eq!(
            gateway,
            Fault::GatewayRefusal {
                status: 403,
                body: DEFAULT_GATEWAY_BODY.to_owned()
            }
        );
        let alert: Fault =
            serde_json::from_str(r#"{"kind":"tls_alert","alert":"unknown_ca"}"#).expect("parses");
        assert_eq!(
            alert,
            Fault::TlsAlert {
                alert: AlertName::UnknownCa
            }
        );
        assert!(
            serde_json::from_str::<Fault>(r#"{"kind":"tls_alert","alert":"no_such"}"#).is_err()
        );
        let oversized: Fault =
            serde_json::from_str(r#"{"kind":"oversized_body"}"#).expect("parses");
        assert_eq!(
            oversized,
            Fault::OversizedBody {
                bytes: DEFAULT_OVERSIZED_BYTES
            }
        );
    }
}
