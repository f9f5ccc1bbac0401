//! Reads and validates the TOML configuration. Does not act on it.

mod model;

pub use model::*;
