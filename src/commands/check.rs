//! `check`: would a renewal work now? Validates the configuration and each certificate's
//! files (present, modes and owners as configured, key and certificate a pair, chain and
//! CA consistent), then makes one side-effect-free mTLS call with the current certificate
//! (REST `management/info`; Compass `configuration`, which makes the Director mint a
//! one-time token that expires unused) and reports what a renewal would meet: accepted,
//! refused by something in front of the connector, revoked, clock skew, or a connector
//! whose TLS certificate no longer chains to the configured trust. Writes nothing: no
//! key, no renewal, no `state.json`. Exit codes as `status`.

use std::io::IsTerminal;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::config::{CertificateConfig, Layout, Protocol};
use crate::exit::{CommandError, CommandResult, Exit};
use crate::flow;
use crate::pki::verify::timestamp;
use crate::protocol::{Connector, ProtocolError, Refusal, Verdict};
use crate::store::{JOURNAL_FILE, Store};

/// A difference between the connector's clock (its `Date` header) and this host's
/// beyond which `check` reports clock skew.
pub const CLOCK_SKEW_LIMIT: Duration = Duration::from_secs(60);

/// How far in the future a certificate's notBefore may be by this host's clock before
/// the host's clock is suspect (the connectors stamp "now" as notBefore).
const NOT_BEFORE_SLACK: Duration = Duration::from_secs(300);

/// What a renewal would meet, for one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The connector accepted the certificate: a renewal would go ahead.
    Accepted,
    /// Refused without the connector's words (a gateway, a proxy, a TLS terminator).
    Refused,
    /// The connector said the certificate is revoked.
    Revoked,
    /// The clocks of this host and the connector disagree.
    ClockSkew,
    /// The connector's TLS certificate does not chain to `server_ca_file` (or the
    /// system roots): its CA changed, or the configured one is wrong.
    ServerCaChanged,
    /// The call failed for another reason (network, timeout, the connector's trouble).
    Failed,
    /// A problem with the files: the call was not made.
    Files,
    /// No certificate: enroll first.
    Missing,
    /// The certificate expired: enroll again.
    Expired,
}

impl Outcome {
    fn exit(self) -> Option<Exit> {
        match self {
            Outcome::Accepted => None,
            Outcome::Revoked | Outcome::Missing | Outcome::Expired => {
                Some(Exit::ReenrollmentNeeded)
            }
            _ => Some(Exit::Failed),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Refused => "refused",
            Outcome::Revoked => "revoked",
            Outcome::ClockSkew => "clock skew",
            Outcome::ServerCaChanged => "server CA changed",
            Outcome::Failed => "failed",
            Outcome::Files => "file problems",
            Outcome::Missing => "missing",
            Outcome::Expired => "expired",
        }
    }
}

/// One certificate's check, as printed in JSON.
#[derive(Debug, Serialize)]
pub struct CertificateCheck {
    pub name: String,
    pub protocol: &'static str,
    pub outcome: Outcome,
    /// One sentence on the outcome: what was asked, what came back.
    pub detail: String,
    pub fingerprint_sha256: Option<String>,
    pub not_after: Option<String>,
    /// Problems with the files (modes, owners, pair, chain); empty when they are fine.
    pub file_problems: Vec<String>,
    /// The URL called over mTLS (without its query).
    pub url: Option<String>,
    /// The connector's clock minus this host's, from its `Date` header.
    pub server_clock_ahead_seconds: Option<i64>,
    /// Notes that do not change the outcome (the Compass token, a clock near the limit).
    pub notes: Vec<String>,
}

pub async fn check(config_path: &Path, name: Option<&str>, json: bool) -> CommandResult {
    let config = super::load_config(config_path)?;
    let mut checks = Vec::new();
    for cert in super::selected(&config, name)? {
        let span =
            tracing::info_span!("check", cert = %cert.name, protocol = cert.protocol.as_str());
        let _guard = span.enter();
        checks.push(check_one(cert).await);
    }
    if json {
        let text = serde_json::to_string_pretty(&checks).map_err(CommandError::failed)?;
        println!("{text}");
    } else {
        print!("{}", report(&checks, std::io::stdout().is_terminal()));
    }
    let worst = checks
        .iter()
        .filter_map(|c| c.outcome.exit().map(|exit| (exit, c)))
        .reduce(|a, b| if b.0.is_worse_than(a.0) { b } else { a });
    match worst {
        None => Ok(()),
        Some((exit, _)) => {
            let failed: Vec<String> = checks
                .iter()
                .filter(|c| c.outcome != Outcome::Accepted)
                .map(|c| format!("{} ({})", c.name, c.outcome.as_str()))
                .collect();
            Err(CommandError {
                exit,
                error: anyhow::anyhow!("a renewal would not succeed for {}", failed.join(", ")),
            })
        }
    }
}

async fn check_one(cert: &CertificateConfig) -> CertificateCheck {
    let mut result = CertificateCheck {
        name: cert.name.clone(),
        protocol: cert.protocol.as_str(),
        outcome: Outcome::Accepted,
        detail: String::new(),
        fingerprint_sha256: None,
        not_after: None,
        file_problems: Vec::new(),
        url: None,
        server_clock_ahead_seconds: None,
        notes: Vec::new(),
    };
    let store = Store::new(cert);
    // `load_current` would complete an interrupted files-layout swap: that is a write.
    if matches!(cert.layout, Layout::Files(_)) && cert.dir.join(JOURNAL_FILE).exists() {
        result.outcome = Outcome::Files;
        result.detail = format!(
            "an interrupted swap is pending ({}); the daemon or `renew` completes it",
            cert.dir.join(JOURNAL_FILE).display()
        );
        return result;
    }
    let current = match store.load_current() {
        Ok(Some(current)) => current,
        Ok(None) => {
            result.outcome = Outcome::Missing;
            result.detail = "no certificate: enroll it with a one-time token".into();
            return result;
        }
        Err(e) => {
            result.outcome = Outcome::Files;
            result.detail = crate::errors::error_chain(&e);
            return result;
        }
    };
    let info = &current.info;
    result.fingerprint_sha256 = Some(info.fingerprint_sha256.clone());
    result.not_after = Some(timestamp(info.not_after));
    result.file_problems = file_problems(cert, &store, &current);
    let now = SystemTime::now();
    if info.not_after <= now {
        result.outcome = Outcome::Expired;
        result.detail = format!(
            "expired at {}: a renewal is impossible, enroll again",
            timestamp(info.not_after)
        );
        return result;
    }
    if !result.file_problems.is_empty() {
        result.outcome = Outcome::Files;
        result.detail = "the files need fixing before a renewal can be trusted".into();
        return result;
    }
    if info.not_before > now + NOT_BEFORE_SLACK {
        result.notes.push(format!(
            "notBefore {} is in the future by this host's clock: this host's clock may be behind",
            timestamp(info.not_before)
        ));
    }
    let url = match flow::renewal_url(cert, &current, &store) {
        Ok(url) => url,
        Err(e) => {
            result.outcome = Outcome::Failed;
            result.detail = crate::errors::error_chain(&e);
            return result;
        }
    };
    result.url = Some(crate::protocol::RedactedUrl::new(&url).to_string());
    if cert.protocol == Protocol::Compass {
        result.notes.push(
            "asked Compass for its configuration over mTLS; the connector mints a one-time token for each such call, which expires unused"
                .into(),
        );
    }
    let connector = match flow::connector_for(cert) {
        Ok(connector) => connector,
        Err(e) => {
            result.outcome = Outcome::Failed;
            result.detail = crate::errors::error_chain(&e);
            return result;
        }
    };
    let answer = connector
        .begin_renew(&url, &flow::identity_of(&current))
        .await;
    let skew = connector.last_server_date().map(|d| d.skew_seconds());
    result.server_clock_ahead_seconds = skew;
    let skewed = skew.filter(|s| s.unsigned_abs() > CLOCK_SKEW_LIMIT.as_secs());
    (result.outcome, result.detail) = match answer {
        Ok(_) => (
            Outcome::Accepted,
            "the connector accepted the certificate: a renewal would go ahead".into(),
        ),
        Err(e) => classify(&e, info.not_after),
    };
    if let Some(skew) = skewed {
        let clocks = format!(
            "the connector's clock is {} s {} this host's (its Date header)",
            skew.unsigned_abs(),
            if skew > 0 { "ahead of" } else { "behind" }
        );
        if result.outcome == Outcome::Accepted {
            // Accepted today; a certificate issued "now" by the connector may not be
            // valid yet here, or expire early there.
            result.outcome = Outcome::ClockSkew;
            result.detail = format!("{clocks}: fix time synchronisation on both sides");
        } else {
            result.notes.push(clocks);
        }
    }
    result
}

/// What a failed call says about a renewal.
fn classify(error: &ProtocolError, not_after: SystemTime) -> (Outcome, String) {
    let chain = crate::errors::error_chain(error);
    match error.verdict() {
        Verdict::Revoked => (
            Outcome::Revoked,
            format!("the connector says the certificate is revoked: {chain}"),
        ),
        Verdict::Refused(Refusal::TlsAlert { alert })
            if alert == "certificate_expired" && not_after > SystemTime::now() =>
        {
            (
                Outcome::ClockSkew,
                format!(
                    "refused as expired although valid until {} by this host's clock: probable clock skew ({chain})",
                    timestamp(not_after)
                ),
            )
        }
        Verdict::Refused(refusal) => (
            Outcome::Refused,
            format!(
                "refused ({refusal}) by something in front of the connector or the connector; the certificate stays valid: {chain}"
            ),
        ),
        Verdict::Inconclusive => match error {
            ProtocolError::UntrustedServer { .. } => (
                Outcome::ServerCaChanged,
                format!(
                    "the connector's TLS certificate does not chain to the configured trust (server_ca_file, else the system roots): its CA changed, or server_ca_file is wrong: {chain}"
                ),
            ),
            _ => (Outcome::Failed, chain),
        },
    }
}

/// What is wrong with the files on disk, each as one sentence.
fn file_problems(
    cert: &CertificateConfig,
    store: &Store,
    current: &crate::store::CurrentMaterial,
) -> Vec<String> {
    let mut problems = Vec::new();
    let paths = store.consumer_paths();
    for (path, mode) in [
        (&paths.key, cert.key_mode),
        (&paths.cert, cert.cert_mode),
        (&paths.chain, cert.cert_mode),
        (&paths.ca, cert.cert_mode),
    ] {
        match std::fs::metadata(path) {
            Ok(meta) => {
                let actual = meta.mode() & 0o7777;
                if actual != mode {
                    problems.push(format!(
                        "{} has mode {actual:04o}, configured {mode:04o}",
                        path.display()
                    ));
                }
                if let Some(owner) = cert.owner
                    && meta.uid() != owner
                {
                    problems.push(format!(
                        "{} is owned by uid {}, configured {owner}",
                        path.display(),
                        meta.uid()
                    ));
                }
                if let Some(group) = cert.group
                    && meta.gid() != group
                {
                    problems.push(format!(
                        "{} has group gid {}, configured {group}",
                        path.display(),
                        meta.gid()
                    ));
                }
            }
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    let chain_leaf = crate::pki::x509::pem_certificates(&current.chain_pem)
        .ok()
        .and_then(|c| c.into_iter().next());
    if chain_leaf.as_deref() != Some(current.info.der.as_slice()) {
        problems.push(format!(
            "{} does not start with the certificate of {}",
            paths.chain.display(),
            paths.cert.display()
        ));
    }
    if let Err(e) =
        crate::pki::verify::chains_to(&current.cert_pem, &current.chain_pem, &current.ca_pem)
    {
        problems.push(format!(
            "{} does not chain to {}: {}",
            paths.cert.display(),
            paths.ca.display(),
            crate::errors::error_chain(&e)
        ));
    }
    problems
}

/// The text report: one block per certificate, then nothing else (the exit code and
/// its message say the rest).
fn report(checks: &[CertificateCheck], colour: bool) -> String {
    let paint = |outcome: Outcome| -> String {
        let text = outcome.as_str();
        if !colour {
            return text.to_owned();
        }
        let code = match outcome.exit() {
            None => "32",
            Some(Exit::ReenrollmentNeeded) => "31;1",
            _ => "33",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    };
    let mut out = String::new();
    for c in checks {
        out.push_str(&format!(
            "{} ({}): {}\n",
            c.name,
            c.protocol,
            paint(c.outcome)
        ));
        let mut line = |key: &str, value: &str| out.push_str(&format!("  {key:<13} {value}\n"));
        line("detail", &c.detail);
        if let Some(fingerprint) = &c.fingerprint_sha256 {
            line("sha256", fingerprint);
        }
        if let Some(not_after) = &c.not_after {
            line("not after", not_after);
        }
        if c.file_problems.is_empty() && c.fingerprint_sha256.is_some() {
            line(
                "files",
                "ok: modes and owners as configured, key and certificate a pair, chain and CA consistent",
            );
        }
        for problem in &c.file_problems {
            line("file problem", problem);
        }
        if let Some(url) = &c.url {
            line("called", url);
        }
        if let Some(skew) = c.server_clock_ahead_seconds {
            line(
                "clock",
                &format!("the connector's Date header is {skew:+} s from this host's clock"),
            );
        }
        for note in &c.notes {
            line("note", note);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::RedactedUrl;

    fn url() -> RedactedUrl {
        RedactedUrl::new(&url::Url::parse("https://connector.example/graphql").unwrap())
    }

    #[test]
    fn each_failure_names_what_a_renewal_would_meet() {
        let later = SystemTime::now() + Duration::from_secs(3600);
        let revoked = ProtocolError::Status {
            url: url(),
            status: 403,
            message: Some("Certificate has been revoked.".into()),
            mtls: true,
            from_connector: true,
        };
        assert_eq!(classify(&revoked, later).0, Outcome::Revoked);
        let gateway = ProtocolError::Status {
            url: url(),
            status: 403,
            message: Some("RBAC: access denied".into()),
            mtls: true,
            from_connector: false,
        };
        assert_eq!(classify(&gateway, later).0, Outcome::Refused);
        let expired = ProtocolError::HandshakeRefused {
            url: url(),
            alert: rustls::AlertDescription::CertificateExpired,
        };
        assert_eq!(classify(&expired, later).0, Outcome::ClockSkew);
        let untrusted = ProtocolError::UntrustedServer {
            url: url(),
            detail: "unknown issuer".into(),
        };
        assert_eq!(classify(&untrusted, later).0, Outcome::ServerCaChanged);
        let down = ProtocolError::Network {
            url: url(),
            detail: "connection refused".into(),
        };
        assert_eq!(classify(&down, later).0, Outcome::Failed);
    }

    #[test]
    fn exit_codes_follow_status() {
        assert_eq!(Outcome::Accepted.exit(), None);
        assert_eq!(Outcome::Revoked.exit(), Some(Exit::ReenrollmentNeeded));
        assert_eq!(Outcome::Expired.exit(), Some(Exit::ReenrollmentNeeded));
        assert_eq!(Outcome::Refused.exit(), Some(Exit::Failed));
        assert_eq!(Outcome::ServerCaChanged.exit(), Some(Exit::Failed));
        assert_eq!(Outcome::ClockSkew.exit(), Some(Exit::Failed));
    }
}
