//! `renew`: one pass over the certificates that are due (all with `--force`).

use std::path::Path;
use std::time::SystemTime;

use crate::config::CertificateConfig;
use crate::exit::{CommandError, CommandResult};
use crate::flow;
use crate::notify;
use crate::pki::verify::timestamp;
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
        let store = Store::new(cert);
        if let Err(e) = store.recover() {
            keep_worst(&mut worst, super::flow_error(&cert.name, e.into()));
            continue;
        }
        if !force {
            match store.load_current() {
                Ok(Some(current)) => {
                    let due = current.info.renewal_due(cert.renew, cert.jitter);
                    if SystemTime::now() < due && current.info.not_after > SystemTime::now() {
                        crate::logging::outcome(
                            &cert.name,
                            format_args!(
                                "{}: not due until {} (use --force to renew now)",
                                cert.name,
                                timestamp(due)
                            ),
                        );
                        continue;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    keep_worst(&mut worst, super::flow_error(&cert.name, e.into()));
                    continue;
                }
            }
        }
        let started = std::time::Instant::now();
        let result = flow::renew(cert, &store).await;
        if let Err(e) = &result
            && e.is_superseded()
        {
            // Someone else (an enroll, a daemon, another `renew`) put a new certificate
            // in place meanwhile: what this command was for has happened.
            crate::logging::outcome(
                &cert.name,
                format_args!(
                    "{}: another process replaced the certificate meanwhile; keeping that one",
                    cert.name
                ),
            );
            continue;
        }
        store.record_attempt(flow::attempt(&result));
        match result {
            Ok(renewed) => crate::logging::outcome(
                &cert.name,
                format_args!(
                    "{}: renewed in {:.2}s, {} -> {}, valid until {}",
                    cert.name,
                    started.elapsed().as_secs_f64(),
                    short(&renewed.previous.fingerprint_sha256),
                    short(&renewed.info.fingerprint_sha256),
                    timestamp(renewed.info.not_after)
                ),
            ),
            Err(e) => keep_worst(&mut worst, super::flow_error(&cert.name, e)),
        }
    }
    for cert in super::selected(&config, name)? {
        if let Err(e) = tell_dependents(cert).await {
            keep_worst(&mut worst, e);
        }
    }
    match worst {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Runs the hooks that have not heard of `cert`'s current certificate; exit code 4 when
/// one of them failed (it stays pending for the daemon or the next `renew`).
async fn tell_dependents(cert: &CertificateConfig) -> Result<(), CommandError> {
    let store = Store::new(cert);
    let Ok(Some(current)) = store.load_current() else {
        return Ok(());
    };
    let round = notify::deliver(cert, &store.state(), &current.info, &store.consumer_paths()).await;
    if round.all_told() {
        return Ok(());
    }
    Err(CommandError::not_notified(anyhow::anyhow!(
        "{}: {} of {} on_renew hooks did not succeed and stay pending: {}",
        cert.name,
        round.left.hooks.len(),
        cert.on_renew.len(),
        round.left.last_error.unwrap_or_default()
    )))
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
