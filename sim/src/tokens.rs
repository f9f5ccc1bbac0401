//! One-time tokens: minting, expiry, and the two consumption rules (Compass burns a token on
//! first use, Kyma REST deletes it only after a successful call). Does not read HTTP requests.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Which connector a token belongs to; a token of one is unknown to the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Protocol {
    /// Compass / UCL connector, GraphQL.
    #[serde(rename = "compass")]
    Compass,
    /// Kyma Application Connector connector-service, REST.
    #[serde(rename = "kyma-rest")]
    KymaRest,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Compass => "compass",
            Protocol::KymaRest => "kyma-rest",
        }
    }
}

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is unknown or was already used")]
    Unknown,
    #[error("the token has expired")]
    Expired,
}

struct Entry {
    /// `None`: a Director token, accepted by the Compass connector and by the REST adapter.
    protocol: Option<Protocol>,
    client_id: String,
    expires: Instant,
}

impl Entry {
    fn accepts(&self, protocol: Protocol) -> bool {
        self.protocol.is_none_or(|own| own == protocol)
    }
}

/// The live tokens. Its `Debug` shows only how many there are.
pub(crate) struct TokenStore {
    ttl: Duration,
    live: Mutex<HashMap<String, Entry>>,
}

impl fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let live = self.live.lock().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("TokenStore")
            .field("ttl", &self.ttl)
            .field("live", &live)
            .finish()
    }
}

impl TokenStore {
    pub fn new(ttl: Duration) -> Self {
        TokenStore {
            ttl,
            live: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding this lock cannot leave the map half-updated: recover it.
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new random token for `client_id`, valid for the configured TTL.
    pub fn mint(&self, protocol: Protocol, client_id: &str) -> String {
        self.insert(Some(protocol), client_id)
    }

    /// A token the way the Compass Director issues one for an application: single use,
    /// valid at the Compass connector and at the REST adapter (its legacy connector URL).
    pub fn mint_director(&self, client_id: &str) -> String {
        self.insert(None, client_id)
    }

    fn insert(&self, protocol: Option<Protocol>, client_id: &str) -> String {
        let bytes: [u8; 32] = rand::random();
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let now = Instant::now();
        let mut live = self.lock();
        live.retain(|_, entry| entry.expires > now);
        live.insert(
            token.clone(),
            Entry {
                protocol,
                client_id: client_id.to_owned(),
                expires: now + self.ttl,
            },
        );
        token
    }

    /// Compass rule: the token is removed whatever happens next; returns its client id.
    pub fn burn(&self, protocol: Protocol, token: &str) -> Result<String, TokenError> {
        let mut live = self.lock();
        match live.get(token) {
            Some(entry) if entry.accepts(protocol) => {}
            _ => return Err(TokenError::Unknown),
        }
        let entry = live.remove(token).ok_or(TokenError::Unknown)?;
        if entry.expires <= Instant::now() {
            return Err(TokenError::Expired);
        }
        Ok(entry.client_id)
    }

    /// Kyma REST rule: looks the token up without consuming it; returns its client id.
    pub fn peek(&self, protocol: Protocol, token: &str) -> Result<String, TokenError> {
        let mut live = self.lock();
        let entry = match live.get(token) {
            Some(entry) if entry.accepts(protocol) => entry,
            _ => return Err(TokenError::Unknown),
        };
        if entry.expires <= Instant::now() {
            live.remove(token);
            return Err(TokenError::Expired);
        }
        Ok(entry.client_id.clone())
    }

    /// Deletes a token after the call it authorised succeeded.
    pub fn remove(&self, token: &str) {
        self.lock().remove(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burned_token_cannot_be_used_twice() {
        let store = TokenStore::new(Duration::from_secs(60));
        let token = store.mint(Protocol::Compass, "app");
        assert_eq!(store.burn(Protocol::Compass, &token), Ok("app".to_owned()));
        assert_eq!(
            store.burn(Protocol::Compass, &token),
            Err(TokenError::Unknown)
        );
    }

    #[test]
    fn peeked_token_stays_until_removed() {
        let store = TokenStore::new(Duration::from_secs(60));
        let token = store.mint(Protocol::KymaRest, "app");
        assert!(store.peek(Protocol::KymaRest, &token).is_ok());
        assert!(store.peek(Protocol::KymaRest, &token).is_ok());
        store.remove(&token);
        assert_eq!(
            store.peek(Protocol::KymaRest, &token),
            Err(TokenError::Unknown)
        );
    }

    #[test]
    fn token_of_one_protocol_is_unknown_to_the_other() {
        let store = TokenStore::new(Duration::from_secs(60));
        let token = store.mint(Protocol::KymaRest, "app");
        assert_eq!(
            store.burn(Protocol::Compass, &token),
            Err(TokenError::Unknown)
        );
        assert!(store.peek(Protocol::KymaRest, &token).is_ok());
    }

    #[test]
    fn director_token_is_accepted_by_either_protocol_once() {
        let store = TokenStore::new(Duration::from_secs(60));
        let token = store.mint_director("app");
        assert!(store.peek(Protocol::KymaRest, &token).is_ok());
        assert_eq!(store.burn(Protocol::Compass, &token), Ok("app".to_owned()));
        assert_eq!(
            store.peek(Protocol::KymaRest, &token),
            Err(TokenError::Unknown)
        );
    }

    #[test]
    fn expired_token_is_refused() {
        let store = TokenStore::new(Duration::from_millis(1));
        let token = store.mint(Protocol::Compass, "app");
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            store.burn(Protocol::Compass, &token),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn debug_output_does_not_show_tokens() {
        let store = TokenStore::new(Duration::from_secs(60));
        let token = store.mint(Protocol::Compass, "app");
        assert!(!format!("{store:?}").contains(&token));
    }
}
