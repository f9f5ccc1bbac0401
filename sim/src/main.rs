//! `kyma-connector-sim`: parses the command line, starts the simulator, prints where to reach
//! it and a fresh token per protocol, and serves until Ctrl-C or SIGTERM. Everything else is in
//! the library.
#![forbid(unsafe_code)]

use std::io::IsTerminal as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use kyma_connector_sim::{SimConfig, Simulator};

/// A local stand-in for the Kyma connectors (Compass GraphQL and Kyma REST), with its own
/// CAs, one-time tokens, revocation and fault injection. Loopback only.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Lifetime of issued client certificates, e.g. 60s, 30m, 90d.
    #[arg(long, default_value = "90d", value_parser = humantime::parse_duration)]
    validity: Duration,
    /// Client id (Compass) / application name (Kyma REST): the CN of issued certificates.
    #[arg(long, default_value = "my-app")]
    app: String,
    /// How long a one-time token stays valid.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    token_ttl: Duration,
    /// Also sign ECDSA P-256 CSRs (the real connectors sign RSA only).
    #[arg(long)]
    accept_ecdsa: bool,
    /// Where to write server-ca.pem and client-ca.pem [default: a temporary folder].
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Port of the token-secured HTTPS listener [default: any free port].
    #[arg(long)]
    token_port: Option<u16>,
    /// Port of the mTLS HTTPS listener [default: any free port].
    #[arg(long)]
    mtls_port: Option<u16>,
    /// Port of the plain-HTTP admin API [default: any free port].
    #[arg(long)]
    admin_port: Option<u16>,
}

fn loopback(port: Option<u16>) -> Option<SocketAddr> {
    port.map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let config = SimConfig {
            validity: cli.validity,
            token_ttl: cli.token_ttl,
            app: cli.app,
            accept_ecdsa: cli.accept_ecdsa,
            token_addr: loopback(cli.token_port),
            mtls_addr: loopback(cli.mtls_port),
            admin_addr: loopback(cli.admin_port),
            out_dir: cli.out_dir,
        };
        let sim = Simulator::start(config)
            .await
            .context("cannot start the connector simulator")?;
        print_banner(&sim);
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("cannot listen for SIGTERM")?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted.context("cannot wait for Ctrl-C")?,
            _ = terminate.recv() => {}
        }
        sim.shutdown().await;
        Ok(())
    })
}

/// `90d`, `36h`, `60s`: the largest unit that divides the duration (humantime would print
/// 90 days as months).
fn whole_unit(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 3_600 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn print_banner(sim: &Simulator) {
    let compass_token = sim.mint_compass_token();
    let (_, rest_url) = sim.mint_rest_token();
    println!(
        "kyma-connector-sim: app {:?}, certificates valid for {}",
        sim.app(),
        whole_unit(sim.validity())
    );
    println!(
        "server CA (trust it):    {}",
        sim.server_ca_path().display()
    );
    println!();
    println!("Compass token URL:       {}", sim.compass_token_url());
    println!("Compass token:           {compass_token}");
    println!("Compass mTLS URL:        {}", sim.compass_mtls_url());
    println!();
    println!("Kyma REST config URL:    {rest_url}");
    println!(
        "Kyma REST info (mTLS):   {}",
        sim.rest_management_info_url()
    );
    println!();
    println!(
        "admin API:               {} (POST tokens/compass or tokens/kyma-rest for more tokens)",
        sim.admin_url()
    );
    println!("Ctrl-C stops.");
}
