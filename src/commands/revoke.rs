//! `revoke`: revoke the current certificate, after confirmation.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use crate::exit::{CommandError, CommandResult};
use crate::flow;
use crate::store::Store;

pub async fn revoke(config_path: &Path, name: &str, yes: bool) -> CommandResult {
    let config = super::load_config(config_path)?;
    let cert = super::certificate(&config, name)?;
    if !yes && !confirm(name)? {
        return Err(CommandError::usage(anyhow::anyhow!(
            "not confirmed; nothing was revoked"
        )));
    }
    let store = Store::new(cert);
    let span = tracing::info_span!("revoke", cert = %cert.name, protocol = cert.protocol.as_str());
    let _guard = span.enter();
    let info = flow::revoke(cert, &store)
        .await
        .map_err(|e| super::flow_error(&cert.name, e))?;
    println!(
        "revoked {} (sha256 {}): enroll again with a new one-time token",
        cert.name, info.fingerprint_sha256
    );
    Ok(())
}

fn confirm(name: &str) -> CommandResult<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CommandError::usage(anyhow::anyhow!(
            "refusing to revoke {name:?} without confirmation: pass --yes"
        )));
    }
    eprint!(
        "Revoke the certificate {name:?}? It cannot be renewed afterwards; only a new one-time token brings it back. Type yes: "
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(CommandError::failed)?;
    Ok(answer.trim() == "yes")
}
