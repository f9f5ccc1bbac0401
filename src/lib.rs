//! kyma-certd: keeps client certificates issued by Kyma connectors valid.
//!
//! The seven verbs of the product each have a home: enroll, renew and revoke in `flow`
//! (over `protocol`), watch and schedule in `daemon` and `schedule`, verify in `pki::verify`,
//! swap in `store`, notify in `hooks` and `systemd`, report in `report` and `logging`.
// No unsafe code, except the two allocator calls of `memory` (glibc has no safe wrapper).
#![deny(unsafe_code)]

pub mod app;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod errors;
pub mod exit;
pub mod flow;
pub mod hooks;
pub mod logging;
pub mod man;
pub mod memory;
pub mod outputs;
pub mod pki;
pub mod protocol;
pub mod report;
pub mod schedule;
pub mod store;
pub mod systemd;
pub mod time_text;
pub mod token;

#[cfg(test)]
mod testutil;
