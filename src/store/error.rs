//! Why the store could not do what it was asked.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    #[error("{} is a symlink where a file or directory of our own belongs; refusing to follow it", path.display())]
    Symlink { path: PathBuf },
    #[error("refusing to use {} as root: {detail}; make it owned by root (or the configured owner) and not writable by group or others", path.display())]
    Untrusted { path: PathBuf, detail: String },
    /// Something other than a regular file (a FIFO, a device) where a file of ours
    /// belongs: never opened for reading in a way that could block.
    #[error("{} is a {kind}, not a regular file; refusing to read it", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    /// The directory lock stayed taken for [`LOCK_WAIT`].
    #[error("the lock file {} is held by another process (waited {}s); another kyma-certd command, or whatever holds it, must finish first", path.display(), waited.as_secs())]
    Locked { path: PathBuf, waited: Duration },
    #[error("the journal {} does not match the configured files ({})", path.display(), entry.display())]
    JournalMismatch { path: PathBuf, entry: PathBuf },
    /// The compare-and-swap failed: someone else (an `enroll`, another renewal) put
    /// another certificate in place since this renewal started.
    #[error("the certificate in {} changed while renewing (now {}); the renewed one was discarded", dir.display(), found.as_deref().unwrap_or("none"))]
    Superseded { dir: PathBuf, found: Option<String> },
}

impl StoreError {
    /// Whether the files could not be read or written at all (permissions, too many open
    /// files, a lock held, a FIFO or a symlink where a file belongs, an untrusted
    /// directory), as opposed to being read and found missing or wrong. Such an error
    /// says nothing about the certificate: it is retried and reported, and never a reason
    /// to call the certificate missing or to enroll again.
    pub fn is_unreadable(&self) -> bool {
        match self {
            StoreError::Io { source, .. } | StoreError::Rename { source, .. } => {
                source.kind() != io::ErrorKind::NotFound
            }
            StoreError::NotRegular { .. }
            | StoreError::Locked { .. }
            | StoreError::Untrusted { .. }
            | StoreError::Symlink { .. }
            | StoreError::NotSymlink { .. } => true,
            StoreError::Corrupt { .. }
            | StoreError::KeyMismatch { .. }
            | StoreError::Incomplete { .. }
            | StoreError::JournalMismatch { .. }
            | StoreError::Superseded { .. } => false,
        }
    }

    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> StoreError {
        StoreError::Io {
            op,
            path: path.to_owned(),
            source,
        }
    }
}
