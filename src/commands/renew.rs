//! `renew`: one pass over the certificates, renewing those the policy says are due (all
//! with `--force`), then telling the dependents what they have not heard yet. Goes by
//! the same policy and ledger as the daemon: what one would do, the other does.

use std::path::Path;
use std::time::SystemTime;

use crate::config::CertificateConfig;
use crate::exit::{CommandError, CommandResult};
use crate::flow::ledger::{self, Fact};
use crate::flow::policy::{Decision, OnDisk};
use crate::flow::{self, FlowError, dependents};
use crate::pki::verify::timestamp;
use crate::report::CertState;
use crate::store::Store;

pub async fn renew(config_path: &Path, name: Option<&str>, force: bool) -> CommandResult {
    let config = super::load_config(config_path)?;
    let mut worst: Option<CommandError> = None;
    // Renew what is due, then tell the dependents of every certificate whatever they
    // have not heard yet: this renewal, or one whose hooks failed or were cut short.
    for cert in super::selected(&config, name)? {
        let span =
            tracing::info_span!("renew", cert = %cert.name, protocol = cert.protocol.as_str());
        let _guard = span.enter();
        if let Err(e) = renew_one(cert, force).await {
            keep_worst(&mut worst, e);
        }
    }
    for cert in super::selected(&config, name)? {
        if let Err(e) = tell_dependents(cert, force).await {
            keep_worst(&mut worst, e);
        }
    }
    match worst {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Renews one certificate if the policy (or `--force`) says so, and records the attempt.
async fn renew_one(cert: &CertificateConfig, force: bool) -> Result<(), CommandError> {
    let store = Store::new(cert);
    store
        .recover()
        .map_err(|e| super::flow_error(&cert.name, e.into()))?;
    let (on_disk, decision) = flow::look_and_decide(cert, &store, SystemTime::now());
    match &on_disk {
        OnDisk::Unreadable { why, .. } => {
            return Err(CommandError::failed(anyhow::anyhow!(
                "{}: cannot read the certificate files: {why}",
                cert.name
            )));
        }
        OnDisk::Missing(_) => {
            return Err(super::flow_error(
                &cert.name,
                FlowError::NotEnrolled {
                    dir: store
                        .consumer_paths()
                        .cert
                        .parent()
                        .map_or_else(|| cert.dir.clone(), ToOwned::to_owned),
                },
            ));
        }
        OnDisk::Certificate(seen) if decision.state == CertState::Expired => {
            return Err(super::flow_error(
                &cert.name,
                FlowError::Expired {
                    not_after: timestamp(seen.not_after),
                },
            ));
        }
        OnDisk::Certificate(_) => {}
    }
    let now = SystemTime::now();
    if !force && !decision.renew_due(now) {
        return not_due(cert, &decision);
    }
    let started = std::time::Instant::now();
    let attempt = flow::renew(cert, &store).await;
    if let Some(fact) = attempt.fact(SystemTime::now()) {
        record(&store, fact);
    }
    match attempt.result {
        Ok(renewed) => {
            crate::logging::outcome(
                &cert.name,
                format_args!(
                    "{}: renewed in {:.2}s, {} -> {}, valid until {}",
                    cert.name,
                    started.elapsed().as_secs_f64(),
                    short(&renewed.previous.fingerprint_sha256),
                    short(&renewed.info.fingerprint_sha256),
                    timestamp(renewed.info.not_after)
                ),
            );
            Ok(())
        }
        // Someone else (an enroll, a daemon, another `renew`) put a new certificate in
        // place meanwhile: what this command was for has happened.
        Err(e) if e.is_superseded() => {
            crate::logging::outcome(
                &cert.name,
                format_args!(
                    "{}: another process replaced the certificate meanwhile; keeping that one",
                    cert.name
                ),
            );
            Ok(())
        }
        Err(e) => Err(super::flow_error(&cert.name, e)),
    }
}

/// Says why nothing is attempted now, and when the policy would. A revoked certificate
/// needs a new enrollment (exit 3) even between its probes.
fn not_due(cert: &CertificateConfig, decision: &Decision) -> Result<(), CommandError> {
    let at = decision.renew_at.map(timestamp).unwrap_or_default();
    let why = match decision.state {
        CertState::Revoked => {
            return Err(CommandError::reenroll(anyhow::anyhow!(
                "{}: the certificate is revoked ({}); next probe at {at}; enroll again with a new one-time token (or use --force to probe now)",
                cert.name,
                decision.reason.as_deref().unwrap_or_default()
            )));
        }
        CertState::Refused => format!(
            "renewal refused ({}); retrying at {at}",
            decision.reason.as_deref().unwrap_or_default()
        ),
        CertState::Backoff => format!("backing off after failed attempts; retrying at {at}"),
        _ => format!("not due until {at}"),
    };
    crate::logging::outcome(
        &cert.name,
        format_args!("{}: {why} (use --force to renew now)", cert.name),
    );
    Ok(())
}

/// Runs the hooks that have not heard of `cert`'s current certificate, when the policy
/// says their round is due (or `--force`); exit code 4 when some stay pending.
async fn tell_dependents(cert: &CertificateConfig, force: bool) -> Result<(), CommandError> {
    let store = Store::new(cert);
    let (OnDisk::Certificate(seen), decision) =
        flow::look_and_decide(cert, &store, SystemTime::now())
    else {
        return Ok(());
    };
    let needs_enrollment = decision.needs_enrollment();
    let Some(hooks) = decision.hooks.filter(|_| !needs_enrollment) else {
        return Ok(());
    };
    let pending = hooks.keys.len();
    if !force && hooks.at > SystemTime::now() {
        return Err(CommandError::not_notified(anyhow::anyhow!(
            "{}: {pending} of {} on_renew hooks stay pending after failing ({}); next round at {} (use --force to run them now)",
            cert.name,
            cert.on_renew.len(),
            hooks.last_error.unwrap_or_default(),
            timestamp(hooks.at)
        )));
    }
    let round = dependents::tell(
        cert,
        &hooks.keys,
        &seen,
        &store.consumer_paths(),
        SystemTime::now,
    )
    .await;
    let failed = round.failed();
    let error = match &round.fact {
        Fact::HooksRound { error, .. } => error.clone(),
        _ => None,
    };
    record(&store, round.fact);
    if failed == 0 {
        return Ok(());
    }
    Err(CommandError::not_notified(anyhow::anyhow!(
        "{}: {failed} of {} on_renew hooks did not succeed and stay pending: {}",
        cert.name,
        cert.on_renew.len(),
        error.unwrap_or_default()
    )))
}

/// Writes a fact; a record that cannot be written is said, never fatal: the certificate
/// itself is what matters, and the daemon's next look finds what is on disk.
fn record(store: &Store, fact: Fact) {
    if let Err(e) = ledger::record(store, &[fact]) {
        tracing::warn!(error = %crate::errors::error_chain(&e), "cannot record in state.json");
    }
}

/// Keeps going over the other certificates; reports the most serious failure, and
/// logs the ones it does not return.
fn keep_worst(worst: &mut Option<CommandError>, error: CommandError) {
    let replace = match worst {
        None => true,
        Some(current) => error.exit.is_worse_than(current.exit),
    };
    if replace {
        if let Some(previous) = worst.replace(error) {
            report_error(&previous);
        }
    } else {
        report_error(&error);
    }
}

/// An error the command does not return (it returns a worse one): said on standard
/// error, or logged when the logs are JSON.
fn report_error(error: &CommandError) {
    if crate::logging::is_json() {
        tracing::error!("{error}");
    } else {
        eprintln!("error: {error}");
    }
}

fn short(fingerprint: &str) -> &str {
    &fingerprint[..fingerprint.len().min(16)]
}
