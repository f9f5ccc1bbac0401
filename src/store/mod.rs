//! The on-disk home of one certificate (DESIGN.md section 4): loads the current key and
//! certificate, swaps in verified material atomically, recovers from a crash mid-swap,
//! and keeps `state.json`. Does not verify what it is given (see `verify`) nor decide
//! when to renew.
//!
//! Crash safety rests on three rules: every file is complete and fsync'd under a name no
//! reader uses before a single rename publishes it; the directory is fsync'd after each
//! publishing rename; and whatever a crash can leave behind (temporary names, a journal)
//! is recognisable by name so that `recover` can finish or remove it.

mod connection;
mod error;
mod files;
mod fsio;
mod generations;
mod handle;
mod model;
mod preflight;
pub mod state;
mod state_io;
mod symlink;
mod trust;

#[cfg(test)]
mod compat_tests;
#[cfg(test)]
mod host_tests;
#[cfg(test)]
mod recovery_tests;
#[cfg(test)]
pub(crate) mod tests;

use std::path::Path;

use crate::config::Layout;
use crate::pki::verify::VerifiedMaterial;
use crate::pki::x509::CertInfo;

pub use connection::{CONNECTION_FILE, Connection};
pub use error::StoreError;
pub use generations::{Generation, Role};
pub use handle::Store;
pub use model::{
    ConsumerPaths, CurrentMaterial, Expect, JOURNAL_FILE, LOCK_FILE, LOCK_WAIT, NewGeneration,
    RecoveryReport, STATE_FILE, SwapReport,
};
pub use state::{Notified, RefusalRecord, Revocation, StateFile};

use fsio::Dir;

impl Store {
    pub fn consumer_paths(&self) -> ConsumerPaths {
        match &self.layout {
            Layout::Symlink => ConsumerPaths {
                cert: self.dir.join(symlink::CERT),
                key: self.dir.join(symlink::KEY),
                chain: self.dir.join(symlink::CHAIN),
                ca: self.dir.join(symlink::CA),
            },
            Layout::Files(files) => ConsumerPaths {
                cert: files.cert_file.clone(),
                key: files.key_file.clone(),
                chain: files.chain_file.clone(),
                ca: files.ca_file.clone(),
            },
        }
    }

    /// Run at start, before `load_current`: completes an interrupted files-layout swap
    /// from its journal, removes temporary leftovers and incomplete generations, prunes
    /// old generations and repairs missing consumer symlinks.
    pub fn recover(&self) -> Result<RecoveryReport, StoreError> {
        let mut report = RecoveryReport::default();
        if self.open_dir()?.is_none() {
            return Ok(report);
        }
        let locked = self.lock()?;
        let dir = &locked.dir;
        for name in dir.list()? {
            let temporary = name.starts_with(&format!("{STATE_FILE}.tmp-"))
                || name.starts_with(&format!("{JOURNAL_FILE}.tmp-"));
            if temporary && dir.remove_file(&name)? {
                report.removed.push(dir.join(&name));
            }
        }
        match &self.layout {
            Layout::Symlink => symlink::recover(self, dir, &mut report)?,
            Layout::Files(files) => files::recover(self, dir, files, &mut report)?,
        }
        Ok(report)
    }

    /// The key, certificate, chain and CA in place now; `None` when nothing was ever
    /// written. Fails when the files are incomplete, unreadable, or the key does not
    /// belong to the certificate. A files-layout swap that a crash interrupted is
    /// completed first, so what is read is always one whole certificate.
    pub fn load_current(&self) -> Result<Option<CurrentMaterial>, StoreError> {
        let Some(dir) = self.open_dir()? else {
            return match &self.layout {
                // The files may live elsewhere even when `dir` is gone.
                Layout::Files(files) => files::load(self, None, files),
                Layout::Symlink => Ok(None),
            };
        };
        match &self.layout {
            Layout::Symlink => symlink::load(&dir),
            Layout::Files(files) => {
                if dir.kind(JOURNAL_FILE)?.is_some() {
                    let locked = self.lock()?;
                    files::complete_journal(self, &locked.dir, files)?;
                }
                files::load(self, Some(&dir), files)
            }
        }
    }

    /// Replaces whatever is on disk with `material`, with no facts from a connector
    /// beyond the certificate itself (tests, tools). See [`Store::commit`].
    pub fn swap(&self, material: &VerifiedMaterial) -> Result<SwapReport, StoreError> {
        let connection = Connection::of_certificate(&material.info);
        let new = NewGeneration {
            material,
            connection: &connection,
            extra: &[],
        };
        self.commit(&new, &Expect::Anything)
    }

    /// Replaces the material on disk with `new` as one unit, if what is there is what
    /// `expect` says. On error the previous material is still in place and complete.
    pub fn commit(
        &self,
        new: &NewGeneration<'_>,
        expect: &Expect,
    ) -> Result<SwapReport, StoreError> {
        let locked = self.lock()?;
        let dir = &locked.dir;
        if let Layout::Files(files) = &self.layout {
            files::complete_journal(self, dir, files)?;
        }
        if let Expect::Current(expected) = expect {
            let found = self.current_fingerprint(dir)?;
            if found != *expected {
                return Err(StoreError::Superseded {
                    dir: self.dir.clone(),
                    found,
                });
            }
        }
        match &self.layout {
            Layout::Symlink => symlink::swap(self, dir, new),
            Layout::Files(files) => files::swap(self, dir, files, new),
        }
    }

    /// The certificate in place, reading only the certificate: neither the key nor the
    /// journal is touched, so a reader that may not read the key (a member of the
    /// daemon's group, say) sees the certificate. [`Store::load_current`] also checks that
    /// the key matches.
    pub fn current_certificate(&self) -> Result<Option<CertInfo>, StoreError> {
        match self.open_dir()? {
            Some(dir) => self.current_info(Some(&dir)),
            None if matches!(self.layout, Layout::Files(_)) => self.current_info(None),
            None => Ok(None),
        }
    }

    /// The fingerprint of the certificate in place, reading only the certificate.
    fn current_fingerprint(&self, dir: &Dir) -> Result<Option<String>, StoreError> {
        Ok(self
            .current_info(Some(dir))?
            .map(|info| info.fingerprint_sha256))
    }

    fn current_info(&self, dir: Option<&Dir>) -> Result<Option<CertInfo>, StoreError> {
        let (path, text) = match &self.layout {
            Layout::Symlink => match dir.map(symlink::current_cert).transpose()?.flatten() {
                Some(found) => found,
                None => return Ok(None),
            },
            Layout::Files(files) => {
                let (parent, name) = fsio::split(&files.cert_file);
                match self
                    .open_folder(parent)?
                    .map(|d| d.read_text(&name))
                    .transpose()?
                {
                    Some(Some(text)) => (files.cert_file.clone(), text),
                    _ => return Ok(None),
                }
            }
        };
        CertInfo::from_pem(&text)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                path,
                reason: e.to_string(),
            })
    }

    /// Whether `path` is one the store itself creates and replaces in `dir` (generations,
    /// `current`, temporary names, the journal and `state.json`). A file watcher can
    /// ignore events for these.
    pub fn is_internal_path(&self, path: &Path) -> bool {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return false;
        };
        if name.contains(".tmp-") || name.contains(files::TMP_MARK) {
            return true;
        }
        path.parent() == Some(self.dir.as_path())
            && (name == STATE_FILE
                || name == JOURNAL_FILE
                || name == LOCK_FILE
                || name.starts_with(state_io::CORRUPT_STATE_PREFIX)
                || name == symlink::CURRENT
                || name == symlink::PREVIOUS
                || name.starts_with(symlink::GEN_PREFIX))
    }
}
