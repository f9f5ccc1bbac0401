//! kyma-certd: keeps client certificates issued by Kyma connectors valid.
#![forbid(unsafe_code)]

pub mod config;
pub mod keys;
pub mod store;
pub mod subject;
pub mod verify;
pub mod x509;

#[cfg(test)]
mod testutil;
