//! kyma-certd: keeps client certificates issued by Kyma connectors valid.
#![forbid(unsafe_code)]

pub mod config;
pub mod hooks;
pub mod logging;
pub mod report;
pub mod schedule;
pub mod systemd;
