//! `enroll`: the first certificate, with a one-time token.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::exit::{CommandError, CommandResult};
use crate::flow::{self, EnrollRequest};
use crate::pki::secret::Token;
use crate::store::Store;

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
        match flow::usable_current(cert, &store) {
            Ok(current) => {
                println!(
                    "{} is enrolled and valid until {}; the token was not used",
                    cert.name,
                    crate::pki::verify::timestamp(current.info.not_after)
                );
                return Ok(());
            }
            Err(e) if e.needs_reenrollment() => {}
            Err(e) => return Err(super::flow_error(&cert.name, e)),
        }
    }
    let token = match (args.token, &args.token_file) {
        (Some(token), _) => Some(Token::new(token)),
        (None, Some(file)) => Some(read_token(file).map_err(CommandError::usage)?),
        (None, None) => None,
    };
    if token.as_ref().is_some_and(Token::is_empty) {
        return Err(CommandError::usage(anyhow::anyhow!(
            "the one-time token is empty"
        )));
    }
    let span = tracing::info_span!("enroll", cert = %cert.name, protocol = cert.protocol.as_str());
    let _guard = span.enter();
    let info = flow::enroll(
        cert,
        &store,
        EnrollRequest {
            url: args.url,
            token,
        },
    )
    .await
    .map_err(|e| super::flow_error(&cert.name, e))?;
    println!(
        "enrolled {}: {} (sha256 {}), valid until {}",
        cert.name,
        info.subject,
        info.fingerprint_sha256,
        crate::pki::verify::timestamp(info.not_after)
    );
    Ok(())
}

fn read_token(file: &Path) -> anyhow::Result<Token> {
    let mut text = String::new();
    if file == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the token from standard input")?;
    } else {
        text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the token file {}", file.display()))?;
    }
    let token = Token::new(text.as_str());
    zeroize::Zeroize::zeroize(&mut text);
    Ok(token)
}
