//! A local stand-in for the Kyma connectors (Compass/UCL GraphQL and the Kyma Application
//! Connector REST connector-service), for tests, demos and benchmarks. Owns its CAs, three
//! loopback listeners (token-secured HTTPS, mTLS HTTPS, plain-HTTP admin) and fault injection;
//! does not persist anything but the CA certificates it writes for clients to trust.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kyma_connector_sim::SimError> {
//! use kyma_connector_sim::{SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig::default()).await?;
//! let token = sim.mint_compass_token();
//! println!("{} {token} (trust {})", sim.compass_token_url(), sim.server_ca_path().display());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod admin;
mod answers;
mod compass;
mod config;
mod csr;
mod error;
mod fault;
mod peer;
mod pki;
mod registry;
mod respond;
mod rest;
mod server;
mod shared;
mod simulator;
mod subject;
mod tokens;

pub use admin::DirectorToken;
pub use answers::{
    ADAPTER_UNAUTHENTICATED, COMPASS_REVOKE_UNAUTHENTICATED, COMPASS_UNAUTHENTICATED, REST_REVOKED,
    RestFlavour,
};
pub use compass::TOKEN_HEADER;
pub use config::SimConfig;
pub use error::SimError;
pub use fault::{
    ActiveFault, AlertName, DEFAULT_GATEWAY_BODY, DEFAULT_OVERSIZED_BYTES, Fault, FaultScope,
};
pub use pki::{ISSUED_SERIAL, fingerprint};
pub use registry::{Endpoint, IssuedCertificate, RequestCounts};
pub use simulator::Simulator;
pub use subject::ExpectedSubject;
pub use tokens::{Protocol, TokenError};
