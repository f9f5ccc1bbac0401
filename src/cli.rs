//! The command line: every subcommand and flag of DESIGN.md section 2. Parsing only.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Keeps client certificates issued by Kyma connectors valid, without a person in the loop.
///
/// Enroll once with a one-time token; kyma-certd then renews over mutual TLS before
/// expiry, verifies what comes back, swaps the files atomically, notifies dependent
/// processes and reports through Prometheus metrics.
///
/// Per certificate, [[certificate.output]] tables add files to each generation (kind
/// "pem-bundle" with file and parts; kind "pkcs12" with file, password_file and an optional
/// truststore), linked as dir/<file>; proxy = "http://host:port" reaches the connector
/// through an HTTPS proxy (default: HTTPS_PROXY / NO_PROXY; "none": always direct); and
/// token_file = "/path" names a file the daemon watches while the certificate is missing,
/// expired or revoked: a one-time token that appears there (any form enroll accepts, a
/// Kubernetes Secret volume included) is used once to enroll, never while the certificate
/// is valid. Exit codes: 0 success, 1 failed, 2 usage or configuration, 3 re-enrollment
/// needed, 4 renewed but a dependent was not told (an on_renew hook failed; retried).
#[derive(Debug, Parser)]
#[command(name = "kyma-certd", version, propagate_version = true)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        env = "KYMA_CERTD_CONFIG",
        default_value = "/etc/kyma-certd/config.toml",
        value_name = "PATH"
    )]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (systemd Type=notify aware).
    ///
    /// SIGHUP reloads the configuration, SIGTERM/SIGINT stop cleanly, SIGUSR1 renews
    /// every certificate now.
    Run,

    /// Get the first certificate for a [[certificate]] with a one-time token.
    ///
    /// The token may be given in any form the Compass Director hands out: the raw token,
    /// the base64 rawEncoded blob, or the legacy connector URL
    /// (.../v1/applications/signingRequests/info?token=...); surrounding whitespace is
    /// ignored. compass: URL is the token-secured connector URL (default: the config's
    /// connector_url, then the blob's connectorURL); a legacy connector URL's token is used
    /// with that URL. kyma-rest: URL is the configuration URL (the TokenRequest's
    /// status.url, or the legacy connector URL), which may carry the token itself; a raw
    /// token or a blob needs --url. A form that does not fit the protocol is refused before
    /// any request, so the token stays usable.
    Enroll {
        /// The [[certificate]] name.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// The one-time token, raw, rawEncoded or legacy connector URL (prefer --token-file:
        /// a token on the command line can end up in shell history).
        // Tokens are base64url and may start with `-`: that is the value, not an option
        // (and clap's error would otherwise quote the start of the token).
        #[arg(
            long,
            value_name = "TOKEN",
            conflicts_with = "token_file",
            allow_hyphen_values = true
        )]
        token: Option<String>,
        /// Read the one-time token from a file; `-` reads standard input.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// The connector URL to enroll at (see above).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Only enroll when the certificate is missing, expired or revoked; otherwise
        /// exit 0 without using the token (for init containers and provisioning scripts).
        #[arg(long)]
        if_needed: bool,
    },

    /// Renew the certificates that are inside their renewal window, once.
    Renew {
        /// Only this certificate.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Renew even if not due yet.
        #[arg(long)]
        force: bool,
    },

    /// Revoke every certificate kept on disk that is still valid, and remove it with its key.
    ///
    /// The current generation and the previous one kept for rollback (and any older one
    /// not pruned yet) are each revoked over mutual TLS with their own certificate, then
    /// removed, every file overwritten before it is unlinked; one line per generation says
    /// what was done. A generation whose revocation failed stays, with its key: run
    /// revoke again. Afterwards the certificate is missing: the only way back is a new
    /// one-time token and `enroll`.
    Revoke {
        /// The [[certificate]] name.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },

    /// Show each certificate: subject, issuer, fingerprint, validity, next renewal, state.
    ///
    /// Reads only local files; works without network.
    Status {
        /// Only this certificate.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },

    /// Parse and validate the configuration and print the resolved values.
    CheckConfig,

    /// Check, without renewing, that a renewal would work now.
    ///
    /// Per certificate: the files (present, modes and owners as configured, key and
    /// certificate a pair, chain and CA consistent), then one mTLS call with the current
    /// certificate that changes nothing (kyma-rest: management/info; compass: the
    /// configuration query, for which the connector mints a one-time token that expires
    /// unused: the call is made once), and what a renewal would meet: accepted, refused by
    /// something in front of the connector, revoked, clock skew (the connector's Date
    /// header against this host's clock), or a connector whose TLS certificate no longer
    /// chains to server_ca_file. Writes nothing. Exit codes as status: 0 every renewal
    /// would be accepted, 1 one would fail, 3 one needs a new enrollment.
    Check {
        /// Only this certificate.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },

    /// Start a local connector simulator and the daemon against it, with short-lived certificates.
    ///
    /// Everything happens in a temporary folder on 127.0.0.1 and is removed on Ctrl-C.
    Demo {
        /// Lifetime of the simulator's certificates.
        #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = humantime::parse_duration)]
        validity: std::time::Duration,
        /// Protocol the demo certificate uses.
        #[arg(long, value_enum, default_value_t = DemoProtocol::Compass)]
        protocol: DemoProtocol,
        /// Stop after this long instead of waiting for Ctrl-C.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
        /// Show the daemon's full log (on standard error) instead of one line per event.
        #[arg(long, short)]
        verbose: bool,
    },

    /// Print a shell completion script to standard output.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print the man page (roff) to standard output.
    #[command(hide = true)]
    Manpage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoProtocol {
    Compass,
    KymaRest,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn token_and_token_file_are_mutually_exclusive() {
        let err = Cli::try_parse_from([
            "kyma-certd",
            "enroll",
            "--name",
            "a",
            "--token",
            "t",
            "--token-file",
            "-",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn a_token_may_start_with_a_hyphen() {
        let cli = Cli::try_parse_from(["kyma-certd", "enroll", "--name", "a", "--token", "-_x9Kq"])
            .expect("a token starting with '-' is a value");
        match cli.command {
            Command::Enroll { token, .. } => assert_eq!(token.as_deref(), Some("-_x9Kq")),
            other => panic!("parsed as {other:?}"),
        }
    }
}
