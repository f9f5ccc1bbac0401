//! Reporting: Prometheus metrics, the readiness snapshot and the small HTTP server for
//! `/metrics`, `/healthz` and `/readyz`. Does not decide anything about certificates.

pub mod format;
pub mod http;
pub mod metrics;
pub mod state;

pub use format::Format;
pub use metrics::Metrics;
pub use state::{CertState, FailureReason};
