//! Scrapes `/metrics` in a loop the way Prometheus does (its Accept header, a new
//! connection per scrape) and prints, per scrape, the wall time from connect to the last
//! byte, the body size, and how many certificates were in state `renewing`:
//! `scrape <milliseconds> <bytes> <renewing>`. Stops when STOP_FILE exists.
//!
//! Usage: `scrape HOST:PORT INTERVAL_MS STOP_FILE`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, interval, stop] = args.as_slice() else {
        eprintln!("usage: scrape HOST:PORT INTERVAL_MS STOP_FILE");
        return ExitCode::from(2);
    };
    let Ok(interval) = interval.parse::<u64>().map(Duration::from_millis) else {
        eprintln!("INTERVAL_MS must be a number");
        return ExitCode::from(2);
    };
    let stop = Path::new(stop);
    let mut body = Vec::with_capacity(1 << 22);
    while !stop.exists() {
        let next = Instant::now() + interval;
        body.clear();
        let started = Instant::now();
        match scrape(addr, &mut body) {
            Ok(()) => {
                let took = started.elapsed();
                let renewing = count_renewing(&body);
                println!(
                    "scrape {:.3} {} {renewing}",
                    took.as_secs_f64() * 1000.0,
                    body.len()
                );
            }
            Err(e) => println!("error {e}"),
        }
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    ExitCode::SUCCESS
}

fn scrape(addr: &str, body: &mut Vec<u8>) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: {ACCEPT}\r\nConnection: close\r\n\r\n"
    )?;
    stream.read_to_end(body)?;
    if !body.starts_with(b"HTTP/1.1 200") {
        return Err(std::io::Error::other("the answer is not 200 OK"));
    }
    Ok(())
}

/// Series `kyma_certd_certificate_state{...state="renewing"} 1`.
fn count_renewing(body: &[u8]) -> usize {
    String::from_utf8_lossy(body)
        .lines()
        .filter(|l| {
            l.starts_with("kyma_certd_certificate_state{")
                && l.contains("state=\"renewing\"")
                && l.ends_with("} 1")
        })
        .count()
}
