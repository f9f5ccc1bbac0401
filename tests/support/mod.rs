//! What the integration tests share, included the same way by every suite (`mod
//! support;`): one `world::World` to set up (folder, simulator, configuration, tokens),
//! one `invoke::Invocation` to start the binary (a one-shot command, or the daemon as a
//! `running::Daemon`), readers for what it leaves on disk and serves, and the one
//! `ca::TestCa`.
#![allow(dead_code)] // Every suite uses a different part of the tree.

/// The crate under test, by the name the shared CA file uses for it.
use kyma_certd as certd;

pub mod ca;
pub mod disk;
pub mod fake_server;
pub mod http;
pub mod in_process;
pub mod invoke;
pub mod outputs;
pub mod pem;
pub mod results;
pub mod running;
pub mod scrape;
pub mod secrets;
pub mod settings;
pub mod sim;
pub mod store;
pub mod tools;
pub mod wait;
pub mod world;
