//! The files layout: four plain files at configured paths, each replaced by temp file +
//! fsync + rename, with a journal in `dir` so that a crash between the renames is
//! completed by `recover`. Does not handle the symlink layout (see `symlink`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::fsio;
use super::{
    ConsumerPaths, CurrentMaterial, JOURNAL_FILE, RecoveryReport, Store, StoreError, SwapReport,
};
use crate::config::FilePaths;
use crate::verify::VerifiedMaterial;

/// Temporary files are named `.<target name><TMP_MARK><nonce>` beside their target.
pub(super) const TMP_MARK: &str = ".kyma-certd-tmp-";

/// The renames still to do; written (and fsync'd) after every temporary file is complete
/// and before the first rename, removed after the last.
#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    version: u32,
    /// SHA-256 of the certificate being installed.
    fingerprint: String,
    entries: Vec<JournalEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct JournalEntry {
    tmp: PathBuf,
    target: PathBuf,
}

fn target_for<'a>(files: &'a FilePaths, stem: &str) -> &'a Path {
    match stem {
        "key" => &files.key_file,
        "cert" => &files.cert_file,
        "chain" => &files.chain_file,
        _ => &files.ca_file,
    }
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn tmp_prefix(target: &Path) -> String {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}{TMP_MARK}")
}

fn parents(files: &FilePaths) -> BTreeSet<&Path> {
    [
        &files.cert_file,
        &files.key_file,
        &files.chain_file,
        &files.ca_file,
    ]
    .into_iter()
    .map(|p| parent(p))
    .collect()
}

fn sync_parents(files: &FilePaths) -> Result<(), StoreError> {
    parents(files).into_iter().try_for_each(fsio::sync_dir)
}

pub(super) fn swap(
    store: &Store,
    files: &FilePaths,
    material: &VerifiedMaterial,
) -> Result<SwapReport, StoreError> {
    fsio::ensure_dir(&store.dir, store.ownership)?;
    for dir in parents(files) {
        fsio::ensure_dir(dir, store.ownership)?;
    }
    let journal_path = store.dir.join(JOURNAL_FILE);
    let mut staged: Vec<JournalEntry> = Vec::new();
    let written = (|| {
        for (stem, text, is_key) in super::contents(material) {
            let target = target_for(files, stem);
            let tmp = parent(target).join(format!("{}{}", tmp_prefix(target), fsio::nonce()));
            store.step(&tmp)?;
            let mode = if is_key {
                store.key_mode
            } else {
                store.cert_mode
            };
            staged.push(JournalEntry {
                tmp: tmp.clone(),
                target: target.to_owned(),
            });
            fsio::write_new_file(&tmp, text.as_bytes(), mode, store.ownership)?;
        }
        sync_parents(files)?;
        let journal = Journal {
            version: 1,
            fingerprint: material.info.fingerprint_sha256.clone(),
            entries: staged
                .iter()
                .map(|e| JournalEntry {
                    tmp: e.tmp.clone(),
                    target: e.target.clone(),
                })
                .collect(),
        };
        let json = serde_json::to_vec_pretty(&journal).map_err(|e| StoreError::Corrupt {
            path: journal_path.clone(),
            reason: e.to_string(),
        })?;
        store.step(&journal_path)?;
        fsio::write_atomic(&journal_path, &json, 0o600)
    })();
    if let Err(e) = written {
        if store.cleans_up() {
            for entry in &staged {
                let _ = fsio::remove_file(&entry.tmp);
            }
        }
        return Err(e);
    }

    let mut touched: Vec<PathBuf> = vec![journal_path.clone()];
    for (done, entry) in staged.iter().enumerate() {
        let renamed = store
            .step(&entry.target)
            .and_then(|()| fsio::rename(&entry.tmp, &entry.target));
        if let Err(e) = renamed {
            if !store.cleans_up() {
                return Err(e);
            }
            if done == 0 {
                // Nothing was replaced yet: roll back.
                for entry in &staged {
                    let _ = fsio::remove_file(&entry.tmp);
                }
                let _ = fsio::remove_file(&journal_path);
                return Err(e);
            }
            // Some files are new already: finish now, or leave the journal for `recover`.
            complete(&staged)?;
            break;
        }
        touched.push(entry.target.clone());
    }
    sync_parents(files)?;
    fsio::remove_file(&journal_path)?;
    fsio::sync_dir(&store.dir)?;
    touched.extend(staged.iter().map(|e| e.tmp.clone()));
    Ok(SwapReport {
        fingerprint: material.info.fingerprint_sha256.clone(),
        generation: None,
        touched,
        pruned: Vec::new(),
        finished_at: SystemTime::now(),
    })
}

/// Renames every staged file that is still there over its target.
fn complete(entries: &[JournalEntry]) -> Result<(), StoreError> {
    for entry in entries {
        if std::fs::symlink_metadata(&entry.tmp).is_ok() {
            fsio::rename(&entry.tmp, &entry.target)?;
        }
    }
    Ok(())
}

pub(super) fn recover(
    store: &Store,
    files: &FilePaths,
    report: &mut RecoveryReport,
) -> Result<(), StoreError> {
    let journal_path = store.dir.join(JOURNAL_FILE);
    if let Some(text) = fsio::read_text(&journal_path)? {
        let journal: Journal = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
            path: journal_path.clone(),
            reason: e.to_string(),
        })?;
        check_journal(&journal_path, &journal, files)?;
        complete(&journal.entries)?;
        sync_parents(files)?;
        fsio::remove_file(&journal_path)?;
        fsio::sync_dir(&store.dir)?;
        report.completed_journal = true;
    }
    for target in [
        &files.cert_file,
        &files.key_file,
        &files.chain_file,
        &files.ca_file,
    ] {
        let prefix = tmp_prefix(target);
        let dir = parent(target);
        for name in fsio::list_dir(dir)? {
            if name.starts_with(&prefix) {
                let path = dir.join(&name);
                if fsio::remove_file(&path)? {
                    report.removed.push(path);
                }
            }
        }
    }
    Ok(())
}

/// A journal may only rename our own temporary files over the configured targets.
fn check_journal(path: &Path, journal: &Journal, files: &FilePaths) -> Result<(), StoreError> {
    let configured = [
        &files.cert_file,
        &files.key_file,
        &files.chain_file,
        &files.ca_file,
    ];
    for entry in &journal.entries {
        let tmp_ok = parent(&entry.tmp) == parent(&entry.target)
            && entry
                .tmp
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&tmp_prefix(&entry.target)));
        if !configured.contains(&&entry.target) || !tmp_ok {
            return Err(StoreError::JournalMismatch {
                path: path.to_owned(),
                entry: entry.target.clone(),
            });
        }
    }
    Ok(())
}

pub(super) fn load(files: &FilePaths) -> Result<Option<CurrentMaterial>, StoreError> {
    let paths = ConsumerPaths {
        cert: files.cert_file.clone(),
        key: files.key_file.clone(),
        chain: files.chain_file.clone(),
        ca: files.ca_file.clone(),
    };
    let all = [&paths.cert, &paths.key, &paths.chain, &paths.ca];
    let mut texts: [Option<String>; 4] = Default::default();
    for (slot, path) in texts.iter_mut().zip(all) {
        *slot = fsio::read_text(path)?;
    }
    let Some(present) = texts.iter().position(Option::is_some) else {
        return Ok(None);
    };
    if let Some(missing) = texts.iter().position(Option::is_none) {
        return Err(StoreError::Incomplete {
            missing: all[missing].clone(),
            present: all[present].clone(),
        });
    }
    let texts = texts.map(Option::unwrap_or_default);
    super::assemble(&paths, texts, None).map(Some)
}
