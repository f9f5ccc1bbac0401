//! Test fixtures made by code for the unit tests: the throwaway CA that issues client
//! certificates the way a connector does. One definition serves the unit and the
//! integration tests alike (`tests/support/ca.rs`). Test builds only; does not touch the
//! disk.

/// The crate, by the name the shared CA file uses for it.
use crate as certd;

// The integration tests use the rest of it (leaves, client identities, material).
#[allow(dead_code)]
#[path = "../tests/support/ca.rs"]
mod ca;

pub use ca::{SUBJECT, TestCa, issued, key};
