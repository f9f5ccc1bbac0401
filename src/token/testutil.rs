//! The tokens the token tests share: one secret in each form.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use url::Url;

pub(super) const SECRET: &str = "tok-s3cr3t_Q";
pub(super) const COMPASS: &str = "https://compass.example/connector/graphql";
pub(super) const LEGACY: &str =
    "https://adapter.example/v1/applications/signingRequests/info?token=tok-s3cr3t_Q";

/// `json` as a rawEncoded blob.
pub(super) fn blob(json: &str) -> String {
    STANDARD.encode(json)
}

/// A blob as the Compass Director hands it out, with [`SECRET`] and [`COMPASS`].
pub(super) fn compass_blob() -> String {
    blob(&format!(
        r#"{{"token":"{SECRET}","connectorURL":"{COMPASS}","used":false,"type":"Application"}}"#
    ))
}

pub(super) fn url(text: &str) -> Url {
    Url::parse(text).unwrap()
}
