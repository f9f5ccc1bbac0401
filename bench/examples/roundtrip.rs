//! The parts of a renewal, measured inside one process against a running connector:
//!
//! - `rtt`: one mTLS round trip as the daemon makes it (a new connector, a new TLS
//!   connection with the current certificate, the first renewal request, the answer);
//! - `renew`: the whole renewal flow in-process (round trips, key generation, CSR,
//!   verification, the durable swap), without the process start-up of `kyma-certd renew`.
//!
//! - `steps`: the same flow as `renew`, step by step, timing each step.
//!
//! Prints one line per sample, `<mode> <milliseconds>` (`step <name> <milliseconds>` for
//! `steps`), after one unreported warm-up. Usage: `roundtrip rtt|renew|steps CONFIG NAME N`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use kyma_certd::config::{self, CertificateConfig};
use kyma_certd::flow;
use kyma_certd::protocol::Connector;
use kyma_certd::store::Store;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roundtrip: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, config, name, count] = args.as_slice() else {
        return Err(anyhow!("usage: roundtrip rtt|renew|steps CONFIG NAME N"));
    };
    let count: usize = count.parse().context("N must be a number")?;
    let config = config::load(&PathBuf::from(config)).map_err(|e| anyhow!("{e}"))?;
    let cert = config
        .certificates
        .iter()
        .find(|c| &c.name == name)
        .ok_or_else(|| anyhow!("no certificate named {name}"))?
        .clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        for i in 0..=count {
            let took = match mode.as_str() {
                "rtt" => round_trip(&cert).await?,
                "renew" => renew(&cert).await?,
                "steps" => {
                    steps(&cert, i > 0).await?;
                    continue;
                }
                _ => return Err(anyhow!("mode is rtt, renew or steps")),
            };
            if i > 0 {
                println!("{mode} {:.3}", took.as_secs_f64() * 1000.0);
            }
        }
        Ok(())
    })
}

/// A fresh connector and one mTLS request, as a renewal starts.
async fn round_trip(cert: &CertificateConfig) -> anyhow::Result<Duration> {
    let store = Store::new(cert);
    let current = store
        .load_current()?
        .ok_or_else(|| anyhow!("{} is not enrolled", cert.name))?;
    let url = store
        .read_state()?
        .renewal_url
        .ok_or_else(|| anyhow!("no renewal URL in state.json"))?;
    let identity = flow::identity_of(&current);
    let started = Instant::now();
    let connector = flow::connector_for(cert)?;
    connector.begin_renew(&url, &identity).await?;
    Ok(started.elapsed())
}

async fn renew(cert: &CertificateConfig) -> anyhow::Result<Duration> {
    let store = Store::new(cert);
    let started = Instant::now();
    flow::renew(cert, &store).await.result?;
    Ok(started.elapsed())
}

/// `flow::renew`, step by step (kept in step with src/flow/renew.rs).
async fn steps(cert: &CertificateConfig, print: bool) -> anyhow::Result<()> {
    use kyma_certd::pki::keys::{PrivateKey, build_csr, csr_base64};
    use kyma_certd::pki::subject::Subject;
    use kyma_certd::pki::verify::{Expectations, ReturnedPems, verify};

    let mut clock = Instant::now();
    let mut lap = |name: &str| {
        if print {
            println!("step {name} {:.3}", clock.elapsed().as_secs_f64() * 1000.0);
        }
        clock = Instant::now();
    };
    let store = Store::new(cert);
    let current = flow::renewable_current(cert, &store)?;
    let url = store
        .read_state()?
        .renewal_url
        .ok_or_else(|| anyhow!("no renewal URL in state.json"))?;
    lap("load");
    let connector = flow::connector_for(cert)?;
    let identity = flow::identity_of(&current);
    lap("connector");
    let plan = connector.begin_renew(&url, &identity).await?;
    let subject = Subject::parse(&plan.subject)?;
    lap("first-request");
    let algorithm = cert.key_algorithm;
    let key = tokio::task::spawn_blocking(move || PrivateKey::generate(algorithm)).await??;
    lap("keygen");
    let csr = build_csr(&key, &subject)?;
    let csr = csr_base64(&csr);
    lap("csr");
    let issued = connector.sign(&plan, &csr, Some(&identity)).await?;
    lap("sign-request");
    let verified = verify(
        ReturnedPems {
            client_cert: &issued.client_pem,
            ca: &issued.ca_pem,
            chain: &issued.chain_pem,
        },
        key,
        &Expectations {
            subject: &subject,
            now: std::time::SystemTime::now(),
            renew: cert.renew,
            jitter: cert.jitter,
            previous_lifetime: Some(current.info.lifetime()),
        },
    )?;
    lap("verify");
    let swap_store = Store::new(cert);
    tokio::task::spawn_blocking(move || swap_store.swap(&verified)).await??;
    lap("swap");
    let fact = flow::ledger::Fact::Attempt {
        at: std::time::SystemTime::now(),
        fingerprint: current.info.fingerprint_sha256.clone(),
        outcome: flow::ledger::Attempted::Renewed,
    };
    flow::ledger::record(&store, &[fact])?;
    lap("state");
    Ok(())
}
