//! What the store's parts share: the names of its files, the material on disk, what a
//! swap puts in place and what it reports, and how PEM texts become material.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::connection::Connection;
use super::error::StoreError;
use super::fsio::Dir;
use crate::pki::keys::PrivateKey;
use crate::pki::verify::VerifiedMaterial;
use crate::pki::x509::CertInfo;

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

/// The four PEM texts and the key of `material`, in the order they are written:
/// (file stem, contents, is the key).
pub(super) fn contents(material: &VerifiedMaterial) -> [(&'static str, &str, bool); 4] {
    [
        ("key", material.key.to_pem(), true),
        ("cert", material.cert_pem.as_str(), false),
        ("chain", material.chain_pem.as_str(), false),
        ("ca", material.ca_pem.as_str(), false),
    ]
}

/// Reads a generation's `connection.json`; an unreadable one is reported and ignored
/// (the renewal falls back to what `state.json` and the configuration say).
pub(super) fn read_connection(dir: &Dir, name: &str) -> Option<Connection> {
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
pub(super) fn assemble(
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
