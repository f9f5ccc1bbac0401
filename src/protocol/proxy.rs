//! How the connector is reached: the `proxy` setting, applied to the HTTP client, and
//! shown without the proxy's password. Does not send requests.

use std::fmt;

use url::Url;

use super::error::ProtocolError;

/// How the connector is reached: the `proxy` key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ProxySetting {
    /// Unset: `HTTPS_PROXY` / `ALL_PROXY` / `NO_PROXY` from the environment.
    #[default]
    Environment,
    /// `proxy = "none"` (or `""`): always connect directly, whatever the environment says.
    Direct,
    /// `proxy = "http://[user:password@]host:port"`: this proxy for every connector
    /// request; the environment is ignored. May carry credentials: never log it whole.
    Url(Url),
}

/// A proxy URL for display: the password, if any, replaced.
pub fn redacted_proxy(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        // Fails only for URLs that cannot carry credentials, which never have a password.
        let _ = shown.set_password(Some("redacted"));
    }
    shown.to_string()
}

/// A proxy setting for `Debug`: never the proxy's password.
pub(crate) struct ShownProxy<'a>(pub(crate) &'a ProxySetting);

impl fmt::Debug for ShownProxy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ProxySetting::Environment => f.write_str("Environment"),
            ProxySetting::Direct => f.write_str("Direct"),
            ProxySetting::Url(url) => {
                write!(f, "Url({})", redacted_proxy(url))
            }
        }
    }
}

/// `builder` set up to reach connectors as `setting` says.
pub(crate) fn configure(
    builder: reqwest::ClientBuilder,
    setting: &ProxySetting,
) -> Result<reqwest::ClientBuilder, ProtocolError> {
    Ok(match setting {
        ProxySetting::Environment => builder,
        ProxySetting::Direct => builder.no_proxy(),
        // An explicit proxy turns reqwest's reading of the environment off: the setting wins.
        // Credentials in the URL become the Proxy-Authorization header.
        ProxySetting::Url(url) => builder.proxy(reqwest::Proxy::all(url.as_str()).map_err(
            |_| ProtocolError::Client {
                detail: "the proxy URL is not usable".into(),
            },
        )?),
    })
}
