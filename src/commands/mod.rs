//! One function per subcommand: turns the parsed command line into calls to the
//! library and the library's results into output and an exit code.

mod access;
mod check;
mod check_config;
mod enroll;
mod renew;
mod revoke;
mod status;

pub use check::check;
pub use check_config::check_config;
pub use enroll::EnrollArgs;
pub use enroll::enroll;
pub use renew::renew;
pub use revoke::revoke;
pub use status::status;

use std::path::Path;

use crate::config::{self, CertificateConfig, Config};
use crate::exit::{CommandError, CommandResult};
use crate::flow::FlowError;
use crate::protocol::Verdict;

/// Loads the configuration with every check; a bad one is a usage error (exit 2). A file
/// this user may not read says which permission is missing.
pub fn load_config(path: &Path) -> CommandResult<Config> {
    config::load(path).map_err(|e| match &e {
        config::ConfigError::Read { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            let said = crate::errors::error_chain(&e);
            CommandError::usage(anyhow::anyhow!("{said}; {}", access::hint(path)))
        }
        _ => CommandError::usage(e),
    })
}

/// The named certificate, or a usage error listing the known names.
pub fn certificate<'a>(config: &'a Config, name: &str) -> CommandResult<&'a CertificateConfig> {
    config
        .certificates
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| {
            let known: Vec<&str> = config
                .certificates
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            CommandError::usage(anyhow::anyhow!(
                "no [[certificate]] named {name:?} in {} (known: {})",
                config.path.display(),
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })
}

/// The certificates a `--name` selects: one, or all when absent.
pub fn selected<'a>(
    config: &'a Config,
    name: Option<&str>,
) -> CommandResult<Vec<&'a CertificateConfig>> {
    match name {
        Some(name) => Ok(vec![certificate(config, name)?]),
        None => Ok(config.certificates.iter().collect()),
    }
}

/// Maps a flow failure to its exit code, prefixed with the certificate's name; a refused
/// read says which permission is missing.
pub fn flow_error(name: &str, error: FlowError) -> CommandError {
    if let FlowError::Store(crate::store::StoreError::Io { path, .. }) = &error
        && access::denied(&error)
    {
        let said = crate::errors::error_chain(&error);
        return CommandError::failed(anyhow::anyhow!(
            "certificate {name:?}: {said}; {}",
            access::hint(path)
        ));
    }
    let reenroll = error.needs_reenrollment();
    let usage = matches!(error, FlowError::TokenForm(_));
    let context = match error.verdict() {
        // Said up front: the operator's next step differs from a revocation's.
        Verdict::Refused(refusal) => format!(
            "certificate {name:?}: renewal refused ({refusal}), not revoked; the certificate stays valid, retry once what refused it is fixed"
        ),
        // The connector's words for "revoked" rarely say so (Compass: "Client Id not
        // provided"): name what they mean and the way out.
        _ if error.token_refused() => format!(
            "certificate {name:?}: the connector refused the one-time token (used, expired, unknown, or for another connector); get a new token"
        ),
        Verdict::Revoked => format!(
            "certificate {name:?}: revoked (the connector does not recognise it); enroll again with a new one-time token (kyma-certd enroll, or token_file)"
        ),
        _ => format!("certificate {name:?}"),
    };
    let error = anyhow::Error::new(error).context(context);
    if usage {
        CommandError::usage(error)
    } else if reenroll {
        CommandError::reenroll(error)
    } else {
        CommandError::failed(error)
    }
}
