//! The files layout: four plain files at configured paths (and `connection.json` plus
//! any extra outputs in `dir`), each replaced by temp file + fsync + rename, with a
//! journal in `dir` so that a crash between the renames is completed before anything
//! reads or replaces the files again. Does not handle the symlink layout (see `symlink`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::fsio::{self, Dir};
use super::{
    CONNECTION_FILE, ConsumerPaths, CurrentMaterial, JOURNAL_FILE, NewGeneration, RecoveryReport,
    Store, StoreError, SwapReport,
};
use crate::config::FilePaths;

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

#[derive(Debug, Clone, Serialize, Deserialize)]
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

pub(super) fn configured(files: &FilePaths) -> [&Path; 4] {
    [
        &files.cert_file,
        &files.key_file,
        &files.chain_file,
        &files.ca_file,
    ]
}

fn tmp_prefix(name: &str) -> String {
    format!(".{name}{TMP_MARK}")
}

/// The open directories holding the configured files, by path.
type Parents = BTreeMap<PathBuf, Dir>;

fn open_parents(store: &Store, files: &FilePaths) -> Result<Parents, StoreError> {
    let mut parents = Parents::new();
    for target in configured(files) {
        let (parent, _) = fsio::split(target);
        if !parents.contains_key(parent) {
            parents.insert(parent.to_owned(), store.ensure_folder(parent)?);
        }
    }
    Ok(parents)
}

fn sync_all(parents: &Parents, dir: &Dir) -> Result<(), StoreError> {
    parents.values().try_for_each(Dir::sync)?;
    dir.sync()
}

pub(super) fn swap(
    store: &Store,
    dir: &Dir,
    files: &FilePaths,
    new: &NewGeneration<'_>,
) -> Result<SwapReport, StoreError> {
    let parents = open_parents(store, files)?;
    // (directory, tmp name, target name) of each staged file.
    let mut staged: Vec<(&Dir, String, String)> = Vec::new();
    let written = (|| {
        for (stem, text, is_key) in super::model::contents(new.material) {
            let (parent, name) = fsio::split(target_for(files, stem));
            let parent = &parents[parent];
            let mode = if is_key {
                store.key_mode
            } else {
                store.cert_mode
            };
            stage(store, &mut staged, parent, name, text.as_bytes(), mode)?;
        }
        let json = new.connection.to_json();
        stage(
            store,
            &mut staged,
            dir,
            CONNECTION_FILE.to_owned(),
            &json,
            store.cert_mode,
        )?;
        for extra in new.extra {
            let mode = if extra.secret {
                store.key_mode
            } else {
                store.cert_mode
            };
            stage(
                store,
                &mut staged,
                dir,
                extra.name.clone(),
                &extra.bytes,
                mode,
            )?;
        }
        sync_all(&parents, dir)?;
        let journal = Journal {
            version: 1,
            fingerprint: new.material.info.fingerprint_sha256.clone(),
            entries: staged
                .iter()
                .map(|(parent, tmp, name)| JournalEntry {
                    tmp: parent.join(tmp),
                    target: parent.join(name),
                })
                .collect(),
        };
        let json = serde_json::to_vec_pretty(&journal).map_err(|e| StoreError::Corrupt {
            path: dir.join(JOURNAL_FILE),
            reason: e.to_string(),
        })?;
        store.step(&dir.join(JOURNAL_FILE))?;
        dir.write_atomic(JOURNAL_FILE, &json, 0o600)
    })();
    if let Err(e) = written {
        if store.cleans_up() {
            for (parent, tmp, _) in &staged {
                let _ = parent.remove_file(tmp);
            }
        }
        return Err(e);
    }

    let mut touched: Vec<PathBuf> = vec![dir.join(JOURNAL_FILE)];
    for (done, (parent, tmp, name)) in staged.iter().enumerate() {
        let renamed = store
            .step(&parent.join(name))
            .and_then(|()| parent.rename(tmp, parent, name));
        if let Err(e) = renamed {
            if !store.cleans_up() {
                return Err(e);
            }
            if done == 0 {
                // Nothing was replaced yet: roll back.
                for (parent, tmp, _) in &staged {
                    let _ = parent.remove_file(tmp);
                }
                let _ = dir.remove_file(JOURNAL_FILE);
                return Err(e);
            }
            // Some files are new already: finish now, or leave the journal for the next
            // look at the files.
            for (parent, tmp, name) in &staged[done..] {
                if parent.kind(tmp)?.is_some() {
                    parent.rename(tmp, parent, name)?;
                }
            }
            break;
        }
        touched.push(parent.join(name));
    }
    sync_all(&parents, dir)?;
    dir.remove_file(JOURNAL_FILE)?;
    dir.sync()?;
    touched.extend(staged.iter().map(|(parent, tmp, _)| parent.join(tmp)));
    Ok(SwapReport {
        fingerprint: new.material.info.fingerprint_sha256.clone(),
        generation: None,
        touched,
        pruned: Vec::new(),
        finished_at: SystemTime::now(),
    })
}

/// Writes one temporary file beside its target. It is listed in `staged` before it is
/// written, so a write that fails half-way (a full disk) is cleaned up with the rest.
fn stage<'d>(
    store: &Store,
    staged: &mut Vec<(&'d Dir, String, String)>,
    parent: &'d Dir,
    name: String,
    bytes: &[u8],
    mode: u32,
) -> Result<(), StoreError> {
    let tmp = format!("{}{}", tmp_prefix(&name), fsio::nonce());
    staged.push((parent, tmp.clone(), name));
    store.step(&parent.join(&tmp))?;
    parent.write_new(&tmp, bytes, mode, store.ownership)
}

/// Finishes a swap a crash interrupted: renames every staged file that is still there
/// over its target, then removes the journal. Runs under the directory lock, before
/// every inspection and swap. Returns whether there was a journal.
pub(super) fn complete_journal(
    store: &Store,
    dir: &Dir,
    files: &FilePaths,
) -> Result<bool, StoreError> {
    let Some(text) = dir.read_text(JOURNAL_FILE)? else {
        return Ok(false);
    };
    let journal: Journal = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        path: dir.join(JOURNAL_FILE),
        reason: e.to_string(),
    })?;
    check_journal(&dir.join(JOURNAL_FILE), &journal, dir.path(), files)?;
    let parents = open_parents(store, files)?;
    for entry in &journal.entries {
        let (parent, tmp) = fsio::split(&entry.tmp);
        let (_, target) = fsio::split(&entry.target);
        let parent = match parents.get(parent) {
            Some(open) => open,
            None => dir,
        };
        if parent.kind(&tmp)?.is_some() {
            parent.rename(&tmp, parent, &target)?;
        }
    }
    sync_all(&parents, dir)?;
    dir.remove_file(JOURNAL_FILE)?;
    dir.sync()?;
    tracing::info!(cert = %store.name, fingerprint = %journal.fingerprint, "completed a swap that was interrupted");
    Ok(true)
}

pub(super) fn recover(
    store: &Store,
    dir: &Dir,
    files: &FilePaths,
    report: &mut RecoveryReport,
) -> Result<(), StoreError> {
    report.completed_journal = complete_journal(store, dir, files)?;
    // Only the folders that exist: recovery never recreates one that vanished.
    let mut parents = Parents::new();
    for target in configured(files) {
        let (parent, _) = fsio::split(target);
        if !parents.contains_key(parent)
            && let Some(open) = store.open_folder(parent)?
        {
            parents.insert(parent.to_owned(), open);
        }
    }
    let mut names: Vec<String> = configured(files)
        .into_iter()
        .map(|p| fsio::split(p).1)
        .collect();
    names.push(CONNECTION_FILE.to_owned());
    for parent in parents.values().chain([dir]) {
        for name in parent.list()? {
            if name.contains(TMP_MARK)
                && names.iter().any(|n| name.starts_with(&tmp_prefix(n)))
                && parent.remove_file(&name)?
            {
                report.removed.push(parent.join(&name));
            }
        }
    }
    Ok(())
}

/// A journal may only rename our own temporary files over the configured targets, or
/// over plain names in `dir` (`connection.json`, extra outputs).
fn check_journal(
    path: &Path,
    journal: &Journal,
    dir: &Path,
    files: &FilePaths,
) -> Result<(), StoreError> {
    for entry in &journal.entries {
        let (tmp_parent, tmp_name) = fsio::split(&entry.tmp);
        let (target_parent, target_name) = fsio::split(&entry.target);
        let tmp_ok = tmp_parent == target_parent && tmp_name.starts_with(&tmp_prefix(&target_name));
        let target_ok = configured(files).contains(&entry.target.as_path())
            || (target_parent == dir && !target_name.is_empty() && !target_name.starts_with('.'));
        if !target_ok || !tmp_ok {
            return Err(StoreError::JournalMismatch {
                path: path.to_owned(),
                entry: entry.target.clone(),
            });
        }
    }
    Ok(())
}

pub(super) fn load(
    store: &Store,
    dir: Option<&Dir>,
    files: &FilePaths,
) -> Result<Option<CurrentMaterial>, StoreError> {
    let paths = ConsumerPaths {
        cert: files.cert_file.clone(),
        key: files.key_file.clone(),
        chain: files.chain_file.clone(),
        ca: files.ca_file.clone(),
    };
    let all = [&paths.cert, &paths.key, &paths.chain, &paths.ca];
    let mut texts: [Option<String>; 4] = Default::default();
    for (slot, path) in texts.iter_mut().zip(all) {
        let (parent, name) = fsio::split(path);
        *slot = match store.open_folder(parent)? {
            Some(parent) => parent.read_text(&name)?,
            None => None,
        };
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
    let connection = dir.and_then(|dir| super::model::read_connection(dir, CONNECTION_FILE));
    super::model::assemble(&paths, texts, None, connection).map(Some)
}
