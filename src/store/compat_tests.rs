//! Files written by the previous release (0.1.0, `tests/fixtures/release-0.1.0/`) are read
//! by this one with every record intact, and this release writes every field the
//! previous one reads, unchanged: an upgrade and a rollback both keep the state.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::{Connection, StateFile};
use crate::config::Protocol;

const STATE: &str = include_str!("../../tests/fixtures/release-0.1.0/state.json");
const CONNECTION: &str = include_str!("../../tests/fixtures/release-0.1.0/connection.json");

fn at(rfc3339: &str) -> SystemTime {
    humantime::parse_rfc3339(rfc3339).unwrap()
}

/// Every key of `old`, at any depth, is in `new` with the same value.
fn assert_kept(old: &Value, new: &Value, path: &str) {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            for (key, value) in old {
                let inner = format!("{path}.{key}");
                let kept = new
                    .get(key)
                    .unwrap_or_else(|| panic!("{inner} is no longer written"));
                assert_kept(value, kept, &inner);
            }
        }
        _ => assert_eq!(old, new, "{path} is written differently"),
    }
}

#[test]
fn a_state_file_of_the_previous_release_is_read_with_every_record() {
    let state: StateFile = serde_json::from_str(STATE).expect("the 0.1.0 state.json is read");
    assert_eq!(state.protocol, Some(Protocol::Compass));
    assert_eq!(
        state.renewal_url.as_ref().map(|u| u.as_str()),
        Some("https://compass-gateway-mtls.example.com/connector/graphql")
    );
    assert_eq!(
        state.enrolled_at,
        Some(UNIX_EPOCH + Duration::new(1_785_574_800, 250_000_000))
    );
    assert_eq!(
        state.last_attempt,
        Some(at("2026-11-02T08:15:30.123456789Z"))
    );
    assert_eq!(state.last_success, Some(at("2026-10-05T07:00:00Z")));
    assert_eq!(state.consecutive_failures, 3);
    assert_eq!(state.next_attempt, Some(at("2026-11-02T09:15:30Z")));
    assert_eq!(
        state.last_error.as_deref(),
        Some("renewal refused: http 403 not in the connector's error format")
    );
    let revoked = state.revoked.as_ref().expect("the revocation");
    assert_eq!(revoked.at, at("2026-09-01T12:00:00Z"));
    assert_eq!(revoked.fingerprint, "1".repeat(64));
    assert!(state.is_revoked(&"1".repeat(64)));
    let refused = state.refused.as_ref().expect("the refusal");
    assert_eq!(refused.at, at("2026-11-02T08:15:30.123456789Z"));
    assert_eq!(
        state.refusal_of(&"2".repeat(64)),
        Some("http 403 not in the connector's error format")
    );
    let notified = state.notified.as_ref().expect("the notifications");
    assert_eq!(notified.fingerprint, "2".repeat(64));
    assert_eq!(notified.delivered, ["systemd:nginx.service"]);
    assert_eq!(notified.failures, 2);
    assert_eq!(notified.retry_at, Some(at("2026-10-05T07:05:00Z")));
    assert_eq!(
        notified.last_error.as_deref(),
        Some("command /usr/local/bin/orders-reload exited with status 1")
    );
    assert_eq!(state.used_tokens, ["3".repeat(64), "4".repeat(64)]);
    assert_eq!(
        state.token_error.as_deref(),
        Some("the connector refused the token: invalid token")
    );

    // Written back (as the next update does), every record is as the previous release
    // wrote it: after a rollback, it reads its own file.
    let old: Value = serde_json::from_str(STATE).unwrap();
    let new = serde_json::to_value(&state).unwrap();
    assert_kept(&old, &new, "state.json");
}

#[test]
fn a_connection_file_of_the_previous_release_is_read_with_every_url() {
    let connection: Connection =
        serde_json::from_str(CONNECTION).expect("the 0.1.0 connection.json is read");
    assert_eq!(connection.protocol, Some(Protocol::Compass));
    assert_eq!(connection.client_id.as_deref(), Some("orders-app"));
    assert_eq!(
        connection.subject,
        "C=DE,ST=Waldorf,L=Waldorf,O=Org,OU=OrgUnit,CN=orders-app"
    );
    assert_eq!(connection.not_before, at("2026-10-05T07:00:00Z"));
    assert_eq!(connection.not_after, at("2027-01-05T07:00:00Z"));
    assert_eq!(connection.fingerprint_sha256, "2".repeat(64));
    assert_eq!(
        connection.renewal_url.as_ref().map(|u| u.as_str()),
        Some("https://compass-gateway-mtls.example.com/connector/graphql")
    );
    assert_eq!(connection.urls.len(), 2);
    assert_eq!(
        connection.urls["directorURL"].as_str(),
        "https://compass-gateway.example.com/director/graphql"
    );

    let old: Value = serde_json::from_str(CONNECTION).unwrap();
    let new: Value = serde_json::from_slice(&connection.to_json()).unwrap();
    assert_kept(&old, &new, "connection.json");
}
