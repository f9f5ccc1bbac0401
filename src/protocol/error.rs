//! The protocol layer's error type: what went wrong talking to a connector, classified
//! into a metric reason (the verdict on the certificate is in `verdict.rs`). Does not
//! decide what the daemon does about it, and never carries a token, key, CSR or
//! certificate body.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use rustls::AlertDescription;
use rustls::CertificateError;
use url::Url;

/// Longest server-supplied message kept in an error, in characters.
pub const MAX_SERVER_MESSAGE_CHARS: usize = 200;

/// A URL safe to print: no user info, no query (REST URLs carry `?token=`), no fragment.
#[derive(Clone, PartialEq, Eq)]
pub struct RedactedUrl(String);

impl RedactedUrl {
    pub fn new(url: &Url) -> Self {
        let mut safe = url.clone();
        let had_query = safe.query().is_some();
        safe.set_query(None);
        safe.set_fragment(None);
        // Both fail only for URLs that cannot carry credentials (no host): nothing to hide.
        let _ = safe.set_username("");
        let _ = safe.set_password(None);
        let mut text = String::from(safe.as_str());
        if had_query {
            text.push_str("?<redacted>");
        }
        RedactedUrl(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&Url> for RedactedUrl {
    fn from(url: &Url) -> Self {
        RedactedUrl::new(url)
    }
}

impl fmt::Display for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Everything that can go wrong in one exchange with a connector.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    #[error(
        "refusing plain http url {url}: connectors are reached over https unless allow_insecure_http is set"
    )]
    InsecureUrl { url: RedactedUrl },

    #[error("unsupported url scheme in {url}: only https (and http when allowed) are used")]
    UnsupportedScheme { url: RedactedUrl },

    #[error("invalid server ca bundle: {detail}")]
    ServerCa { detail: String },

    #[error("invalid client certificate or key for mutual tls: {detail}")]
    Identity { detail: String },

    #[error("cannot set up the http client: {detail}")]
    Client { detail: String },

    #[error("connector's certificate is not trusted: {detail} ({url})")]
    UntrustedServer { url: RedactedUrl, detail: String },

    #[error("connector's certificate does not match host {host} ({url})")]
    WrongHost { url: RedactedUrl, host: String },

    #[error(
        "the tls handshake with {url} was refused with alert {}: a gateway or proxy in front of the connector, or the connector, did not accept the client certificate",
        alert_name(*.alert)
    )]
    HandshakeRefused {
        url: RedactedUrl,
        alert: AlertDescription,
    },

    #[error("tls failure talking to {url}: {detail}")]
    Tls { url: RedactedUrl, detail: String },

    #[error("request to {url} timed out after {}", humantime::format_duration(*.timeout))]
    Timeout { url: RedactedUrl, timeout: Duration },

    #[error("cannot reach {url}: {detail}")]
    Network { url: RedactedUrl, detail: String },

    #[error(
        "the proxy refused to tunnel to {url}: http 407, proxy authentication required (check HTTPS_PROXY and its credentials)"
    )]
    ProxyAuthentication {
        url: RedactedUrl,
        /// The call was authenticated with our client certificate.
        mtls: bool,
    },

    #[error("{url} answered http {status}{}", message_suffix(.message))]
    Status {
        url: RedactedUrl,
        status: u16,
        /// A short, sanitized excerpt of the server's error message, if it sent one.
        message: Option<String>,
        /// The call was authenticated with our client certificate.
        mtls: bool,
        /// The body is the connector's own error format, `{"code": <this status>, "error": ..}`.
        from_connector: bool,
    },

    #[error("response from {url} is larger than {limit} bytes")]
    BodyTooLarge { url: RedactedUrl, limit: usize },

    #[error("graphql error from {url}: {message}")]
    GraphQl {
        url: RedactedUrl,
        message: String,
        /// The call was authenticated with our client certificate.
        mtls: bool,
    },

    #[error("malformed response from {url}: {detail}")]
    Malformed { url: RedactedUrl, detail: String },

    #[error("connector at {url} did not confirm the revocation")]
    RevocationNotConfirmed { url: RedactedUrl },

    #[error("a one-time token is needed to enroll at {url}")]
    MissingToken { url: RedactedUrl },

    #[error("a client certificate is needed to {operation} at {url}")]
    MissingIdentity {
        url: RedactedUrl,
        operation: &'static str,
    },

    #[error("the token cannot be sent: it contains characters not allowed in a request")]
    InvalidToken,
}

/// The RFC 8446 name of a TLS alert (`unknown_ca`), as operators search for it.
pub fn alert_name(alert: AlertDescription) -> String {
    use AlertDescription as A;
    let name = match alert {
        A::CloseNotify => "close_notify",
        A::UnexpectedMessage => "unexpected_message",
        A::BadRecordMac => "bad_record_mac",
        A::DecryptionFailed => "decryption_failed",
        A::RecordOverflow => "record_overflow",
        A::DecompressionFailure => "decompression_failure",
        A::HandshakeFailure => "handshake_failure",
        A::NoCertificate => "no_certificate",
        A::BadCertificate => "bad_certificate",
        A::UnsupportedCertificate => "unsupported_certificate",
        A::CertificateRevoked => "certificate_revoked",
        A::CertificateExpired => "certificate_expired",
        A::CertificateUnknown => "certificate_unknown",
        A::IllegalParameter => "illegal_parameter",
        A::UnknownCA => "unknown_ca",
        A::AccessDenied => "access_denied",
        A::DecodeError => "decode_error",
        A::DecryptError => "decrypt_error",
        A::ExportRestriction => "export_restriction",
        A::ProtocolVersion => "protocol_version",
        A::InsufficientSecurity => "insufficient_security",
        A::InternalError => "internal_error",
        A::InappropriateFallback => "inappropriate_fallback",
        A::UserCanceled => "user_canceled",
        A::NoRenegotiation => "no_renegotiation",
        A::MissingExtension => "missing_extension",
        A::UnsupportedExtension => "unsupported_extension",
        A::CertificateUnobtainable => "certificate_unobtainable",
        A::UnrecognisedName => "unrecognized_name",
        A::BadCertificateStatusResponse => "bad_certificate_status_response",
        A::BadCertificateHashValue => "bad_certificate_hash_value",
        A::UnknownPSKIdentity => "unknown_psk_identity",
        A::CertificateRequired => "certificate_required",
        A::NoApplicationProtocol => "no_application_protocol",
        other => return format!("alert {}", u8::from(other)),
    };
    name.to_owned()
}

fn message_suffix(message: &Option<String>) -> String {
    match message {
        Some(m) if !m.is_empty() => format!(": {m}"),
        _ => String::new(),
    }
}

impl ProtocolError {
    /// The metric label for this failure: `network`, `tls`, `http` or `protocol`.
    pub fn reason(&self) -> &'static str {
        use ProtocolError::*;
        match self {
            InsecureUrl { .. }
            | ServerCa { .. }
            | Identity { .. }
            | Client { .. }
            | UntrustedServer { .. }
            | WrongHost { .. }
            | HandshakeRefused { .. }
            | Tls { .. } => "tls",
            Timeout { .. } | Network { .. } => "network",
            Status { .. } | BodyTooLarge { .. } | ProxyAuthentication { .. } => "http",
            UnsupportedScheme { .. }
            | GraphQl { .. }
            | Malformed { .. }
            | RevocationNotConfirmed { .. }
            | MissingToken { .. }
            | MissingIdentity { .. }
            | InvalidToken => "protocol",
        }
    }

    /// Replaces any occurrence of `secret` in server-supplied text (a server might echo
    /// the token it was given).
    pub(crate) fn scrub(mut self, secret: &str) -> Self {
        if secret.is_empty() {
            return self;
        }
        let clean = |text: &mut String| {
            if text.contains(secret) {
                *text = text.replace(secret, "<redacted>");
            }
        };
        match &mut self {
            ProtocolError::Status {
                message: Some(m), ..
            } => clean(m),
            ProtocolError::GraphQl { message, .. } => clean(message),
            ProtocolError::Malformed { detail, .. } => clean(detail),
            _ => {}
        }
        self
    }

    /// Classifies a transport failure of a request to `url`.
    pub(crate) fn from_transport(
        err: reqwest::Error,
        url: &Url,
        timeout: Duration,
        mtls: bool,
    ) -> Self {
        let err = err.without_url();
        let safe = RedactedUrl::new(url);
        if let Some(tls) = find_rustls_error(&err) {
            return classify_tls(tls, safe, url, mtls);
        }
        if err.is_timeout() || chain_has_io_kind(&err, std::io::ErrorKind::TimedOut) {
            return ProtocolError::Timeout { url: safe, timeout };
        }
        let detail = describe_chain(&err);
        if is_proxy_authentication_required(&detail) {
            return ProtocolError::ProxyAuthentication { url: safe, mtls };
        }
        ProtocolError::Network { url: safe, detail }
    }
}

/// A forward proxy's `407` to CONNECT. hyper-util keeps its tunnel error type private, so
/// its text is all there is to go by.
fn is_proxy_authentication_required(chain: &str) -> bool {
    chain.contains("proxy authorization required")
}

fn classify_tls(err: &rustls::Error, safe: RedactedUrl, url: &Url, mtls: bool) -> ProtocolError {
    match err {
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => ProtocolError::WrongHost {
            url: safe,
            host: url.host_str().unwrap_or_default().to_owned(),
        },
        rustls::Error::InvalidCertificate(cert) => ProtocolError::UntrustedServer {
            url: safe,
            detail: match cert {
                CertificateError::UnknownIssuer => {
                    "issued by an authority not in the trusted set".into()
                }
                // An authority of the trusted one's name but with another key: rustls
                // only says "BadSignature".
                CertificateError::BadSignature => {
                    "its signature does not verify with the trusted authority's key (another authority of the same name?)".into()
                }
                other => bounded(&other.to_string()),
            },
        },
        // Any alert: a gateway with a broken client-CA bundle says `unknown_ca`, one with
        // a strict policy `handshake_failure` or `access_denied`. None of them is the
        // connector's word about the certificate.
        rustls::Error::AlertReceived(alert) if mtls => ProtocolError::HandshakeRefused {
            url: safe,
            alert: *alert,
        },
        other => ProtocolError::Tls {
            url: safe,
            detail: bounded(&other.to_string()),
        },
    }
}

/// Walks the source chain, looking inside `io::Error`s too (whose `source()` skips the
/// wrapped error itself), for the `rustls::Error` behind a failure.
fn find_rustls_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && let Some(tls) = find_rustls_error(inner)
        {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

fn chain_has_io_kind(err: &(dyn StdError + 'static), kind: std::io::ErrorKind) -> bool {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == kind)
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// The error chain (see [`crate::errors::error_chain`]), bounded. Callers pass errors
/// stripped of URLs.
pub(crate) fn describe_chain(err: &(dyn StdError + 'static)) -> String {
    bounded(&crate::errors::error_chain(err))
}

/// A server-supplied or library-supplied text made safe to log: control characters
/// replaced, at most [`MAX_SERVER_MESSAGE_CHARS`] characters.
pub(crate) fn bounded(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_SERVER_MESSAGE_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(MAX_SERVER_MESSAGE_CHARS).is_some() {
        out.push('…');
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> Url {
        Url::parse("https://user:pw@connector.example/v1/info?token=SECRET#frag").unwrap()
    }

    #[test]
    fn redacted_url_drops_query_credentials_and_fragment() {
        let shown = RedactedUrl::new(&url()).to_string();
        assert_eq!(shown, "https://connector.example/v1/info?<redacted>");
        assert!(!shown.contains("SECRET") && !shown.contains("pw"));
    }

    #[test]
    fn alerts_have_their_rfc_names() {
        assert_eq!(alert_name(AlertDescription::UnknownCA), "unknown_ca");
        assert_eq!(
            alert_name(AlertDescription::CertificateExpired),
            "certificate_expired"
        );
        assert_eq!(alert_name(AlertDescription::Unknown(200)), "alert 200");
    }

    #[test]
    fn bounded_cuts_long_messages_and_control_characters() {
        let long = "x".repeat(10_000);
        assert_eq!(bounded(&long).chars().count(), MAX_SERVER_MESSAGE_CHARS + 1);
        assert_eq!(bounded("a\nb\u{1b}[31m"), "a b [31m");
    }

    #[test]
    fn a_server_certificate_with_a_bad_signature_is_explained_in_words() {
        let bad = rustls::Error::InvalidCertificate(CertificateError::BadSignature);
        let err = classify_tls(&bad, RedactedUrl::new(&url()), &url(), false);
        let text = err.to_string();
        assert!(
            matches!(err, ProtocolError::UntrustedServer { .. }),
            "{text}"
        );
        assert!(text.contains("signature does not verify"), "{text}");
        assert!(!text.contains("BadSignature"), "{text}");
    }

    #[test]
    fn alerts_on_a_token_call_are_plain_tls_errors_and_on_mtls_refusals() {
        for description in [
            AlertDescription::CertificateExpired,
            AlertDescription::HandshakeFailure,
            AlertDescription::InternalError,
        ] {
            let alert = rustls::Error::AlertReceived(description);
            let on_token = classify_tls(&alert, RedactedUrl::new(&url()), &url(), false);
            assert!(matches!(on_token, ProtocolError::Tls { .. }));
            let on_mtls = classify_tls(&alert, RedactedUrl::new(&url()), &url(), true);
            assert!(
                matches!(on_mtls.verdict(), crate::protocol::Verdict::Refused(_)),
                "{on_mtls}"
            );
            assert!(!on_mtls.needs_reenrollment());
        }
    }

    #[test]
    fn rustls_error_is_found_inside_io_errors() {
        let io = std::io::Error::other(rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired,
        ));
        let outer: Box<dyn StdError + Send + Sync> = Box::new(io);
        assert!(matches!(
            find_rustls_error(outer.as_ref()),
            Some(rustls::Error::AlertReceived(
                AlertDescription::CertificateRequired
            ))
        ));
    }

    #[test]
    fn scrub_removes_an_echoed_token() {
        let err = ProtocolError::Status {
            url: RedactedUrl::new(&url()),
            status: 403,
            message: Some("token SECRET is invalid".into()),
            mtls: false,
            from_connector: true,
        }
        .scrub("SECRET");
        assert!(!err.to_string().contains("SECRET"));
    }
}
