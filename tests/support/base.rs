//! What every suite that drives the real binary shares: the binary, the simulator on a
//! thread of its own, polling with deadlines, an HTTP client, a scrape reader and the
//! harness for a running daemon.
#![allow(unused_imports)] // Each test binary uses a different part of this module.

#[path = "bin.rs"]
mod bin;
#[path = "http.rs"]
mod http;
#[path = "running.rs"]
mod running;
#[path = "scrape.rs"]
mod scrape;
#[path = "sim.rs"]
mod sim;
#[path = "wait.rs"]
mod wait;

pub use bin::{BIN, kyma_certd};
pub use http::{Response, exchange, http_get, parse_response, try_http_get};
pub use running::{Daemon, LogLine, memory_kib};
pub use scrape::{Sample, Scrape};
pub use sim::Sim;
pub use wait::{eventually, try_wait_for, wait_for};
