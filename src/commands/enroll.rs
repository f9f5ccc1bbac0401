//! `enroll`: the first certificate, with a one-time token.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use zeroize::Zeroizing;

use crate::exit::{CommandError, CommandResult};
use crate::flow::policy::OnDisk;
use crate::flow::{self, EnrollRequest};
use crate::store::Store;
use crate::token::{self, OneTimeToken};

pub struct EnrollArgs {
    pub name: String,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub url: Option<String>,
    pub if_needed: bool,
}

pub async fn enroll(config_path: &Path, args: EnrollArgs) -> CommandResult {
    let config = super::load_config(config_path)?;
    let cert = super::certificate(&config, &args.name)?;
    let store = Store::new(cert);
    store
        .recover()
        .map_err(|e| super::flow_error(&cert.name, e.into()))?;
    if args.if_needed {
        // The policy's answer, as the daemon gives it for `token_file`.
        match flow::look_and_decide(cert, &store, std::time::SystemTime::now()) {
            (OnDisk::Unreadable { why, .. }, _) => {
                return Err(CommandError::failed(anyhow::anyhow!(
                    "{}: cannot read the certificate files: {why}; the token was not used",
                    cert.name
                )));
            }
            (OnDisk::Certificate(seen), decision) if !decision.wants_token() => {
                crate::logging::outcome(
                    &cert.name,
                    format_args!(
                        "{} is enrolled and valid until {}; the token was not used",
                        cert.name,
                        crate::pki::verify::timestamp(seen.not_after)
                    ),
                );
                return Ok(());
            }
            _ => {}
        }
    }
    let token = match (args.token.map(Zeroizing::new), &args.token_file) {
        (Some(text), _) => Some(OneTimeToken::parse(&text).map_err(CommandError::usage)?),
        (None, Some(file)) => Some(read_token(file).map_err(CommandError::usage)?),
        (None, None) => None,
    };
    let span = tracing::info_span!("enroll", cert = %cert.name, protocol = cert.protocol.as_str());
    let _guard = span.enter();
    let info = flow::enroll(
        cert,
        EnrollRequest {
            url: args.url,
            token,
        },
    )
    .await
    .map_err(|e| super::flow_error(&cert.name, e))?;
    crate::logging::outcome(
        &cert.name,
        format_args!(
            "enrolled {}: {} (sha256 {}), valid until {}",
            cert.name,
            info.subject,
            info.fingerprint_sha256,
            crate::pki::verify::timestamp(info.not_after)
        ),
    );
    Ok(())
}

/// Reads a token in any form from `file` (`-`: standard input); the text is wiped after.
fn read_token(file: &Path) -> anyhow::Result<OneTimeToken> {
    if file != Path::new("-") {
        return Ok(token::read_token_file(file)?);
    }
    let mut text = Zeroizing::new(String::new());
    std::io::stdin()
        .take(token::MAX_TOKEN_FILE_BYTES)
        .read_to_string(&mut text)
        .context("cannot read the token from standard input")?;
    Ok(OneTimeToken::parse(&text)?)
}
