//! `connection.json`: what the connector said about the identity of one generation
//! (protocol, client id, subject, validity, fingerprint, the renewal URL and the other
//! URLs it returned). Written into each generation beside the PEM files, so it flips with
//! them; consumers may read it, and a renewal takes its protocol and renewal URL from it.
//! Does not talk to the connector.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::Protocol;
use crate::protocol::ConnectionFacts;
use crate::x509::CertInfo;

/// The file name inside a generation (and `dir/connection.json` for consumers).
pub const CONNECTION_FILE: &str = "connection.json";

/// The contents of `connection.json`. Unknown fields are ignored, so older and newer
/// versions read each other's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    #[serde(with = "super::state::protocol_name")]
    pub protocol: Option<Protocol>,
    /// REST `clientIdentity.application`; else the subject's common name.
    pub client_id: Option<String>,
    /// The subject the connector asked for, as it wrote it.
    pub subject: String,
    #[serde(with = "super::state::rfc3339")]
    pub not_before: SystemTime,
    #[serde(with = "super::state::rfc3339")]
    pub not_after: SystemTime,
    /// SHA-256 of the leaf certificate's DER, lower-case hex.
    pub fingerprint_sha256: String,
    /// Where renewals and revocations go (Compass `certificateSecuredConnectorURL`, REST
    /// `management/info`).
    pub renewal_url: Option<Url>,
    /// Every other URL the connector returned, under its own name.
    #[serde(default)]
    pub urls: BTreeMap<String, Url>,
}

impl Connection {
    /// The facts of a certificate just issued under `subject` by a connector speaking
    /// `protocol`.
    pub fn new(
        protocol: Protocol,
        subject: &str,
        info: &CertInfo,
        renewal_url: Option<Url>,
        facts: &ConnectionFacts,
    ) -> Connection {
        Connection {
            protocol: Some(protocol),
            client_id: facts.client_id.clone().or_else(|| common_name(subject)),
            subject: subject.to_owned(),
            not_before: info.not_before,
            not_after: info.not_after,
            fingerprint_sha256: info.fingerprint_sha256.clone(),
            renewal_url,
            urls: facts.urls.clone(),
        }
    }

    /// What can be said of a certificate without a connector's answer.
    pub fn of_certificate(info: &CertInfo) -> Connection {
        Connection {
            protocol: None,
            client_id: info
                .subject_attributes
                .iter()
                .find(|(key, _)| key == "CN")
                .map(|(_, cn)| cn.clone()),
            subject: info.subject.clone(),
            not_before: info.not_before,
            not_after: info.not_after,
            fingerprint_sha256: info.fingerprint_sha256.clone(),
            renewal_url: None,
            urls: BTreeMap::new(),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut json = serde_json::to_vec_pretty(self).expect("connection facts serialize");
        json.push(b'\n');
        json
    }
}

/// The subject's common name, if it parses and has a non-empty one.
fn common_name(subject: &str) -> Option<String> {
    let subject = crate::subject::Subject::parse(subject).ok()?;
    subject
        .get(crate::subject::SubjectKey::Cn)
        .filter(|cn| !cn.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_id_is_the_connectors_else_the_common_name() {
        assert_eq!(
            common_name("O=Org,OU=Unit,L=Town,ST=State,C=DE,CN=orders-app"),
            Some("orders-app".to_owned())
        );
        assert_eq!(
            common_name("O=Org\\, Inc,CN=billing"),
            Some("billing".to_owned())
        );
        assert_eq!(common_name("O=Org"), None);
    }
}
