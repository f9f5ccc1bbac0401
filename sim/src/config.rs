//! The simulator's settings and their validation. Does not start anything.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::SimError;

/// How a [`Simulator`](crate::Simulator) behaves. `Default` gives the values of the binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// Lifetime of every issued client certificate (notAfter − notBefore); at least one second.
    pub validity: Duration,
    /// How long a one-time token stays valid after it was minted.
    pub token_ttl: Duration,
    /// The client id (Compass) / application name (Kyma REST) that minted tokens belong to;
    /// it becomes the CN of the expected subject.
    pub app: String,
    /// Sign ECDSA P-256 CSRs too (the real connectors sign only RSA).
    pub accept_ecdsa: bool,
    /// Token-secured HTTPS listener; `None` = 127.0.0.1 with an OS-chosen port.
    pub token_addr: Option<SocketAddr>,
    /// Certificate-secured (mTLS) HTTPS listener; `None` = 127.0.0.1 with an OS-chosen port.
    pub mtls_addr: Option<SocketAddr>,
    /// Plain-HTTP admin listener; `None` = 127.0.0.1 with an OS-chosen port.
    pub admin_addr: Option<SocketAddr>,
    /// Where `server-ca.pem` and `client-ca.pem` are written (created if missing);
    /// `None` = a fresh temporary folder, removed when the simulator is dropped.
    pub out_dir: Option<PathBuf>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            validity: Duration::from_secs(90 * 24 * 3600),
            token_ttl: Duration::from_secs(5 * 60),
            app: "my-app".to_owned(),
            accept_ecdsa: false,
            token_addr: None,
            mtls_addr: None,
            admin_addr: None,
            out_dir: None,
        }
    }
}

/// Longest accepted certificate lifetime (about 100 years): keeps the date arithmetic in range.
const MAX_VALIDITY: Duration = Duration::from_secs(100 * 366 * 24 * 3600);

impl SimConfig {
    /// Checks the values, reporting the first field that is out of range.
    pub fn validate(&self) -> Result<(), SimError> {
        let invalid = |field: &'static str, reason: &str| {
            Err(SimError::InvalidConfig {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.validity < Duration::from_secs(1) {
            return invalid("validity", "must be at least one second");
        }
        if self.validity > MAX_VALIDITY {
            return invalid("validity", "must be at most 100 years");
        }
        if self.token_ttl.is_zero() {
            return invalid("token_ttl", "must be longer than zero");
        }
        if self.app.is_empty() || self.app.len() > 64 {
            return invalid("app", "must be 1 to 64 characters long");
        }
        if self.app.chars().any(|c| c.is_control()) {
            return invalid("app", "must not contain control characters");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_lasts_ninety_days() {
        let config = SimConfig::default();
        assert!(config.validate().is_ok());
        assert_eq!(config.validity, Duration::from_secs(7_776_000));
        assert_eq!(config.token_ttl, Duration::from_secs(300));
    }

    #[test]
    fn sub_second_validity_is_rejected_with_the_field_name() {
        let config = SimConfig {
            validity: Duration::from_millis(500),
            ..SimConfig::default()
        };
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("validity"), "{error}");
    }

    #[test]
    fn empty_app_is_rejected() {
        let config = SimConfig {
            app: String::new(),
            ..SimConfig::default()
        };
        assert!(config.validate().is_err());
    }
}
