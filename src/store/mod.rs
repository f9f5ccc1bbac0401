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
pub(crate) mod tests;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::config::{CertificateConfig, Layout};
use crate::pki::keys::PrivateKey;
use crate::pki::verify::VerifiedMaterial;
use crate::pki::x509::CertInfo;

pub use connection::{CONNECTION_FILE, Connection};
pub use error::StoreError;
pub use generations::{Generation, Role};
pub use state::{Notified, RefusalRecord, Revocation, StateFile};

use fsio::{Dir, Ownership};

/// The state file inside `dir`.
pub const STATE_FILE: &str = "state.json";
/// The files-layout journal inside `dir`.
pub const JOURNAL_FILE: &str = "journal.json";

/// Held (flock) while a swap, a recovery or a `state.json` update runs, so a one-shot
/// `renew` or `enroll` and a running daemon never interleave their writes in one
/// directory.
pub const LOCK_FILE: &str = ".lock";

/// How long taking the lock may wait: a swap or a `state.json` update holds it for well
/// under a second, so a lock held longer is held by something else, which is reported
/// (and the operation retried later) instead of waited for without end.
pub const LOCK_WAIT: Duration = Duration::from_secs(5);

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
    /// What the connector said when it issued the certificate; `None` for certificates
    /// written before `connection.json` existed, or when it is unreadable.
    pub connection: Option<Connection>,
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

/// Everything one swap puts in place.
pub struct NewGeneration<'a> {
    pub material: &'a VerifiedMaterial,
    pub connection: &'a Connection,
    /// The configured outputs (a combined PEM, PKCS#12 keystores), written beside the
    /// PEM files so that they flip with them.
    pub extra: &'a [crate::outputs::OutputFile],
}

/// What a swap may replace: the compare half of its compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Whatever is there (an enrollment: the operator's decision).
    Anything,
    /// Only the certificate with this fingerprint (`None`: nothing on disk) — the one a
    /// renewal started from.
    Current(Option<String>),
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
    /// How long [`Store::lock`] waits ([`LOCK_WAIT`]; shorter in tests).
    lock_wait: Duration,
    /// The configured outputs' file names in `dir` (files layout: removed with the rest).
    outputs: Vec<String>,
    #[cfg(test)]
    faults: tests::Faults,
}

/// The directory lock, held until dropped, with the directory it locks.
struct Locked {
    dir: Dir,
    _lock: fs::File,
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
            lock_wait: LOCK_WAIT,
            outputs: config
                .outputs
                .iter()
                .flat_map(|output| match output {
                    crate::config::OutputConfig::PemBundle { file, .. } => vec![file.clone()],
                    crate::config::OutputConfig::Pkcs12 {
                        file, truststore, ..
                    } => std::iter::once(file.clone())
                        .chain(truststore.clone())
                        .collect(),
                })
                .collect(),
            #[cfg(test)]
            faults: tests::Faults::default(),
        }
    }

    /// The same store, giving up on a held lock after `wait`.
    #[cfg(test)]
    pub(crate) fn with_lock_wait(mut self, wait: Duration) -> Store {
        self.lock_wait = wait;
        self
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

    /// `dir`, opened and checked, or `None` when it does not exist.
    fn open_dir(&self) -> Result<Option<Dir>, StoreError> {
        trust::open(&self.dir, self.ownership.owner)
    }

    /// A folder of the files layout, opened and checked like `dir`; `None` when missing.
    fn open_folder(&self, path: &Path) -> Result<Option<Dir>, StoreError> {
        trust::open(path, self.ownership.owner)
    }

    /// A folder of the files layout (or `dir`), created when missing, checked like `dir`.
    fn ensure_folder(&self, path: &Path) -> Result<Dir, StoreError> {
        trust::ensure(path, self.ownership)
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

    /// Takes the directory's exclusive lock, waiting at most `lock_wait`; released when
    /// dropped. A lock still held then is [`StoreError::Locked`], naming the lock file.
    /// Blocks the calling thread: run it off the event loop.
    fn lock(&self) -> Result<Locked, StoreError> {
        let dir = self.ensure_folder(&self.dir)?;
        let file = dir.open_lock_file(LOCK_FILE)?;
        let path = dir.join(LOCK_FILE);
        let started = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(Locked { dir, _lock: file }),
                Err(rustix::io::Errno::WOULDBLOCK | rustix::io::Errno::INTR) => {}
                Err(e) => return Err(StoreError::io("locking", &path, e.into())),
            }
            let waited = started.elapsed();
            if waited >= self.lock_wait {
                return Err(StoreError::Locked { path, waited });
            }
            std::thread::sleep(pause.min(self.lock_wait - waited));
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// A test hook standing for a crash or an I/O error at a numbered step.
    fn step(&self, path: &Path) -> Result<(), StoreError> {
        #[cfg(test)]
        if self.faults.hit() {
            return Err(StoreError::io(
                "injected fault at",
                path,
                std::io::Error::other("injected fault"),
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

/// Reads a generation's `connection.json`; an unreadable one is reported and ignored
/// (the renewal falls back to what `state.json` and the configuration say).
fn read_connection(dir: &Dir, name: &str) -> Option<Connection> {
    let text = match dir.read_text(name) {
        Ok(text) => text?,
        Err(e) => {
            tracing::warn!(error = %crate::errors::error_chain(&e), "ignoring connection.json");
            return None;
        }
    };
    serde_json::from_str(&text)
        .inspect_err(|e| tracing::warn!(path = %dir.join(name).display(), error = %e, "ignoring connection.json"))
        .ok()
}

/// Reads cert and key texts into `CurrentMaterial`, checking that they belong together.
fn assemble(
    paths: &ConsumerPaths,
    texts: [String; 4],
    generation: Option<String>,
    connection: Option<Connection>,
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
        connection,
    })
}
