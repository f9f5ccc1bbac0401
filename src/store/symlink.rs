//! The symlink layout: each swap writes a complete generation directory and then
//! renames one symlink, `current`, to point at it; consumers read `dir/*.pem`, which
//! point through `current`. Does not handle the files layout (see `files`).

use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use super::fsio;
use super::{ConsumerPaths, CurrentMaterial, RecoveryReport, Store, StoreError, SwapReport};
use crate::verify::VerifiedMaterial;

pub(super) const CERT: &str = "cert.pem";
pub(super) const KEY: &str = "key.pem";
pub(super) const CHAIN: &str = "chain.pem";
pub(super) const CA: &str = "ca.pem";
pub(super) const CURRENT: &str = "current";
/// Points at the generation that was current before the last swap, kept for rollback
/// and for readers that resolved `current` just before it moved.
pub(super) const PREVIOUS: &str = "previous";
pub(super) const GEN_PREFIX: &str = "gen-";
/// A generation being written; only ever renamed to `gen-...` once complete.
const TMP_GEN_PREFIX: &str = ".tmp-gen-";
const FILES: [&str; 4] = [CERT, KEY, CHAIN, CA];

/// `gen-<UTC YYYYmmddTHHMMSSZ>-<first 8 hex of the SHA-256 fingerprint>`.
fn generation_name(fingerprint: &str, now: SystemTime) -> String {
    let time = time::OffsetDateTime::from(now);
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    );
    let short: String = fingerprint.chars().take(8).collect();
    format!("{GEN_PREFIX}{stamp}-{short}")
}

/// The generation `current` points at, if any.
fn link_target(dir: &Path, link: &str) -> Result<Option<String>, StoreError> {
    let path = dir.join(link);
    let Some(target) = fsio::read_link(&path)? else {
        return Ok(None);
    };
    let mut components = target.components();
    if let (Some(Component::Normal(name)), None) = (components.next(), components.next()) {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with(GEN_PREFIX) {
            return Ok(Some(name));
        }
    }
    Err(StoreError::Corrupt {
        path,
        reason: format!(
            "points at {}, not at a generation directory",
            target.display()
        ),
    })
}

pub(super) fn swap(store: &Store, material: &VerifiedMaterial) -> Result<SwapReport, StoreError> {
    let dir = store.dir.as_path();
    check_consumer_paths(dir)?;
    fsio::ensure_dir(dir, store.ownership)?;
    let base = generation_name(&material.info.fingerprint_sha256, SystemTime::now());
    let mut name = base.clone();
    let mut n = 1;
    while std::fs::symlink_metadata(dir.join(&name)).is_ok() {
        n += 1;
        name = format!("{base}-{n}");
    }
    let generation = dir.join(&name);
    let tmp = dir.join(format!(".tmp-{name}-{}", fsio::nonce()));
    let mut touched = vec![tmp.clone(), generation.clone()];

    let staged = write_generation(store, &tmp, material)
        .and_then(|()| store.step(&generation))
        .and_then(|()| fsio::rename(&tmp, &generation))
        .and_then(|()| fsio::sync_dir(dir));
    if let Err(e) = staged {
        if store.cleans_up() {
            let _ = fsio::remove_dir_all(&tmp);
            let _ = fsio::remove_dir_all(&generation);
        }
        return Err(e);
    }

    let old = link_target(dir, CURRENT)?;
    let switched = (|| {
        if let Some(old) = old.as_deref().filter(|old| *old != name) {
            store.step(&dir.join(PREVIOUS))?;
            fsio::replace_symlink(dir, PREVIOUS, Path::new(old))?;
        }
        store.step(&dir.join(CURRENT))?;
        fsio::replace_symlink(dir, CURRENT, Path::new(&name))
    })();
    if let Err(e) = switched {
        if store.cleans_up() {
            let _ = fsio::remove_dir_all(&generation);
        }
        return Err(e);
    }
    touched.push(dir.join(PREVIOUS));
    touched.push(dir.join(CURRENT));
    fsio::sync_dir(dir)?;

    // The swap is committed; what follows is housekeeping. The links already exist after
    // the first swap: then there is nothing new in `dir` to make durable.
    let links = ensure_consumer_links(dir)?;
    if !links.is_empty() {
        fsio::sync_dir(dir)?;
    }
    touched.extend(links);
    let keep = [Some(name.clone()), old];
    let pruned = prune(store, &keep);
    touched.extend(pruned.iter().map(|p| dir.join(p)));
    Ok(SwapReport {
        fingerprint: material.info.fingerprint_sha256.clone(),
        generation: Some(name),
        touched,
        pruned,
        finished_at: SystemTime::now(),
    })
}

/// Creates `tmp` and the four files in it, each with its final mode, then fsyncs it.
fn write_generation(
    store: &Store,
    tmp: &Path,
    material: &VerifiedMaterial,
) -> Result<(), StoreError> {
    store.step(tmp)?;
    fsio::create_dir_exact(tmp, store.ownership)?;
    for (stem, text, is_key) in super::contents(material) {
        let path = tmp.join(format!("{stem}.pem"));
        store.step(&path)?;
        let mode = if is_key {
            store.key_mode
        } else {
            store.cert_mode
        };
        fsio::write_new_file(&path, text.as_bytes(), mode, store.ownership)?;
    }
    store.step(tmp)?;
    fsio::sync_dir(tmp)
}

/// Refuses to start a swap that could not finish: a consumer path that exists and is
/// not a symlink belongs to someone else.
fn check_consumer_paths(dir: &Path) -> Result<(), StoreError> {
    for file in FILES {
        let path = dir.join(file);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if !meta.file_type().is_symlink() => {
                return Err(StoreError::NotSymlink { path });
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("inspecting", &path, e)),
        }
    }
    Ok(())
}

/// Creates or repairs `dir/<file> -> current/<file>`; returns the links it changed.
fn ensure_consumer_links(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut changed = Vec::new();
    for file in FILES {
        let link = dir.join(file);
        let target = Path::new(CURRENT).join(file);
        match std::fs::symlink_metadata(&link) {
            Ok(meta) if meta.file_type().is_symlink() => {
                if fsio::read_link(&link)?.as_deref() == Some(target.as_path()) {
                    continue;
                }
            }
            Ok(_) => return Err(StoreError::NotSymlink { path: link }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("inspecting", &link, e)),
        }
        fsio::replace_symlink(dir, file, &target)?;
        changed.push(link);
    }
    Ok(changed)
}

/// Removes generation directories other than those in `keep`. Failures are logged, not
/// returned: the swap already succeeded.
fn prune(store: &Store, keep: &[Option<String>]) -> Vec<String> {
    let names = match fsio::list_dir(&store.dir) {
        Ok(names) => names,
        Err(e) => {
            tracing::warn!(cert = %store.name, error = %e, "cannot list old generations");
            return Vec::new();
        }
    };
    let mut pruned = Vec::new();
    for name in names {
        if !name.starts_with(GEN_PREFIX) || keep.iter().flatten().any(|k| *k == name) {
            continue;
        }
        match fsio::remove_dir_all(&store.dir.join(&name)) {
            Ok(_) => pruned.push(name),
            Err(e) => {
                tracing::warn!(cert = %store.name, error = %e, "cannot remove an old generation")
            }
        }
    }
    pruned
}

pub(super) fn recover(store: &Store, report: &mut RecoveryReport) -> Result<(), StoreError> {
    let dir = store.dir.as_path();
    for name in fsio::list_dir(dir)? {
        let path = dir.join(&name);
        if name.starts_with(TMP_GEN_PREFIX) {
            if fsio::remove_dir_all(&path)? {
                report.removed.push(path);
            }
        } else if name.contains(".tmp-")
            && std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink())
            && fsio::remove_file(&path)?
        {
            report.removed.push(path);
        }
    }
    let Some(current) = link_target(dir, CURRENT)? else {
        return Ok(());
    };
    if !dir.join(&current).is_dir() {
        return Ok(());
    }
    ensure_consumer_links(dir)?;
    let previous = link_target(dir, PREVIOUS).ok().flatten();
    let pruned = prune(store, &[Some(current), previous]);
    report.removed.extend(pruned.iter().map(|p| dir.join(p)));
    fsio::sync_dir(dir)
}

pub(super) fn load(store: &Store) -> Result<Option<CurrentMaterial>, StoreError> {
    let dir = store.dir.as_path();
    let Some(name) = link_target(dir, CURRENT)? else {
        return Ok(None);
    };
    let generation = dir.join(&name);
    if !generation.is_dir() {
        return Err(StoreError::Corrupt {
            path: dir.join(CURRENT),
            reason: format!("points at {name}, which does not exist"),
        });
    }
    let paths = ConsumerPaths {
        cert: generation.join(CERT),
        key: generation.join(KEY),
        chain: generation.join(CHAIN),
        ca: generation.join(CA),
    };
    let mut texts: [String; 4] = Default::default();
    for (slot, path) in texts
        .iter_mut()
        .zip([&paths.cert, &paths.key, &paths.chain, &paths.ca])
    {
        *slot = fsio::read_text(path)?.ok_or_else(|| StoreError::Incomplete {
            missing: path.clone(),
            present: generation.clone(),
        })?;
    }
    super::assemble(&paths, texts, Some(name)).map(Some)
}
