//! `dir/state.json`: what the daemon learned and remembers between runs for one
//! certificate (renewal URL, attempts, backoff, last error, revocation, refusal). Does not
//! decide what to do with it.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::Protocol;

/// Longest `last_error` kept, in characters.
pub const MAX_ERROR_LEN: usize = 1000;

/// Revocation of a certificate, as done by `revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    #[serde(with = "rfc3339")]
    pub at: SystemTime,
    /// SHA-256 fingerprint (lower-case hex) of the revoked certificate.
    pub fingerprint: String,
}

/// The last renewal attempt of a certificate was refused by something that may sit in
/// front of the connector (a gateway's 403, a 401/407, a TLS alert): retried with backoff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalRecord {
    #[serde(with = "rfc3339")]
    pub at: SystemTime,
    /// SHA-256 fingerprint (lower-case hex) of the refused certificate.
    pub fingerprint: String,
    /// Which refusal: `http 403 not in the connector's error format`, `tls alert unknown_ca`, ...
    pub reason: String,
}

/// The persistent state of one certificate. Unknown fields are ignored and missing ones
/// take their defaults, so older and newer versions can read each other's files; the
/// previous release's file is a fixture (`tests/fixtures/release-0.1.0/`, read in
/// `compat_tests`). Rename or retype no field: add new ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StateFile {
    /// The protocol the certificate was enrolled with.
    #[serde(with = "protocol_name")]
    pub protocol: Option<Protocol>,
    /// The renewal URL learned at enrollment (Compass: certificateSecuredConnectorURL;
    /// kyma-rest: infoUrl).
    pub renewal_url: Option<Url>,
    #[serde(with = "rfc3339_opt")]
    pub enrolled_at: Option<SystemTime>,
    #[serde(with = "rfc3339_opt")]
    pub last_attempt: Option<SystemTime>,
    /// SHA-256 fingerprint of the certificate the last attempt authenticated with: the
    /// failure streak and the refusal belong to it, not to one enrolled since. Absent in
    /// files of 0.1.x, whose streak belongs to whatever is current.
    pub attempted: Option<String>,
    #[serde(with = "rfc3339_opt")]
    pub last_success: Option<SystemTime>,
    pub consecutive_failures: u32,
    /// Written by 0.1.x, which kept the retry time as a deadline; read by nothing now (the
    /// retry is derived from `last_attempt` and the streak) and cleared by an enrollment.
    #[serde(with = "rfc3339_opt")]
    pub next_attempt: Option<SystemTime>,
    /// A one-line message for `status`; never a secret.
    pub last_error: Option<String>,
    /// Revoked in the connector's own words (or by `revoke`); cleared by a renewal.
    pub revoked: Option<Revocation>,
    /// The last attempt was refused without the connector's words; cleared by any other
    /// outcome.
    pub refused: Option<RefusalRecord>,
    /// Which `on_renew` hooks were told about which certificate. A certificate that
    /// became current is announced until every hook has succeeded for it; losing this
    /// record only means the hooks run once more.
    pub notified: Option<Notified>,
    /// SHA-256 (hex) of the one-time tokens taken from `token_file`, newest last: a
    /// token is burned by its first use, so none is offered twice.
    pub used_tokens: Vec<String>,
    /// Why the last token from `token_file` did not enroll; never the token.
    pub token_error: Option<String>,
}

/// How many used token hashes `state.json` remembers.
pub const USED_TOKENS_KEPT: usize = 32;

/// The hooks that succeeded for one certificate, and how delivering the rest goes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Notified {
    /// SHA-256 fingerprint of the certificate announced.
    pub fingerprint: String,
    /// The hooks (by [`crate::hooks::hook_key`]) that succeeded for it.
    pub delivered: Vec<String>,
    /// Failed rounds in a row, for the backoff.
    pub failures: u32,
    /// When the last failed round ended: the next round is derived from it.
    #[serde(with = "rfc3339_opt")]
    pub failed_at: Option<SystemTime>,
    /// Written by 0.1.x as the next round's deadline; read only when `failed_at` is
    /// absent.
    #[serde(with = "rfc3339_opt")]
    pub retry_at: Option<SystemTime>,
    /// The last hook error, one line; never a secret.
    pub last_error: Option<String>,
}

impl StateFile {
    /// Records an error message, cut to `MAX_ERROR_LEN` characters.
    pub fn set_error(&mut self, message: &str) {
        let mut text: String = message.chars().take(MAX_ERROR_LEN).collect();
        if text.len() < message.len() {
            text.push('…');
        }
        self.last_error = Some(text);
    }

    /// Remembers a token (by its hash) as used, forgetting the oldest beyond
    /// [`USED_TOKENS_KEPT`].
    pub fn use_token(&mut self, hash: &str) {
        self.used_tokens.retain(|h| h != hash);
        self.used_tokens.push(hash.to_owned());
        let excess = self.used_tokens.len().saturating_sub(USED_TOKENS_KEPT);
        self.used_tokens.drain(..excess);
    }

    /// Why the certificate with this fingerprint was last refused, if it was.
    pub fn refusal_of(&self, fingerprint: &str) -> Option<&str> {
        self.refused
            .as_ref()
            .filter(|r| r.fingerprint == fingerprint)
            .map(|r| r.reason.as_str())
    }

    /// Whether the certificate with this fingerprint was revoked.
    pub fn is_revoked(&self, fingerprint: &str) -> bool {
        self.revoked
            .as_ref()
            .is_some_and(|r| r.fingerprint == fingerprint)
    }
}

/// SystemTime as RFC 3339 text with nanoseconds.
pub(crate) mod rfc3339 {
    use super::*;

    pub fn serialize<S: serde::Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        // humantime cannot print times outside 1970..=9999: clamp.
        let latest = SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799);
        let time = (*time).clamp(SystemTime::UNIX_EPOCH, latest);
        s.collect_str(&humantime::format_rfc3339_nanos(time))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339_weak(&text).map_err(serde::de::Error::custom)
    }
}

pub(crate) mod rfc3339_opt {
    use super::*;

    pub fn serialize<S: serde::Serializer>(
        time: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => super::rfc3339::serialize(time, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => humantime::parse_rfc3339_weak(&text)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

pub(crate) mod protocol_name {
    use super::*;

    pub fn serialize<S: serde::Serializer>(p: &Option<Protocol>, s: S) -> Result<S::Ok, S::Error> {
        match p {
            Some(p) => s.serialize_str(p.as_str()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Protocol>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => crate::config::values::parse_protocol(&text)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_json_with_readable_times() {
        let mut state = StateFile {
            protocol: Some(Protocol::KymaRest),
            renewal_url: Some(
                "https://gw.example.com/v1/applications/management/info"
                    .parse()
                    .unwrap(),
            ),
            enrolled_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            consecutive_failures: 3,
            revoked: Some(Revocation {
                at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
                fingerprint: "ab".repeat(32),
            }),
            refused: Some(RefusalRecord {
                at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
                fingerprint: "cd".repeat(32),
                reason: "tls alert unknown_ca".into(),
            }),
            ..StateFile::default()
        };
        state.set_error("connection refused");
        let json = serde_json::to_string_pretty(&state).unwrap();
        assert!(json.contains("\"protocol\": \"kyma-rest\""), "{json}");
        assert!(json.contains("2023-11-14T22:13:20"), "{json}");
        let back: StateFile = serde_json::from_str(&json).unwrap();
        assert_eq!(back, state);
        assert!(back.is_revoked(&"ab".repeat(32)));
        assert!(!back.is_revoked("cd"));
        assert_eq!(
            back.refusal_of(&"cd".repeat(32)),
            Some("tls alert unknown_ca")
        );
        assert_eq!(back.refusal_of(&"ab".repeat(32)), None);
    }

    #[test]
    fn missing_and_unknown_fields_are_tolerated() {
        let state: StateFile =
            serde_json::from_str(r#"{"consecutive_failures": 2, "future": 1}"#).unwrap();
        assert_eq!(state.consecutive_failures, 2);
        assert_eq!(state.protocol, None);
    }

    #[test]
    fn long_errors_are_cut() {
        let mut state = StateFile::default();
        state.set_error(&"x".repeat(5000));
        assert_eq!(state.last_error.unwrap().chars().count(), MAX_ERROR_LEN + 1);
    }
}
