//! Where an enrollment starts: the URL and the token, from the token in any form, `--url`
//! and the configuration's `connector_url`, or which forms would fit the protocol. Sends
//! nothing.

use url::Url;

use super::form::{OneTimeToken, TokenForm, TokenFormError};
use crate::pki::secret::Token;
use crate::protocol::Protocol;

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
    let Some((token, form, url)) = token.map(OneTimeToken::into_parts) else {
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
    use crate::token::testutil::{COMPASS, LEGACY, SECRET, compass_blob, url};

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
}
