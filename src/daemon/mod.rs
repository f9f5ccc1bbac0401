//! `kyma-certd run`: the supervisor (`supervisor`) starts one task per certificate
//! (`task`), which looks at its files and ledger (`look`), lets the policy decide and
//! does what it says; file changes (`watch`), clock steps (`clock`) and signals reach the
//! tasks through their mailboxes (`mailbox`). Does not renew anything itself (see
//! `flow`).

mod clock;
mod look;
mod mailbox;
mod supervisor;
mod task;
mod unwritten;
mod watch;

pub use supervisor::{BLOCKING_SHUTDOWN_GRACE, DRAIN, STOP_BOUND, run, run_until};
