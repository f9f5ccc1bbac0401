//! A look at one certificate's files and ledger, off the event loop and bounded in time:
//! what the policy decides from. Does not decide anything.

use std::sync::Arc;
use std::time::Duration;

use tracing::warn;

use crate::config::CertificateConfig;
use crate::flow::policy::OnDisk;
use crate::store::{StateFile, Store};

/// The longest a look at the files may take on the blocking pool (a held lock is given
/// up on after `LOCK_WAIT`; a hung mount is given up on here): the task then retries.
pub(super) const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What a look found.
pub(super) struct Looked {
    pub on_disk: OnDisk,
    /// `None` when `state.json` exists but cannot be read (it is logged): then nothing is
    /// known of what it records, and what the task keeps in memory stands in for it.
    pub ledger: Option<StateFile>,
}

/// Reads the certificate and `state.json` on the blocking pool, within [`READ_TIMEOUT`]:
/// the event loop (health endpoints, the other certificates) never waits for the disk or
/// the directory lock. `looks`: looks in a row that could not read the files, this one
/// included should it fail too.
pub(super) async fn look(cfg: &Arc<CertificateConfig>, looks: u32) -> Looked {
    let cfg = Arc::clone(cfg);
    let looked = tokio::task::spawn_blocking(move || {
        let store = Store::new(&cfg);
        let ledger = match store.read_state() {
            Ok(state) => Some(state),
            Err(e) => {
                warn!(error = %crate::errors::error_chain(&e), "ignoring state.json");
                // Content that cannot be parsed is set aside at the next update: the
                // hooks run once more and are recorded again.
                (!e.is_unreadable()).then(StateFile::default)
            }
        };
        Looked {
            on_disk: crate::flow::on_disk(&store, looks),
            ledger,
        }
    });
    let why = match tokio::time::timeout(READ_TIMEOUT, looked).await {
        Ok(Ok(looked)) => return looked,
        Ok(Err(_)) => "reading the certificate files was interrupted".to_owned(),
        Err(_) => format!(
            "reading the certificate files did not finish within {}",
            humantime::format_duration(READ_TIMEOUT)
        ),
    };
    Looked {
        on_disk: OnDisk::Unreadable { why, looks },
        ledger: None,
    }
}
