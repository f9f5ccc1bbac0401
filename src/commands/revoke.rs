//! `revoke`: after confirmation, revoke every generation still valid (the current one and
//! the previous one kept for rollback), remove them with their keys, and print one line
//! per generation.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use crate::exit::{CommandError, CommandResult};
use crate::flow::{self, GenerationRevocation, RevocationOutcome};
use crate::pki::verify::timestamp;
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
    store
        .recover()
        .map_err(|e| super::flow_error(&cert.name, e.into()))?;
    let results = flow::revoke(cert, &store)
        .await
        .map_err(|e| super::flow_error(&cert.name, e))?;
    let mut worst: Option<CommandError> = None;
    for result in results {
        crate::logging::outcome(&cert.name, format_args!("{}", line(&cert.name, &result)));
        let failure = match result.outcome {
            RevocationOutcome::Failed(e) => Some(super::flow_error(&cert.name, e)),
            _ => result.removal_error.map(|e| {
                CommandError::failed(anyhow::Error::new(e).context(format!(
                    "certificate {:?}: revoked, but its files could not be removed",
                    cert.name
                )))
            }),
        };
        if let Some(failure) = failure
            && worst
                .as_ref()
                .is_none_or(|w| failure.exit.is_worse_than(w.exit))
        {
            worst = Some(failure);
        }
    }
    if let Some(worst) = worst {
        return Err(worst);
    }
    crate::logging::outcome(
        &cert.name,
        format_args!(
            "{}: no key of it is left on disk; enroll again with a new one-time token",
            cert.name
        ),
    );
    Ok(())
}

/// One generation's line: what was done, and whether its key is gone.
fn line(name: &str, result: &GenerationRevocation) -> String {
    let which = format!(
        "{} generation{} (sha256 {}, valid until {})",
        result.role.as_str(),
        result
            .generation
            .as_deref()
            .map(|g| format!(" {g}"))
            .unwrap_or_default(),
        result.info.fingerprint_sha256,
        timestamp(result.info.not_after)
    );
    let removed = if result.removed() {
        "its files and key removed"
    } else {
        "its files could not be removed"
    };
    match &result.outcome {
        RevocationOutcome::Revoked => format!("{name}: revoked the {which}; {removed}"),
        RevocationOutcome::AlreadyRevoked => {
            format!("{name}: the {which} was revoked already; {removed}")
        }
        RevocationOutcome::Expired => format!("{name}: the {which} expired; {removed}"),
        RevocationOutcome::Failed(_) => format!(
            "{name}: could not revoke the {which}; it stays on disk with its key: run revoke again"
        ),
    }
}

fn confirm(name: &str) -> CommandResult<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CommandError::usage(anyhow::anyhow!(
            "refusing to revoke {name:?} without confirmation: pass --yes"
        )));
    }
    eprint!(
        "Revoke every valid certificate of {name:?} (the current one and the previous one kept for rollback) and remove them with their keys? It cannot be renewed afterwards; only a new one-time token brings it back. Type yes: "
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(CommandError::failed)?;
    Ok(answer.trim() == "yes")
}
