//! Errors of starting and running the simulator as a whole. Request-level rejections
//! (bad token, bad CSR) live next to the code that produces them.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the simulator could not start (or an admin call could not be served).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid simulator setting `{field}`: {reason}")]
    InvalidConfig { field: &'static str, reason: String },

    #[error("cannot listen on {addr} for the {role} listener")]
    Bind {
        role: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot create the output folder {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot write {path}")]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot generate the {what}")]
    Pki {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },

    #[error("cannot build the tls configuration of the {role} listener")]
    Tls {
        role: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("the embedded connector schema does not validate: {0}")]
    Schema(String),

    #[error("key generation task failed")]
    KeyGenTask(#[source] tokio::task::JoinError),
}
