//! One certificate's store as a value: where its files are, how they are owned, and the
//! directory's lock. What the store does with them is in the other files.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::StoreError;
use super::fsio::{Dir, Ownership};
use super::model::{LOCK_FILE, LOCK_WAIT};
use super::trust;
use crate::config::{CertificateConfig, Layout};

/// One certificate's files.
#[derive(Debug)]
pub struct Store {
    pub(super) name: String,
    pub(super) dir: PathBuf,
    pub(super) layout: Layout,
    pub(super) cert_mode: u32,
    pub(super) key_mode: u32,
    pub(super) ownership: Ownership,
    /// How long [`Store::lock`] waits ([`LOCK_WAIT`]; shorter in tests).
    pub(super) lock_wait: Duration,
    /// The configured outputs' file names in `dir` (files layout: removed with the rest).
    pub(super) outputs: Vec<String>,
    #[cfg(test)]
    pub(super) faults: super::tests::Faults,
}

/// The directory lock, held until dropped, with the directory it locks.
pub(super) struct Locked {
    pub(super) dir: Dir,
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
            faults: super::tests::Faults::default(),
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

    /// `dir`, opened and checked, or `None` when it does not exist.
    pub(super) fn open_dir(&self) -> Result<Option<Dir>, StoreError> {
        trust::open(&self.dir, self.ownership.owner)
    }

    /// A folder of the files layout, opened and checked like `dir`; `None` when missing.
    pub(super) fn open_folder(&self, path: &Path) -> Result<Option<Dir>, StoreError> {
        trust::open(path, self.ownership.owner)
    }

    /// A folder of the files layout (or `dir`), created when missing, checked like `dir`.
    pub(super) fn ensure_folder(&self, path: &Path) -> Result<Dir, StoreError> {
        trust::ensure(path, self.ownership)
    }

    /// Takes the directory's exclusive lock, waiting at most `lock_wait`; released when
    /// dropped. A lock still held then is [`StoreError::Locked`], naming the lock file.
    /// Blocks the calling thread: run it off the event loop.
    pub(super) fn lock(&self) -> Result<Locked, StoreError> {
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
    pub(super) fn step(&self, path: &Path) -> Result<(), StoreError> {
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
    pub(super) fn cleans_up(&self) -> bool {
        #[cfg(test)]
        if self.faults.crashing() {
            return false;
        }
        true
    }
}
