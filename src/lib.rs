//! kyma-certd: keeps client certificates issued by Kyma connectors valid.
#![forbid(unsafe_code)]

pub mod config;
pub mod keys;
pub mod subject;
pub mod verify;
pub mod x509;

pub mod store;
#[cfg(test)]
mod testutil;
