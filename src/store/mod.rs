//! The on-disk home of one certificate (DESIGN.md section 4): loads the current key and
//! certificate, swaps in verified material atomically, recovers from a crash mid-swap,
//! and keeps `state.json`. Does not verify what it is given (see `verify`) nor decide
//! when to renew.
//!
//! Crash safety rests on three rules: every file is complete and fsync'd under a name no
//! reader uses before a single rename publishes it; the directory is fsync'd after each
//! publishing rename; and whatever a crash can leave behind (temporary names, a journal)
//! is recognisable by name so that `recover` can finish or remove it.

mod files;
mod fsio;
pub mod state;
mod symlink;

#[cfg(test)]
mod tests;

use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::{CertificateConfig, Layout};
use crate::keys::PrivateKey;
use crate::verify::VerifiedMaterial;
use crate::x509::CertInfo;

pub use state::{RefusalRecord, Revocation, StateFile};

use fsio::Ownership;

/// The state file inside `dir`.
pub const STATE_FILE: &str = "state.json";
/// The files-layout journal inside `dir`.
pub const JOURNAL_FILE: &str = "journal.json";

/// Held (flock) while a swap or a recovery runs, so a one-shot `renew` or `enroll` and a
/// running daemon never interleave their writes in one directory.
pub const LOCK_FILE: &str = ".lock";

/// Why the store could not read or write. Every variant names the path involved; none
/// carries file contents.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("renaming {} over {}", from.display(), to.display())]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not valid: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("the key {} does not belong to the certificate {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("{} is missing while {} exists", missing.display(), present.display())]
    Incomplete { missing: PathBuf, present: PathBuf },
    #[error("{} exists and is not a symlink; refusing to replace it", path.display())]
    NotSymlink { path: PathBuf },
    #[error("the journal {} does not match the configured files ({})", path.display(), entry.display())]
    JournalMismatch { path: PathBuf, entry: PathBuf },
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> StoreError {
        StoreError::Io {
            op,
            path: path.to_owned(),
            source,
        }
    }
}

/// The paths consumers read; they never change between swaps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub chain: PathBuf,
    pub ca: PathBuf,
}

/// The material currently on disk. `Debug` shows the certificate facts only, never a
/// PEM body or the key.
#[derive(Clone)]
pub struct CurrentMaterial {
    pub cert_pem: String,
    pub key: PrivateKey,
    pub chain_pem: String,
    pub ca_pem: String,
    /// Facts about the certificate; its key was checked to match.
    pub info: CertInfo,
    /// The generation directory name (symlink layout).
    pub generation: Option<String>,
}

impl std::fmt::Debug for CurrentMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentMaterial")
            .field("info", &self.info)
            .field("key", &self.key)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// What a swap did, so the caller can log it and its file watcher can recognise its own
/// changes (compare `fingerprint` with the certificate found after a change event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapReport {
    /// SHA-256 of the certificate now in place.
    pub fingerprint: String,
    /// The new generation directory name (symlink layout).
    pub generation: Option<String>,
    /// Every path created, renamed or removed by the swap.
    pub touched: Vec<PathBuf>,
    /// Generation directories removed as older than the previous one.
    pub pruned: Vec<String>,
    pub finished_at: SystemTime,
}

/// What `recover` found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// A files-layout journal was found and its renames completed.
    pub completed_journal: bool,
    /// Leftovers removed: temporary files and symlinks, incomplete generations, pruned
    /// generations.
    pub removed: Vec<PathBuf>,
}

/// One certificate's files.
#[derive(Debug)]
pub struct Store {
    name: String,
    dir: PathBuf,
    layout: Layout,
    cert_mode: u32,
    key_mode: u32,
    ownership: Ownership,
    #[cfg(test)]
    faults: tests::Faults,
}

impl Store {
    pub fn new(config: &CertificateConfig) -> Store {
        Store {
            name: config.name.clone(),
            dir: config.dir.clone(),
            layout: config.layout.clone(),
            cert_mode: config.cert_mode,
            key_mode: config.key_mode,
            ownership: Ownership {
                owner: config.owner,
                group: config.group,
            },
            #[cfg(test)]
            faults: tests::Faults::default(),
        }
    }

    /// The certificate's name (for messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The directory holding generations (symlink layout), `state.json` and the journal.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

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

    /// Run once at start, before `load_current`: completes an interrupted files-layout
    /// swap from its journal, removes temporary leftovers and incomplete generations,
    /// prunes old generations and repairs missing consumer symlinks.
    pub fn recover(&self) -> Result<RecoveryReport, StoreError> {
        let mut report = RecoveryReport::default();
        if !self.dir.exists() {
            return Ok(report);
        }
        let _lock = self.lock()?;
        for name in fsio::list_dir(&self.dir)? {
            if name.starts_with(&format!("{STATE_FILE}.tmp-"))
                || name.starts_with(&format!("{JOURNAL_FILE}.tmp-"))
            {
                let path = self.dir.join(&name);
                if fsio::remove_file(&path)? {
                    report.removed.push(path);
                }
            }
        }
        match &self.layout {
            Layout::Symlink => symlink::recover(self, &mut report)?,
            Layout::Files(files) => files::recover(self, files, &mut report)?,
        }
        Ok(report)
    }

    /// The key, certificate, chain and CA in place now; `None` when nothing was ever
    /// written. Fails when the files are incomplete, unreadable, or the key does not
    /// belong to the certificate.
    pub fn load_current(&self) -> Result<Option<CurrentMaterial>, StoreError> {
        match &self.layout {
            Layout::Symlink => symlink::load(self),
            Layout::Files(files) => files::load(files),
        }
    }

    /// Replaces the material on disk with `material` as one unit. On error the previous
    /// material is still in place and complete.
    pub fn swap(&self, material: &VerifiedMaterial) -> Result<SwapReport, StoreError> {
        let _lock = self.lock()?;
        match &self.layout {
            Layout::Symlink => symlink::swap(self, material),
            Layout::Files(files) => files::swap(self, files, material),
        }
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
                || name == symlink::CURRENT
                || name == symlink::PREVIOUS
                || name.starts_with(symlink::GEN_PREFIX))
    }

    /// Waits for and takes the directory's exclusive lock; released when dropped.
    fn lock(&self) -> Result<fs::File, StoreError> {
        fsio::ensure_dir(&self.dir, self.ownership)?;
        let path = self.dir.join(LOCK_FILE);
        let io_error = |op, source| StoreError::Io {
            op,
            path: path.clone(),
            source,
        };
        // flock works on a read-only descriptor: whoever may write the directory may lock it.
        let file = match fs::File::open(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o644)
                .open(&path),
            other => other,
        }
        .map_err(|e| io_error("opening the lock file", e))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_error("locking", e.into()))?;
        Ok(file)
    }

    /// `dir/state.json`, or the default state when it does not exist yet.
    pub fn read_state(&self) -> Result<StateFile, StoreError> {
        let path = self.dir.join(STATE_FILE);
        match fsio::read_text(&path)? {
            None => Ok(StateFile::default()),
            Some(text) => serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
                path,
                reason: e.to_string(),
            }),
        }
    }

    /// Replaces `dir/state.json` atomically (mode 0644), creating `dir` if needed.
    pub fn write_state(&self, state: &StateFile) -> Result<(), StoreError> {
        fsio::ensure_dir(&self.dir, self.ownership)?;
        let path = self.dir.join(STATE_FILE);
        let mut json = serde_json::to_vec_pretty(state).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        json.push(b'\n');
        fsio::write_atomic(&path, &json, 0o644)
    }

    /// A test hook standing for a crash or an I/O error at a numbered step.
    fn step(&self, path: &Path) -> Result<(), StoreError> {
        #[cfg(test)]
        if self.faults.hit() {
            return Err(StoreError::io(
                "injected fault at",
                path,
                io::Error::other("injected fault"),
            ));
        }
        let _ = path;
        Ok(())
    }

    /// Whether a failed swap should clean up after itself (false only while a test
    /// simulates a crash, which leaves everything as it is).
    fn cleans_up(&self) -> bool {
        #[cfg(test)]
        if self.faults.crashing() {
            return false;
        }
        true
    }
}

/// The four PEM texts and the key of `material`, in the order they are written:
/// (file stem, contents, is the key).
fn contents(material: &VerifiedMaterial) -> [(&'static str, &str, bool); 4] {
    [
        ("key", material.key.to_pem(), true),
        ("cert", material.cert_pem.as_str(), false),
        ("chain", material.chain_pem.as_str(), false),
        ("ca", material.ca_pem.as_str(), false),
    ]
}

/// Reads cert and key texts into `CurrentMaterial`, checking that they belong together.
fn assemble(
    paths: &ConsumerPaths,
    texts: [String; 4],
    generation: Option<String>,
) -> Result<CurrentMaterial, StoreError> {
    let [cert_pem, key_pem, chain_pem, ca_pem] = texts;
    // The key's text as read from disk is wiped once parsed.
    let key_pem = zeroize::Zeroizing::new(key_pem);
    let info = CertInfo::from_pem(&cert_pem).map_err(|e| StoreError::Corrupt {
        path: paths.cert.clone(),
        reason: e.to_string(),
    })?;
    let key = PrivateKey::from_pem(&key_pem).map_err(|e| StoreError::Corrupt {
        path: paths.key.clone(),
        reason: e.to_string(),
    })?;
    if !key.matches_spki(&info.spki_der) {
        return Err(StoreError::KeyMismatch {
            cert: paths.cert.clone(),
            key: paths.key.clone(),
        });
    }
    Ok(CurrentMaterial {
        cert_pem,
        key,
        chain_pem,
        ca_pem,
        info,
        generation,
    })
}
