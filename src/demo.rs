//! `kyma-certd demo`: the built-in connector simulator and the daemon against it, with
//! short-lived certificates, in a temporary folder. Shows a new user what the daemon
//! does within a minute. Does nothing the daemon does not do in production. Stops, and
//! removes the folder, on Ctrl-C, SIGTERM or when its terminal closes (SIGHUP).

use std::time::Duration;

use crate::cli::DemoProtocol;
use crate::exit::{CommandError, CommandResult};

#[cfg(feature = "demo")]
mod narrate;

/// Prints a line of the demo's narration. After SIGHUP the terminal is gone: a failed
/// write must not panic (and abort) before the folder is removed.
#[cfg(feature = "demo")]
macro_rules! say {
    () => {
        say!("")
    };
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub struct DemoOptions {
    pub validity: Duration,
    pub protocol: DemoProtocol,
    /// Stop after this long instead of waiting for Ctrl-C.
    pub duration: Option<Duration>,
    /// The daemon's full log instead of the one-line narration.
    pub verbose: bool,
}

/// The daemon's log as the demo shows it: one narrated line per event on standard
/// output, or with `verbose` the full log on standard error.
pub fn init_logging(verbose: bool) -> Result<(), crate::logging::LoggingError> {
    const FILTER: &str = "kyma_certd=info,kyma_connector_sim=warn";
    #[cfg(feature = "demo")]
    if !verbose {
        use tracing_subscriber::layer::SubscriberExt as _;
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new(FILTER))
            .with(narrate::Narrator::default());
        return tracing::subscriber::set_global_default(subscriber)
            .map_err(|source| crate::logging::LoggingError::AlreadySetUp { source });
    }
    let _ = verbose;
    crate::logging::init(crate::config::LogFormat::Text, FILTER)
}

#[cfg(not(feature = "demo"))]
pub async fn run(_options: DemoOptions) -> CommandResult {
    Err(CommandError::usage(anyhow::anyhow!(
        "this build of kyma-certd has no demo (built without the `demo` feature)"
    )))
}

#[cfg(feature = "demo")]
pub async fn run(options: DemoOptions) -> CommandResult {
    use kyma_connector_sim::{SimConfig, Simulator};

    use crate::config::{self, Checks};
    use crate::flow::{self, EnrollRequest};
    use crate::pki::secret::Token;

    if options.validity < Duration::from_secs(10) {
        return Err(CommandError::usage(anyhow::anyhow!(
            "--validity must be at least 10s"
        )));
    }
    // Before anything is created: from here on a closed terminal ends the demo through
    // the normal path (which removes the folder) instead of killing the process.
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(CommandError::failed)?;
    let folder = tempfile::Builder::new()
        .prefix("kyma-certd-demo-")
        .tempdir()
        .map_err(CommandError::failed)?;
    let sim = Simulator::start(SimConfig {
        validity: options.validity,
        app: "demo-app".to_owned(),
        out_dir: Some(folder.path().join("simulator")),
        ..SimConfig::default()
    })
    .await
    .map_err(CommandError::failed)?;

    let (protocol, enroll_url, token) = match options.protocol {
        DemoProtocol::Compass => ("compass", sim.compass_token_url(), sim.mint_compass_token()),
        DemoProtocol::KymaRest => {
            let (token, url) = sim.mint_rest_token();
            ("kyma-rest", url, token)
        }
    };
    let cert_dir = folder.path().join("certs").join("demo");
    let marker = folder.path().join("hook-runs.log");
    let config_path = folder.path().join("config.toml");
    let text = format!(
        r#"# Written by `kyma-certd demo`.
[daemon]
log_level = "info"
max_concurrent_renewals = 1

[metrics]
listen = "127.0.0.1:0"

[defaults]
renew_at = "60%"
jitter = "5%"
retry_min = "2s"
retry_max = "10s"
key_algorithm = "rsa2048"
timeout = "10s"

[[certificate]]
name = "demo"
protocol = "{protocol}"
dir = {dir}
server_ca_file = {ca}
connector_url = "{connector}"

[[certificate.on_renew]]
command = ["sh", "-c", {script}, {marker}]
timeout = "5s"
"#,
        dir = toml_string(&cert_dir.display().to_string()),
        ca = toml_string(&sim.server_ca_path().display().to_string()),
        connector = sim.compass_token_url(),
        script = toml_string(DEMO_HOOK),
        marker = toml_string(&marker.display().to_string()),
    );
    std::fs::write(&config_path, text).map_err(CommandError::failed)?;
    let config = config::load(&config_path).map_err(CommandError::usage)?;
    let _ = Checks::Full;
    let cert = config.certificates[0].clone();

    say!();
    say!("kyma-certd demo");
    say!(
        "  connector simulator ({protocol}): {}",
        enroll_url_display(&enroll_url)
    );
    say!(
        "  certificates live {}; the daemon renews at 60% of the lifetime, less up to 5% jitter",
        humantime::format_duration(options.validity)
    );
    say!("  working folder:  {}", folder.path().display());
    say!("  configuration:   {}", config_path.display());
    say!(
        "  certificate:     {}/cert.pem (key.pem, chain.pem, ca.pem beside it)",
        cert_dir.display()
    );
    say!("  Ctrl-C (or closing the terminal) stops the demo and removes the folder.");
    say!();

    let url = (protocol == "kyma-rest").then(|| enroll_url.to_string());
    let info = flow::enroll(
        &cert,
        EnrollRequest {
            url,
            token: Some(Token::new(token).into()),
        },
    )
    .await
    .map_err(|e| crate::commands::flow_error(&cert.name, e))?;
    say!(
        "enrolled with a one-time token: {} (sha256 {}), valid until {}",
        info.subject,
        narrate::short(&info.fingerprint_sha256),
        crate::pki::verify::timestamp(info.not_after)
    );
    if !options.verbose {
        say!("one line per event below; `demo --verbose` shows the daemon's full log instead");
    }

    let stop = async move {
        let timer = async {
            match options.duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = timer => {}
            _ = hangup.recv() => tracing::info!("SIGHUP: the terminal closed, stopping the demo"),
        }
    };
    let result = crate::daemon::run_until(
        config,
        stop,
        |addr| {
            say!("metrics: curl http://{addr}/metrics   readiness: curl http://{addr}/readyz");
            say!(
                "status:  kyma-certd --config {} status",
                config_path.display()
            );
            say!();
        },
        crate::clock::Clock::system(),
    )
    .await
    .map_err(CommandError::failed);
    sim.shutdown().await;
    let renewals = std::fs::read_to_string(&marker)
        .map(|t| t.lines().count())
        .unwrap_or(0);
    say!(
        "demo finished: {renewals} renewal(s) with hook runs; removing {}",
        folder.path().display()
    );
    result
}

/// The demo's dependent: in real life a reload of the application using the certificate.
#[cfg(feature = "demo")]
const DEMO_HOOK: &str = "echo \"the application would reload now: $KYMA_CERTD_NAME is $(printf %.8s \"$KYMA_CERTD_FINGERPRINT\")\" | tee -a \"$0\"";

#[cfg(feature = "demo")]
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

#[cfg(feature = "demo")]
fn enroll_url_display(url: &url::Url) -> String {
    crate::protocol::RedactedUrl::new(url).to_string()
}
