//! The forms a one-time token comes in (the raw token, the base64 `rawEncoded` JSON blob,
//! the legacy connector URL), told apart and taken apart, and the forms each protocol
//! accepts. Reads no file and never shows the token.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use url::Url;
use zeroize::Zeroizing;

use crate::pki::secret::Token;
use crate::protocol::{Protocol, RedactedUrl};

/// How the token was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenForm {
    /// The token alone (Director `token`).
    Raw,
    /// Base64 of `{"token": .., "connectorURL": ..}` (Director `rawEncoded`), or that JSON
    /// text itself (Director `raw`).
    RawEncoded,
    /// `https://../v1/applications/signingRequests/info?token=..` (Director
    /// `legacyConnectorURL`, the Kyma REST configuration URL).
    LegacyConnectorUrl,
}

impl TokenForm {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenForm::Raw => "raw token",
            TokenForm::RawEncoded => "rawEncoded blob",
            TokenForm::LegacyConnectorUrl => "legacy connector URL",
        }
    }
}

/// A one-time token as given, split into the token and the URL that came with it.
#[derive(Clone, PartialEq, Eq)]
pub struct OneTimeToken {
    token: Token,
    form: TokenForm,
    /// The blob's `connectorURL`, or the legacy connector URL itself (token included).
    url: Option<Url>,
}

impl fmt::Debug for OneTimeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneTimeToken")
            .field("token", &self.token)
            .field("form", &self.form)
            .field("url", &self.url.as_ref().map(RedactedUrl::new))
            .finish()
    }
}

impl From<Token> for OneTimeToken {
    /// A token already known to be raw (the simulator's, a test's).
    fn from(token: Token) -> Self {
        OneTimeToken {
            token,
            form: TokenForm::Raw,
            url: None,
        }
    }
}

/// Why a token or the URL beside it cannot be used. No variant carries the token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenFormError {
    #[error("the one-time token is empty")]
    Empty,
    #[error(
        "the one-time token contains whitespace or control characters: give one token \
         (raw, a rawEncoded blob or a legacy connector URL), alone"
    )]
    Garbled,
    #[error(
        "the rawEncoded blob does not hold a JSON object with a non-empty string `token` \
         (and optionally a `connectorURL`)"
    )]
    BadBlob,
    #[error("the rawEncoded blob's connectorURL is not a valid URL")]
    BadBlobUrl,
    #[error("the legacy connector URL is not a valid URL")]
    BadLegacyUrl,
    #[error("the legacy connector URL {url} has no `token` query parameter")]
    LegacyUrlWithoutToken { url: String },
    #[error("the enrollment URL given with --url is not a valid URL")]
    BadUrl,
    #[error("a {form} does not fit a {protocol} certificate {why}; {accepted}", form = form.as_str(), protocol = protocol.as_str(), accepted = accepted_forms(*protocol))]
    Mismatch {
        protocol: Protocol,
        form: TokenForm,
        why: &'static str,
    },
    #[error("no enrollment URL; {accepted}", accepted = accepted_forms(*protocol))]
    NoUrl { protocol: Protocol },
}

/// The forms `enroll` accepts for `protocol`, as a sentence for error messages.
pub fn accepted_forms(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Compass => {
            "compass accepts the rawEncoded blob (its connectorURL is used unless --url or \
             connector_url is set), or the raw token or the legacy connector URL together \
             with --url or connector_url (the token-secured connector URL)"
        }
        Protocol::KymaRest => {
            "kyma-rest accepts the legacy connector URL (.../v1/applications/signingRequests/\
             info?token=...) as the token or as --url, or the raw token or the rawEncoded \
             blob together with --url (the configuration URL)"
        }
    }
}

impl OneTimeToken {
    /// Recognises the form of `text`; surrounding whitespace (a trailing newline) is ignored.
    pub fn parse(text: &str) -> Result<OneTimeToken, TokenFormError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(TokenFormError::Empty);
        }
        if text.starts_with("https://") || text.starts_with("http://") {
            return parse_legacy_url(text);
        }
        if text.starts_with('{') {
            return parse_blob_json(text.as_bytes());
        }
        if let Some(json) = decoded_json(text) {
            return parse_blob_json(&json);
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(TokenFormError::Garbled);
        }
        Ok(Token::new(text).into())
    }

    pub fn form(&self) -> TokenForm {
        self.form
    }

    /// The token, for the one place that sends it.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// The token, its form and the URL that came with it.
    pub(super) fn into_parts(self) -> (Token, TokenForm, Option<Url>) {
        (self.token, self.form, self.url)
    }
}

/// The decoded bytes when `text` is base64 of a JSON object (a random raw token decodes
/// to bytes that are neither UTF-8 nor start with `{`), wiped on drop.
fn decoded_json(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .map(Zeroizing::new)?;
    let looks_like_json = std::str::from_utf8(&decoded)
        .map(|s| s.trim_start().starts_with('{'))
        .unwrap_or(false);
    looks_like_json.then_some(decoded)
}

#[derive(serde::Deserialize)]
struct Blob {
    token: Option<serde_json::Value>,
    #[serde(rename = "connectorURL")]
    connector_url: Option<serde_json::Value>,
}

fn parse_blob_json(json: &[u8]) -> Result<OneTimeToken, TokenFormError> {
    // serde_json's messages quote the values they reject: they are never shown.
    let blob: Blob = serde_json::from_slice(json).map_err(|_| TokenFormError::BadBlob)?;
    let token = match blob.token {
        Some(serde_json::Value::String(text)) => Token::new(text),
        _ => return Err(TokenFormError::BadBlob),
    };
    if token.is_empty() {
        return Err(TokenFormError::BadBlob);
    }
    let url = match blob.connector_url {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(text)) if text.trim().is_empty() => None,
        Some(serde_json::Value::String(text)) => {
            Some(Url::parse(text.trim()).map_err(|_| TokenFormError::BadBlobUrl)?)
        }
        Some(_) => return Err(TokenFormError::BadBlobUrl),
    };
    Ok(OneTimeToken {
        token,
        form: TokenForm::RawEncoded,
        url,
    })
}

fn parse_legacy_url(text: &str) -> Result<OneTimeToken, TokenFormError> {
    let url = Url::parse(text).map_err(|_| TokenFormError::BadLegacyUrl)?;
    let token = url
        .query_pairs()
        .find(|(key, _)| key == "token")
        .map(|(_, value)| Token::new(value.into_owned()))
        .filter(|token| !token.is_empty())
        .ok_or_else(|| TokenFormError::LegacyUrlWithoutToken {
            url: RedactedUrl::new(&url).to_string(),
        })?;
    Ok(OneTimeToken {
        token,
        form: TokenForm::LegacyConnectorUrl,
        url: Some(url),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::testutil::{COMPASS, LEGACY, SECRET, blob, compass_blob, url};

    #[test]
    fn a_raw_token_is_taken_as_it_is_without_surrounding_whitespace() {
        let parsed = OneTimeToken::parse(&format!("  {SECRET}\n\n")).unwrap();
        assert_eq!(parsed.form(), TokenForm::Raw);
        assert_eq!(parsed.token().expose(), SECRET);
    }

    #[test]
    fn the_raw_encoded_blob_gives_its_token_and_connector_url() {
        for text in [
            compass_blob(),
            format!("{}\n", compass_blob().trim_end_matches('=')),
            URL_SAFE.encode(format!(
                r#"{{"token":"{SECRET}","connectorURL":"{COMPASS}"}}"#
            )),
            format!(r#"{{"token":"{SECRET}","connectorURL":"{COMPASS}"}}"#),
        ] {
            let parsed = OneTimeToken::parse(&text).unwrap();
            assert_eq!(parsed.form(), TokenForm::RawEncoded, "{text}");
            assert_eq!(parsed.token().expose(), SECRET);
            assert_eq!(parsed.url, Some(url(COMPASS)));
        }
    }

    #[test]
    fn the_legacy_connector_url_gives_its_token() {
        let parsed = OneTimeToken::parse(&format!("{LEGACY}\n")).unwrap();
        assert_eq!(parsed.form(), TokenForm::LegacyConnectorUrl);
        assert_eq!(parsed.token().expose(), SECRET);
    }

    #[test]
    fn broken_forms_are_refused_without_showing_the_token() {
        let cases = [
            ("", TokenFormError::Empty),
            (" \n", TokenFormError::Empty),
            ("tok-s3cr3t_Q other", TokenFormError::Garbled),
            (r#"{"token":"tok-s3cr3t_Q""#, TokenFormError::BadBlob),
            (
                r#"{"token":17,"connectorURL":"tok-s3cr3t_Q"}"#,
                TokenFormError::BadBlob,
            ),
            (
                r#"{"connectorURL":"tok-s3cr3t_Q"}"#,
                TokenFormError::BadBlob,
            ),
            (
                r#"{"token":"tok-s3cr3t_Q","connectorURL":"nope"}"#,
                TokenFormError::BadBlobUrl,
            ),
            (
                "https://adapter.example/info?x=tok-s3cr3t_Q",
                TokenFormError::LegacyUrlWithoutToken {
                    url: "https://adapter.example/info?<redacted>".into(),
                },
            ),
            ("https://[tok-s3cr3t_Q/", TokenFormError::BadLegacyUrl),
        ];
        for (text, expected) in cases {
            let err = OneTimeToken::parse(text).unwrap_err();
            assert_eq!(err, expected, "{text}");
            assert!(!err.to_string().contains("s3cr3t"), "{err}");
        }
        let err = OneTimeToken::parse(&blob(r#"{"token":"tok-s3cr3t_Q","#)).unwrap_err();
        assert_eq!(err, TokenFormError::BadBlob);
    }

    #[test]
    fn random_raw_tokens_are_never_mistaken_for_blobs() {
        for _ in 0..2000 {
            let bytes: [u8; 32] = rand::random();
            let token = URL_SAFE_NO_PAD.encode(bytes);
            let parsed = OneTimeToken::parse(&token).unwrap();
            assert_eq!(parsed.form(), TokenForm::Raw);
        }
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        for text in [SECRET.to_owned(), compass_blob(), LEGACY.to_owned()] {
            let parsed = OneTimeToken::parse(&text).unwrap();
            assert!(!format!("{parsed:?}").contains("s3cr3t"), "{parsed:?}");
        }
    }
}
