//! Bare key generation inside one process: the floor under every renewal, since a new
//! key is the one cost kyma-certd cannot avoid. Prints one line per sample,
//! `<algorithm> <milliseconds>`, after one unreported warm-up.
//!
//! Usage: `keygen ALGORITHM N` with ALGORITHM rsa2048 | rsa3072 | rsa4096 | ecdsa-p256.

use std::process::ExitCode;
use std::time::Instant;

use kyma_certd::config::KeyAlgorithm;
use kyma_certd::pki::keys::PrivateKey;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(name), Some(count)) = (args.first(), args.get(1)) else {
        eprintln!("usage: keygen ALGORITHM N");
        return ExitCode::from(2);
    };
    let algorithm = match name.as_str() {
        "rsa2048" => KeyAlgorithm::Rsa2048,
        "rsa3072" => KeyAlgorithm::Rsa3072,
        "rsa4096" => KeyAlgorithm::Rsa4096,
        "ecdsa-p256" => KeyAlgorithm::EcdsaP256,
        _ => {
            eprintln!("unknown algorithm {name:?}");
            return ExitCode::from(2);
        }
    };
    let Ok(count) = count.parse::<usize>() else {
        eprintln!("N must be a number");
        return ExitCode::from(2);
    };
    if PrivateKey::generate(algorithm).is_err() {
        eprintln!("key generation failed");
        return ExitCode::FAILURE;
    }
    for _ in 0..count {
        let started = Instant::now();
        let key = PrivateKey::generate(algorithm);
        let took = started.elapsed();
        if key.is_err() {
            eprintln!("key generation failed");
            return ExitCode::FAILURE;
        }
        println!("{name} {:.3}", took.as_secs_f64() * 1000.0);
    }
    ExitCode::SUCCESS
}
