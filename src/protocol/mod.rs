//! The connector wire protocols (Compass GraphQL and Kyma REST) behind one [`Connector`]
//! trait: enroll with a token, renew and revoke over mutual TLS, and hand back the issued
//! PEM text. Does not generate keys or CSRs, verify what it receives, or touch the disk.

mod compass;
mod connector;
mod decode;
mod error;
mod http;
mod proxy;
mod rest;
mod server_date;
mod verdict;

#[cfg(test)]
mod testutil;

use url::Url;

pub use compass::{
    CONFIGURATION_QUERY, CompassConnector, DOCUMENTS, REVOKE_MUTATION, SIGN_CSR_MUTATION,
};
pub use connector::{ConnectionFacts, Connector, IssuedPems, Protocol, SigningAuth, SigningPlan};
pub use error::{MAX_SERVER_MESSAGE_CHARS, ProtocolError, RedactedUrl, alert_name};
pub use http::{HttpSettings, Identity, MAX_BODY_BYTES, USER_AGENT};
pub use proxy::{ProxySetting, redacted_proxy};
pub use rest::RestConnector;
pub use server_date::ServerDate;
pub use verdict::{Refusal, Verdict};

use crate::pki::secret::Token;

/// Either protocol, chosen at run time from the configuration.
#[derive(Debug)]
pub enum AnyConnector {
    Compass(CompassConnector),
    KymaRest(RestConnector),
}

/// A connector for `protocol` that reaches the server with `http`. Fails only on bad
/// trust settings (an unreadable `server_ca_pem`) or a TLS backend that cannot start.
pub fn connector(protocol: Protocol, http: HttpSettings) -> Result<AnyConnector, ProtocolError> {
    Ok(match protocol {
        Protocol::Compass => AnyConnector::Compass(CompassConnector::new(http)?),
        Protocol::KymaRest => AnyConnector::KymaRest(RestConnector::new(http)?),
    })
}

impl AnyConnector {
    pub fn protocol(&self) -> Protocol {
        match self {
            AnyConnector::Compass(_) => Protocol::Compass,
            AnyConnector::KymaRest(_) => Protocol::KymaRest,
        }
    }

    /// The `Date` header of the connector's last answer (a refusal's included).
    pub fn last_server_date(&self) -> Option<ServerDate> {
        match self {
            AnyConnector::Compass(c) => c.http.last_server_date(),
            AnyConnector::KymaRest(c) => c.http.last_server_date(),
        }
    }
}

impl Connector for AnyConnector {
    async fn begin_enroll(
        &self,
        url: &Url,
        token: Option<&Token>,
    ) -> Result<SigningPlan, ProtocolError> {
        match self {
            AnyConnector::Compass(c) => c.begin_enroll(url, token).await,
            AnyConnector::KymaRest(c) => c.begin_enroll(url, token).await,
        }
    }

    async fn begin_renew(
        &self,
        renewal_url: &Url,
        identity: &Identity,
    ) -> Result<SigningPlan, ProtocolError> {
        match self {
            AnyConnector::Compass(c) => c.begin_renew(renewal_url, identity).await,
            AnyConnector::KymaRest(c) => c.begin_renew(renewal_url, identity).await,
        }
    }

    async fn sign(
        &self,
        plan: &SigningPlan,
        csr_base64: &str,
        identity: Option<&Identity>,
    ) -> Result<IssuedPems, ProtocolError> {
        match self {
            AnyConnector::Compass(c) => c.sign(plan, csr_base64, identity).await,
            AnyConnector::KymaRest(c) => c.sign(plan, csr_base64, identity).await,
        }
    }

    async fn revoke(&self, renewal_url: &Url, identity: &Identity) -> Result<(), ProtocolError> {
        match self {
            AnyConnector::Compass(c) => c.revoke(renewal_url, identity).await,
            AnyConnector::KymaRest(c) => c.revoke(renewal_url, identity).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_picks_the_configured_protocol() {
        let c = connector(Protocol::KymaRest, HttpSettings::default()).unwrap();
        assert_eq!(c.protocol(), Protocol::KymaRest);
        let c = connector(Protocol::Compass, HttpSettings::default()).unwrap();
        assert_eq!(c.protocol(), Protocol::Compass);
    }
}
