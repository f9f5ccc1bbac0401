//! `check-config`: validate and print the resolved configuration.

use std::path::Path;

use crate::exit::CommandResult;

pub fn check_config(path: &Path) -> CommandResult {
    let config = super::load_config(path)?;
    for cert in &config.certificates {
        if cert.allow_insecure_http {
            tracing::warn!(name = %cert.name, "allow_insecure_http is set: plain http:// connector URLs are accepted");
        }
    }
    print!("{}", config.render_resolved());
    Ok(())
}
