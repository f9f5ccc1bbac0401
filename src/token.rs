//! The one-time token in every form the Compass Director hands out (the raw token, the
//! base64 `rawEncoded` JSON blob, the legacy connector URL), read from text or a token
//! file, and the choice of the URL an enrollment starts from. Sends nothing, does not
//! watch files, and never puts any form of the token into an error or a `Debug` output.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

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

/// A token file larger than this holds no token (a Kubernetes Secret is at most 1 MiB;
/// a token, even as a blob, is well under 1 KiB).
pub const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

/// Why a token file gave no usable token. No variant carries the file's content.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read the token file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the token file {path} is larger than 64 KiB: it holds no token")]
    TooLarge { path: PathBuf },
    #[error("the token file {path} is not UTF-8 text")]
    NotText { path: PathBuf },
    #[error("the token file {path} holds no usable token")]
    Form {
        path: PathBuf,
        #[source]
        source: TokenFormError,
    },
}

/// Reads and recognises the token in `path` (for `enroll --token-file`, and for a token
/// file the daemon watches). What was read is wiped before this returns.
pub fn read_token_file(path: &Path) -> Result<OneTimeToken, TokenFileError> {
    let mut bytes = Zeroizing::new(Vec::new());
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_TOKEN_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|source| TokenFileError::Read {
            path: path.to_owned(),
            source,
        })?;
    token_from_bytes(path, &bytes)
}

/// The token in what a token file held.
fn token_from_bytes(path: &Path, bytes: &[u8]) -> Result<OneTimeToken, TokenFileError> {
    if bytes.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(TokenFileError::TooLarge {
            path: path.to_owned(),
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| TokenFileError::NotText {
        path: path.to_owned(),
    })?;
    OneTimeToken::parse(text).map_err(|source| TokenFileError::Form {
        path: path.to_owned(),
        source,
    })
}

/// Reads the `token_file` the daemon watches, like [`read_token_file`], but opened
/// `O_NONBLOCK` and only if it is a regular file: a FIFO put there must not hold up the
/// daemon. (Symlinks are followed: secret volumes are made of them.)
pub fn read_watched_token_file(path: &Path) -> Result<OneTimeToken, TokenFileError> {
    use rustix::fs::{FileType, Mode, OFlags};
    let read_error = |source: std::io::Error| TokenFileError::Read {
        path: path.to_owned(),
        source,
    };
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| read_error(e.into()))?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| read_error(e.into()))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let mut bytes = Zeroizing::new(Vec::new());
    std::fs::File::from(fd)
        .take(MAX_TOKEN_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    token_from_bytes(path, &bytes)
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

/// Where an enrollment starts and with which token (`None`: the URL carries it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollTarget {
    pub url: Url,
    pub token: Option<Token>,
}

/// Chooses the enrollment URL and token for `protocol` from the token (any form), `--url`
/// and the config's `connector_url`, or explains which forms would fit. Runs before any
/// request, so a refused form leaves the one-time token unused.
///
/// compass: `--url`, then `connector_url`, then the blob's `connectorURL`. A legacy
/// connector URL names the REST adapter, not the GraphQL connector: its token is used
/// only with `--url` or `connector_url`. kyma-rest: `--url` (its `token` replaced by the
/// given one), then the legacy connector URL itself; a blob's `connectorURL` is a GraphQL
/// URL, so a blob or a raw token needs `--url`.
pub fn enroll_target(
    protocol: Protocol,
    token: Option<OneTimeToken>,
    explicit_url: Option<&str>,
    connector_url: Option<&Url>,
) -> Result<EnrollTarget, TokenFormError> {
    let explicit = explicit_url
        .map(str::trim)
        .map(|text| Url::parse(text).map_err(|_| TokenFormError::BadUrl))
        .transpose()?;
    let Some(OneTimeToken { token, form, url }) = token else {
        return match (protocol, explicit, connector_url) {
            (Protocol::KymaRest, Some(url), _) => Ok(EnrollTarget { url, token: None }),
            (Protocol::Compass, Some(url), _) => Ok(EnrollTarget { url, token: None }),
            (Protocol::Compass, None, Some(url)) => Ok(EnrollTarget {
                url: url.clone(),
                token: None,
            }),
            _ => Err(TokenFormError::NoUrl { protocol }),
        };
    };
    let chosen = match protocol {
        Protocol::Compass => {
            let from_token = url.filter(|_| form == TokenForm::RawEncoded);
            explicit.or_else(|| connector_url.cloned()).or(from_token)
        }
        Protocol::KymaRest => {
            let from_token = url.filter(|_| form == TokenForm::LegacyConnectorUrl);
            explicit.or(from_token)
        }
    };
    match chosen {
        Some(url) => Ok(EnrollTarget {
            url,
            token: Some(token),
        }),
        None => Err(missing_url(protocol, form)),
    }
}

fn missing_url(protocol: Protocol, form: TokenForm) -> TokenFormError {
    let why = match (protocol, form) {
        (Protocol::Compass, TokenForm::LegacyConnectorUrl) => {
            "without --url or connector_url (it names the REST adapter, not the GraphQL connector)"
        }
        (Protocol::KymaRest, TokenForm::RawEncoded) => {
            "without --url (its connectorURL is a Compass GraphQL URL)"
        }
        _ => return TokenFormError::NoUrl { protocol },
    };
    TokenFormError::Mismatch {
        protocol,
        form,
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "tok-s3cr3t_Q";
    const COMPASS: &str = "https://compass.example/connector/graphql";
    const LEGACY: &str =
        "https://adapter.example/v1/applications/signingRequests/info?token=tok-s3cr3t_Q";

    fn blob(json: &str) -> String {
        STANDARD.encode(json)
    }

    fn compass_blob() -> String {
        blob(&format!(
            r#"{{"token":"{SECRET}","connectorURL":"{COMPASS}","used":false,"type":"Application"}}"#
        ))
    }

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

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
    fn a_token_file_is_read_in_any_form_and_bad_files_are_named_not_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{}\n", compass_blob())).unwrap();
        let parsed = read_token_file(&path).unwrap();
        assert_eq!(parsed.form(), TokenForm::RawEncoded);
        assert_eq!(parsed.token().expose(), SECRET);

        std::fs::write(&path, "tok-s3cr3t_Q tok-s3cr3t_Q").unwrap();
        let err = read_token_file(&path).unwrap_err();
        assert!(matches!(
            err,
            TokenFileError::Form {
                source: TokenFormError::Garbled,
                ..
            }
        ));
        std::fs::write(&path, b"tok-s3cr3t_Q\xff").unwrap();
        assert!(matches!(
            read_token_file(&path),
            Err(TokenFileError::NotText { .. })
        ));
        std::fs::write(&path, "x".repeat(MAX_TOKEN_FILE_BYTES as usize + 1)).unwrap();
        assert!(matches!(
            read_token_file(&path),
            Err(TokenFileError::TooLarge { .. })
        ));
        let missing = dir.path().join("missing");
        let err = read_token_file(&missing).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
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

    fn target(
        protocol: Protocol,
        text: &str,
        explicit: Option<&str>,
        config: Option<&str>,
    ) -> Result<EnrollTarget, TokenFormError> {
        let config = config.map(url);
        enroll_target(
            protocol,
            Some(OneTimeToken::parse(text).unwrap()),
            explicit,
            config.as_ref(),
        )
    }

    #[test]
    fn compass_takes_the_url_from_flag_then_config_then_blob() {
        let flag = "https://flag.example/graphql";
        let config = "https://config.example/graphql";
        let blob = compass_blob();
        let chosen = |explicit, config| target(Protocol::Compass, &blob, explicit, config);
        assert_eq!(chosen(Some(flag), Some(config)).unwrap().url, url(flag));
        assert_eq!(chosen(None, Some(config)).unwrap().url, url(config));
        let from_blob = chosen(None, None).unwrap();
        assert_eq!(from_blob.url, url(COMPASS));
        assert_eq!(from_blob.token.unwrap().expose(), SECRET);
    }

    #[test]
    fn compass_uses_a_legacy_url_token_only_with_a_connector_url() {
        let config = "https://config.example/graphql";
        let chosen = target(Protocol::Compass, LEGACY, None, Some(config)).unwrap();
        assert_eq!(chosen.url, url(config));
        assert_eq!(chosen.token.unwrap().expose(), SECRET);
        let err = target(Protocol::Compass, LEGACY, None, None).unwrap_err();
        assert!(matches!(err, TokenFormError::Mismatch { .. }), "{err}");
        let shown = err.to_string();
        assert!(shown.contains("legacy connector URL"), "{shown}");
        assert!(
            shown.contains("compass accepts the rawEncoded blob"),
            "{shown}"
        );
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn kyma_rest_uses_the_legacy_url_itself_or_the_flag() {
        let chosen = target(Protocol::KymaRest, LEGACY, None, Some(COMPASS)).unwrap();
        assert_eq!(chosen.url, url(LEGACY));
        let flag = "https://flag.example/v1/applications/signingRequests/info";
        let chosen = target(Protocol::KymaRest, SECRET, Some(flag), None).unwrap();
        assert_eq!(chosen.url, url(flag));
        assert_eq!(chosen.token.unwrap().expose(), SECRET);
    }

    #[test]
    fn kyma_rest_refuses_a_blob_or_raw_token_without_a_flag() {
        let err = target(Protocol::KymaRest, &compass_blob(), None, Some(COMPASS)).unwrap_err();
        assert!(matches!(err, TokenFormError::Mismatch { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("kyma-rest accepts the legacy connector URL")
        );
        let err = target(Protocol::KymaRest, SECRET, None, Some(COMPASS)).unwrap_err();
        assert_eq!(
            err,
            TokenFormError::NoUrl {
                protocol: Protocol::KymaRest
            }
        );
        let flag = "https://flag.example/v1/applications/signingRequests/info";
        let chosen = target(Protocol::KymaRest, &compass_blob(), Some(flag), None).unwrap();
        assert_eq!(chosen.url, url(flag));
    }

    #[test]
    fn without_a_token_the_url_must_carry_it_or_compass_has_a_connector_url() {
        let flag = "https://flag.example/info?token=x";
        let chosen = enroll_target(Protocol::KymaRest, None, Some(flag), None).unwrap();
        assert_eq!((chosen.url, chosen.token), (url(flag), None));
        let err = enroll_target(Protocol::KymaRest, None, None, None).unwrap_err();
        assert_eq!(
            err,
            TokenFormError::NoUrl {
                protocol: Protocol::KymaRest
            }
        );
        let err = enroll_target(Protocol::Compass, None, Some("not a url"), None).unwrap_err();
        assert_eq!(err, TokenFormError::BadUrl);
    }

    #[test]
    fn a_watched_token_file_that_is_a_fifo_is_an_error_at_once_not_a_wait() {
        let dir = tempfile::tempdir().unwrap();
        let folder = std::fs::File::open(dir.path()).unwrap();
        rustix::fs::mknodat(
            &folder,
            "token",
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let started = std::time::Instant::now();
        let err = read_watched_token_file(&dir.path().join("token")).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        let TokenFileError::Read { source, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(source.to_string(), "not a regular file");

        std::fs::write(dir.path().join("real"), "abc123\n").unwrap();
        let token = read_watched_token_file(&dir.path().join("real")).unwrap();
        assert_eq!(token.token().expose(), "abc123");
        let missing = read_watched_token_file(&dir.path().join("absent")).unwrap_err();
        assert!(
            matches!(missing, TokenFileError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
        );
    }
}
