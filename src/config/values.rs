//! Parsers for single configuration values (durations, percentages, modes, names,
//! URLs, signals, user and group ids). Each returns a lower-case reason on failure.
//! Does not know where in the file a value sits.

use std::net::SocketAddr;
use std::time::Duration;

use url::Url;

use super::model::{HookSignal, KeyAlgorithm, LogFormat, Protocol, ProxySetting};

/// A humane duration (`"90s"`, `"30m"`, `"36h"`, `"30d"`, `"1h 30m"`), greater than zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("must be a duration like \"30s\", \"15m\", \"36h\" or \"30d\"".into());
    }
    let duration = humantime::parse_duration(trimmed).map_err(|e| {
        format!("is not a duration like \"30s\", \"15m\", \"36h\" or \"30d\" ({e})")
    })?;
    if duration.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(duration)
}

/// Renders a duration in the largest unit that divides it (`30d`, `36h`, `90s`, `250ms`),
/// which `parse_duration` reads back.
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms == 0 || !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let secs = ms / 1000;
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// A percentage (`"70%"`, `"2.5%"`) as a fraction of one. The `%` sign is required.
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let Some(number) = text.trim().strip_suffix('%') else {
        return Err("must be a percentage like \"70%\"".into());
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| "must be a percentage like \"70%\"".to_string())?;
    if !value.is_finite() {
        return Err("must be a finite percentage".into());
    }
    Ok(value / 100.0)
}

/// Renders a fraction as a percentage without trailing zeros (`0.7` → `70%`).
pub fn format_percent(fraction: f64) -> String {
    let text = format!("{:.4}", fraction * 100.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// Which file a mode is for: key files must keep others out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeKind {
    Certificate,
    Key,
}

/// A file mode written as an octal string (`"0640"`, `"640"`, `"0o640"`).
pub fn parse_mode(text: &str, kind: ModeKind) -> Result<u32, String> {
    let trimmed = text.trim();
    let digits = trimmed.strip_prefix("0o").unwrap_or(trimmed);
    if digits.is_empty() || digits.len() > 4 || !digits.chars().all(|c| ('0'..='7').contains(&c)) {
        return Err("must be an octal mode string like \"0640\"".into());
    }
    let mode =
        u32::from_str_radix(digits, 8).map_err(|_| "must be an octal mode string like \"0640\"")?;
    if mode > 0o777 {
        return Err("must not set setuid, setgid or sticky bits (at most \"0777\")".into());
    }
    if mode & 0o400 == 0 {
        return Err("must let the owner read the file".into());
    }
    if kind == ModeKind::Key && mode & 0o007 != 0 {
        return Err("must not give others any access to the private key (last digit 0)".into());
    }
    Ok(mode)
}

/// `[a-z0-9_-]+`, at most 64 characters.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 64 {
        return Err("must be at most 64 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        return Err("may only hold lower-case letters, digits, `_` and `-`".into());
    }
    Ok(())
}

/// An `https://` URL with a host and no credentials; `http://` only when allowed.
pub fn parse_url(text: &str, allow_insecure_http: bool) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("is not a valid URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure_http => {}
        "http" => {
            return Err(
                "uses plain http: certificates and tokens would travel unencrypted (set `allow_insecure_http = true` for a test setup)"
                    .into(),
            );
        }
        other => return Err(format!("has scheme `{other}`; only https is supported")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password".into());
    }
    Ok(url)
}

/// The `proxy` key: `"none"` or `""` connect directly; otherwise an `http://` or
/// `https://` proxy URL, optionally with credentials (never repeated in a message).
pub fn parse_proxy(text: &str) -> Result<ProxySetting, String> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("none") {
        return Ok(ProxySetting::Direct);
    }
    let url = Url::parse(text).map_err(|e| format!("is not a valid proxy URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "has scheme `{}`; a proxy is http://host:port or https://host:port (or \"none\")",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err("must be only scheme, host and port (and credentials)".into());
    }
    Ok(ProxySetting::Url(url))
}

pub fn parse_protocol(text: &str) -> Result<Protocol, String> {
    match text {
        "compass" => Ok(Protocol::Compass),
        "kyma-rest" => Ok(Protocol::KymaRest),
        _ => Err("must be \"compass\" or \"kyma-rest\"".into()),
    }
}

pub fn parse_key_algorithm(text: &str) -> Result<KeyAlgorithm, String> {
    match text {
        "rsa2048" => Ok(KeyAlgorithm::Rsa2048),
        "rsa3072" => Ok(KeyAlgorithm::Rsa3072),
        "rsa4096" => Ok(KeyAlgorithm::Rsa4096),
        "ecdsa-p256" => Ok(KeyAlgorithm::EcdsaP256),
        _ => Err("must be one of \"rsa2048\", \"rsa3072\", \"rsa4096\", \"ecdsa-p256\"".into()),
    }
}

pub fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("must be \"text\" or \"json\"".into()),
    }
}

/// A tracing filter such as `info` or `kyma_certd=debug,warn`.
pub fn check_log_level(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("must not be empty (use \"info\")".into());
    }
    tracing_subscriber::EnvFilter::try_new(text)
        .map(|_| ())
        .map_err(|e| format!("is not a valid log filter ({e})"))
}

/// `""` disables the endpoint; otherwise an IP address and port.
pub fn parse_listen(text: &str) -> Result<Option<SocketAddr>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    text.trim().parse().map(Some).map_err(|_| {
        "must be an IP address and port like \"127.0.0.1:9467\", or \"\" to disable".into()
    })
}

/// `HUP`, `SIGHUP` or `hup`; only the signals a reload hook plausibly needs.
pub fn parse_signal(text: &str) -> Result<HookSignal, String> {
    let upper = text.trim().to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    match name {
        "HUP" => Ok(HookSignal::Hup),
        "USR1" => Ok(HookSignal::Usr1),
        "USR2" => Ok(HookSignal::Usr2),
        "TERM" => Ok(HookSignal::Term),
        "INT" => Ok(HookSignal::Int),
        "QUIT" => Ok(HookSignal::Quit),
        _ => Err("must be one of HUP, USR1, USR2, TERM, INT, QUIT".into()),
    }
}

/// A systemd unit name: no whitespace, slashes or control characters.
pub fn check_unit_name(text: &str) -> Result<(), String> {
    let ok = !text.is_empty()
        && text.len() <= 256
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.' | '\\' | '@'));
    if ok {
        Ok(())
    } else {
        Err("is not a valid systemd unit name".into())
    }
}

/// A user or group as written: a name or a numeric id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdSpec {
    Id(i64),
    Name(String),
}

impl<'de> serde::Deserialize<'de> for IdSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = IdSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a user or group name, or a numeric id")
            }
            fn visit_i64<E>(self, v: i64) -> Result<IdSpec, E> {
                Ok(IdSpec::Id(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<IdSpec, E> {
                i64::try_from(v)
                    .map(IdSpec::Id)
                    .map_err(|_| E::custom("id is too large"))
            }
            fn visit_str<E>(self, v: &str) -> Result<IdSpec, E> {
                Ok(IdSpec::Name(v.to_owned()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Whether the owner or the group is being resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    User,
    Group,
}

/// Resolves a name or numeric id. `Ok(None)` when `lookup` is false and the name would
/// need the user database.
pub fn resolve_id(spec: &IdSpec, kind: IdKind, lookup: bool) -> Result<Option<u32>, String> {
    let numeric = match spec {
        IdSpec::Id(id) => Some(*id),
        IdSpec::Name(name) if !name.is_empty() && name.chars().all(|c| c.is_ascii_digit()) => Some(
            name.parse::<i64>()
                .map_err(|_| "id is too large".to_string())?,
        ),
        IdSpec::Name(_) => None,
    };
    if let Some(id) = numeric {
        return u32::try_from(id)
            .ok()
            .filter(|id| *id != u32::MAX)
            .map(Some)
            .ok_or_else(|| "must be a valid numeric id".to_string());
    }
    let IdSpec::Name(name) = spec else {
        return Ok(None);
    };
    if name.trim().is_empty() || name.contains('\0') {
        return Err("must be a user or group name, or a numeric id".into());
    }
    if !lookup {
        return Ok(None);
    }
    let found = match kind {
        IdKind::User => nix::unistd::User::from_name(name).map(|u| u.map(|u| u.uid.as_raw())),
        IdKind::Group => nix::unistd::Group::from_name(name).map(|g| g.map(|g| g.gid.as_raw())),
    };
    let what = match kind {
        IdKind::User => "user",
        IdKind::Group => "group",
    };
    match found {
        Ok(Some(id)) => Ok(Some(id)),
        Ok(None) => Err(format!("no {what} named `{name}` on this system")),
        Err(e) => Err(format!("looking up {what} `{name}` failed ({e})")),
    }
}

#[cfg(test)]
#[path = "values_tests.rs"]
mod tests;
