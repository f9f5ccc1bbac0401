//! The renewal path, shared by the one-shot commands and the daemon: the three
//! conversations with a connector (enroll, renew, revoke) from the current files to
//! verified, swapped material; telling the dependents (`dependents`); what to do and
//! when (`policy`); and what is remembered (`ledger`, the one writer of `state.json`).
//! Does not sleep, loop or print.

mod conversation;
pub mod dependents;
mod enroll;
mod error;
pub mod ledger;
pub mod policy;
mod renew;
mod revoke;

pub(crate) use conversation::renewal_url;
pub use conversation::{connector_for, identity_of};
pub use enroll::{EnrollRequest, enroll};
pub use error::FlowError;
pub use renew::{RenewAttempt, Renewed, renew, renewable_current};
pub use revoke::{GenerationRevocation, Outcome as RevocationOutcome, revoke};

use crate::store::Store;

/// What the files and the ledger say, and what the policy makes of it at `now`, for a
/// one-shot command. Blocks. A `state.json` that cannot be read is said and read as
/// empty: bookkeeping never blocks a renewal.
pub fn look_and_decide(
    cfg: &crate::config::CertificateConfig,
    store: &Store,
    now: std::time::SystemTime,
) -> (policy::OnDisk, policy::Decision) {
    let on_disk = on_disk(store, 1);
    let ledger = store.state();
    let decision = policy::decide(&policy::Situation {
        on_disk: &on_disk,
        ledger: &ledger,
        cfg,
        host: &crate::schedule::host_name(),
        now,
    });
    (on_disk, decision)
}

/// What the files say about the certificate, as the policy takes it; only "not found"
/// means missing. Blocks (the directory lock, the disk). `looks`: looks in a row that
/// could not read the files, this one included should it fail too.
pub fn on_disk(store: &Store, looks: u32) -> policy::OnDisk {
    use policy::OnDisk;
    match store.load_current() {
        Ok(None) => OnDisk::Missing(None),
        Err(e) if e.is_unreadable() => OnDisk::Unreadable {
            why: crate::errors::error_chain(&e),
            looks,
        },
        Err(e) => OnDisk::Missing(Some(crate::errors::error_chain(&e))),
        Ok(Some(current)) => OnDisk::Certificate(policy::Seen::from(&current.info)),
    }
}
