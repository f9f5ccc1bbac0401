//! `state.json` read and written under the directory lock. What it holds is the
//! ledger's business (`flow::ledger`, its one writer); here it is only bytes made safe:
//! written atomically, and a file that cannot be parsed set aside, never in the way.

use std::time::SystemTime;

use super::fsio::Dir;
use super::{STATE_FILE, StateFile, Store, StoreError};

/// A `state.json` that could not be read is renamed to `state.json.corrupt-<unix time>`.
pub(super) const CORRUPT_STATE_PREFIX: &str = "state.json.corrupt-";

impl Store {
    /// `dir/state.json`, or the default state when it does not exist yet; an error
    /// when it cannot be read (`status` shows it).
    pub fn read_state(&self) -> Result<StateFile, StoreError> {
        let Some(dir) = self.open_dir()? else {
            return Ok(StateFile::default());
        };
        parse_state(&dir)
    }

    /// Like [`Store::read_state`], but an unreadable file is reported and read as the
    /// default: it is bookkeeping, and must never block a renewal (the next update sets
    /// it aside).
    pub fn state(&self) -> StateFile {
        self.read_state().unwrap_or_else(|e| {
            tracing::warn!(cert = %self.name, error = %crate::errors::error_chain(&e), "ignoring state.json");
            StateFile::default()
        })
    }

    /// Replaces `state.json` with `state`, under the directory lock (a restored backup,
    /// a test's fixture). The daemon and the commands change it through the ledger.
    pub fn write_state(&self, state: &StateFile) -> Result<(), StoreError> {
        self.update_state(|current| *current = state.clone())
            .map(drop)
    }

    /// Changes `state.json` under the directory lock, creating `dir` if needed: a
    /// one-shot command and the daemon never lose each other's updates. The ledger
    /// (`flow::ledger`) is its one caller outside tests. A file whose
    /// content cannot be parsed is set aside as `state.json.corrupt-<time>` with a
    /// warning, and `change` starts from the default state; one that cannot be read is an
    /// error and stays as it is.
    pub fn update_state(
        &self,
        change: impl FnOnce(&mut StateFile),
    ) -> Result<StateFile, StoreError> {
        let locked = self.lock()?;
        let dir = &locked.dir;
        let mut state = match parse_state(dir) {
            Ok(state) => state,
            // Only content that cannot be parsed is set aside: a file that could not be
            // read (permissions, a FIFO, too many open files) keeps its records, and the
            // update fails, to be retried.
            Err(e @ StoreError::Corrupt { .. }) => {
                let aside = format!(
                    "{CORRUPT_STATE_PREFIX}{}",
                    SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs()
                );
                tracing::warn!(
                    cert = %self.name,
                    error = %crate::errors::error_chain(&e),
                    set_aside = %dir.join(&aside).display(),
                    "state.json is unreadable; starting it afresh"
                );
                dir.rename(STATE_FILE, dir, &aside)?;
                StateFile::default()
            }
            Err(e) => return Err(e),
        };
        change(&mut state);
        let mut json = serde_json::to_vec_pretty(&state).map_err(|e| StoreError::Corrupt {
            path: dir.join(STATE_FILE),
            reason: e.to_string(),
        })?;
        json.push(b'\n');
        dir.write_atomic(STATE_FILE, &json, 0o644)?;
        Ok(state)
    }
}

fn parse_state(dir: &Dir) -> Result<StateFile, StoreError> {
    match dir.read_text(STATE_FILE)? {
        None => Ok(StateFile::default()),
        Some(text) => serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
            path: dir.join(STATE_FILE),
            reason: e.to_string(),
        }),
    }
}
