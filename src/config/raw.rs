//! The configuration exactly as written: serde structs that refuse unknown keys and keep
//! each value's position. Does not validate values (see `build`).

use serde::Deserialize;
use toml::Spanned;

use super::values::IdSpec;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDaemon {
    pub log_format: Option<Spanned<String>>,
    pub log_level: Option<Spanned<String>>,
    pub max_concurrent_renewals: Option<Spanned<i64>>,
    pub watch_config: Option<Spanned<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub listen: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHook {
    pub signal: Option<Spanned<String>>,
    pub pid_file: Option<Spanned<String>>,
    pub systemd_unit: Option<Spanned<String>>,
    pub command: Option<Spanned<Vec<String>>>,
    pub timeout: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutput {
    pub kind: Option<Spanned<String>>,
    pub file: Option<Spanned<String>>,
    pub parts: Option<Spanned<Vec<String>>>,
    pub password_file: Option<Spanned<String>>,
    pub truststore: Option<Spanned<String>>,
}

/// A value and whether it came from `[defaults]`.
#[derive(Debug, Clone)]
pub(super) struct Src<T> {
    pub value: Spanned<T>,
    pub from_defaults: bool,
}

impl<T> Src<T> {
    pub fn own(value: Spanned<T>) -> Self {
        Src {
            value,
            from_defaults: false,
        }
    }

    fn inherited(value: Spanned<T>) -> Self {
        Src {
            value,
            from_defaults: true,
        }
    }

    pub fn get(&self) -> &T {
        self.value.get_ref()
    }
}

/// Declares the keys a `[[certificate]]` may inherit from `[defaults]` once, and derives
/// the defaults table, the certificate table and the merged view from that list.
macro_rules! inheritable_keys {
    ($($field:ident : $ty:ty),* $(,)?) => {
        /// `[defaults]`: every key a certificate may inherit.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct RawDefaults {
            $(pub $field: Option<Spanned<$ty>>,)*
        }

        /// One `[[certificate]]` table.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct RawCertificate {
            pub name: Option<Spanned<String>>,
            pub protocol: Option<Spanned<String>>,
            pub dir: Option<Spanned<String>>,
            pub connector_url: Option<Spanned<String>>,
            pub renewal_url: Option<Spanned<String>>,
            pub token_file: Option<Spanned<String>>,
            pub cert_file: Option<Spanned<String>>,
            pub key_file: Option<Spanned<String>>,
            pub chain_file: Option<Spanned<String>>,
            pub ca_file: Option<Spanned<String>>,
            pub on_renew: Option<Vec<Spanned<RawHook>>>,
            pub output: Option<Vec<Spanned<RawOutput>>>,
            $(pub $field: Option<Spanned<$ty>>,)*
        }

        /// The inheritable keys of one certificate after applying `[defaults]`.
        #[derive(Debug, Default)]
        pub(super) struct Inherited {
            $(pub $field: Option<Src<$ty>>,)*
        }

        impl Inherited {
            /// `[defaults]` alone, to validate it even where every certificate overrides it.
            pub fn defaults_only(defaults: &RawDefaults) -> Inherited {
                Inherited {
                    $($field: defaults.$field.clone().map(Src::inherited),)*
                }
            }

            /// The certificate's own values, else the defaults'. A certificate that sets
            /// `renew_at` or `renew_before` replaces the defaults' renewal policy whole.
            pub fn merge(cert: &RawCertificate, defaults: &RawDefaults) -> Inherited {
                let mut merged = Inherited {
                    $($field: cert.$field.clone().map(Src::own)
                        .or_else(|| defaults.$field.clone().map(Src::inherited)),)*
                };
                if cert.renew_at.is_some() || cert.renew_before.is_some() {
                    merged.renew_at = cert.renew_at.clone().map(Src::own);
                    merged.renew_before = cert.renew_before.clone().map(Src::own);
                }
                merged
            }
        }
    };
}

inheritable_keys! {
    owner: IdSpec,
    group: IdSpec,
    cert_mode: String,
    key_mode: String,
    server_ca_file: String,
    allow_insecure_http: bool,
    renew_at: String,
    renew_before: String,
    jitter: String,
    retry_min: String,
    retry_max: String,
    key_algorithm: String,
    rotate_key: bool,
    timeout: String,
    layout: String,
    proxy: String,
}
