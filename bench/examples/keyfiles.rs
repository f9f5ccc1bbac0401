//! Writes N new private keys as PKCS#8 PEM files `DIR/c0001.key` ... with the daemon's own
//! key generation, one worker per CPU: the keys that bench/certmonger.sh hands to
//! certmonger, so that preparing 1,000 certificates does not spend minutes in
//! `openssl genrsa` (about 4x slower per RSA key here). Prints `wrote <count>`.
//!
//! Usage: `keyfiles ALGORITHM N DIR` with ALGORITHM rsa2048 | rsa3072 | rsa4096 | ecdsa-p256.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, anyhow};
use kyma_certd::config::KeyAlgorithm;
use kyma_certd::pki::keys::PrivateKey;

fn main() -> ExitCode {
    match run() {
        Ok(count) => {
            println!("wrote {count}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("keyfiles: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<usize> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [algorithm, count, dir] = args.as_slice() else {
        return Err(anyhow!("usage: keyfiles ALGORITHM N DIR"));
    };
    let algorithm = parse_algorithm(algorithm)?;
    let count: usize = count.parse().context("N must be a number")?;
    let dir = PathBuf::from(dir);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    let next = AtomicUsize::new(1);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| scope.spawn(|| write_keys_until(count, &next, algorithm, &dir)))
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().map_err(|_| anyhow!("a key worker panicked"))?)
    })?;
    Ok(count)
}

fn parse_algorithm(name: &str) -> anyhow::Result<KeyAlgorithm> {
    Ok(match name {
        "rsa2048" => KeyAlgorithm::Rsa2048,
        "rsa3072" => KeyAlgorithm::Rsa3072,
        "rsa4096" => KeyAlgorithm::Rsa4096,
        "ecdsa-p256" => KeyAlgorithm::EcdsaP256,
        _ => return Err(anyhow!("unknown algorithm {name:?}")),
    })
}

/// Takes the next free index until `count` keys exist.
fn write_keys_until(
    count: usize,
    next: &AtomicUsize,
    algorithm: KeyAlgorithm,
    dir: &Path,
) -> anyhow::Result<()> {
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i > count {
            return Ok(());
        }
        let key = PrivateKey::generate(algorithm).context("generating a key")?;
        let path = dir.join(format!("c{i:04}.key"));
        // Mode 0600 from the start, as a key file should be.
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        file.write_all(key.to_pem().as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
}
