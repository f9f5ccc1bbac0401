//! Enrolls every `[[certificate]]` of a configuration at a running connector simulator,
//! many at a time: a one-time token per certificate from the simulator's admin API (client
//! id = the certificate's name, so each certificate has its own CN), then the same
//! enrollment flow as `kyma-certd enroll`. Prints `enrolled <count> <seconds>`.
//!
//! Usage: `enroll_many CONFIG ADMIN_URL CONCURRENCY` (compass certificates only).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, anyhow};
use futures::StreamExt;
use kyma_certd::config;
use kyma_certd::flow::{self, EnrollRequest};
use kyma_certd::pki::secret::Token;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("enroll_many: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config, admin, concurrency] = args.as_slice() else {
        return Err(anyhow!("usage: enroll_many CONFIG ADMIN_URL CONCURRENCY"));
    };
    let concurrency: usize = concurrency
        .parse()
        .context("CONCURRENCY must be a number")?;
    let config = config::load(&PathBuf::from(config)).map_err(|e| anyhow!("{e}"))?;
    let admin = url::Url::parse(admin)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let enrolled = runtime.block_on(async {
        let http = reqwest::Client::new();
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(&config.certificates)
            .map(|cert| {
                let http = http.clone();
                let admin = admin.clone();
                async move {
                    let mut mint = admin.join("tokens/compass")?;
                    mint.query_pairs_mut().append_pair("client_id", &cert.name);
                    let answer = http.post(mint).send().await?.error_for_status()?;
                    let minted: serde_json::Value = serde_json::from_slice(&answer.bytes().await?)?;
                    let token = minted["token"]
                        .as_str()
                        .ok_or_else(|| anyhow!("the admin API returned no token"))?;
                    flow::enroll(
                        cert,
                        EnrollRequest {
                            url: None,
                            token: Some(Token::new(token).into()),
                        },
                    )
                    .await
                    .with_context(|| format!("enrolling {}", cert.name))?;
                    Ok(())
                }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        results.into_iter().collect::<anyhow::Result<Vec<()>>>()
    })?;
    println!(
        "enrolled {} {:.3}",
        enrolled.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
