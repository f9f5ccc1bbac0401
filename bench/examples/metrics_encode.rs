//! The cost of one `/metrics` encoding for many certificates, without HTTP: every
//! certificate loaded, scheduled, valid and renewed once, then the registry encoded
//! after each change (as a scrape during renewals sees it). Prints
//! `encode <format> <milliseconds> <bytes>` per sample.
//!
//! Usage: `metrics_encode CERTIFICATES N`.

use std::time::{Duration, Instant, SystemTime};

use kyma_certd::report::{CertState, Format, Metrics};

fn main() {
    let mut args = std::env::args().skip(1);
    let certs: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let samples: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(20);
    let metrics = Metrics::new("bench");
    let now = SystemTime::now();
    for i in 0..certs {
        let name = format!("c{i:04}");
        metrics.cert_loaded(&name, now, now + Duration::from_secs(120));
        metrics.next_renewal(&name, Some(now + Duration::from_secs(84)));
        metrics.set_state(&name, CertState::Valid);
        metrics.renewal_succeeded(&name, Duration::from_millis(30));
    }
    for format in [Format::OpenMetrics, Format::Classic] {
        let label = match format {
            Format::OpenMetrics => "openmetrics",
            Format::Classic => "classic",
        };
        for i in 0..samples {
            // A change, as a renewal makes, so the cached text is stale.
            metrics.set_state(&format!("c{:04}", i % certs.max(1)), CertState::Valid);
            let started = Instant::now();
            let text = metrics.encode(format);
            println!(
                "encode {label} {:.3} {}",
                started.elapsed().as_secs_f64() * 1000.0,
                text.len()
            );
        }
    }
}
