//! The symlink layout: each swap writes a complete generation directory and then
//! renames one symlink, `current`, to point at it; consumers read `dir/*.pem` and
//! `dir/connection.json`, which point through `current`. Does not handle the files
//! layout (see `files`).

use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use rustix::fs::FileType;

use super::fsio::Dir;
use super::{
    CONNECTION_FILE, ConsumerPaths, CurrentMaterial, NewGeneration, RecoveryReport, Store,
    StoreError, SwapReport,
};

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
/// The files consumers find in `dir`, each a symlink through `current`.
const CONSUMER_LINKS: [&str; 5] = [CERT, KEY, CHAIN, CA, CONNECTION_FILE];

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

/// The generation the symlink `link` points at, if any. Anything but a plain
/// `gen-...` name in `dir` is refused: the link is never followed elsewhere.
pub(super) fn link_target(dir: &Dir, link: &str) -> Result<Option<String>, StoreError> {
    let Some(target) = dir.read_link(link)? else {
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
        path: dir.join(link),
        reason: format!(
            "points at {}, not at a generation directory",
            target.display()
        ),
    })
}

/// The current generation, opened without following symlinks, and its name.
fn current_generation(dir: &Dir) -> Result<Option<(String, Dir)>, StoreError> {
    let Some(name) = link_target(dir, CURRENT)? else {
        return Ok(None);
    };
    match dir.sub(&name)? {
        Some(generation) => Ok(Some((name, generation))),
        None => Err(StoreError::Corrupt {
            path: dir.join(CURRENT),
            reason: format!("points at {name}, which does not exist"),
        }),
    }
}

/// The current certificate's path and text, if there is one.
pub(super) fn current_cert(dir: &Dir) -> Result<Option<(PathBuf, String)>, StoreError> {
    let Some((_, generation)) = current_generation(dir)? else {
        return Ok(None);
    };
    let path = generation.join(CERT);
    Ok(generation.read_text(CERT)?.map(|text| (path, text)))
}

pub(super) fn swap(
    store: &Store,
    dir: &Dir,
    new: &NewGeneration<'_>,
) -> Result<SwapReport, StoreError> {
    let links = consumer_links(new.extra.iter().map(|e| e.name.as_str()));
    check_consumer_paths(dir, &links)?;
    let base = generation_name(&new.material.info.fingerprint_sha256, SystemTime::now());
    let mut name = base.clone();
    let mut n = 1;
    while dir.kind(&name)?.is_some() {
        n += 1;
        name = format!("{base}-{n}");
    }
    let tmp = format!(".tmp-{name}-{}", super::fsio::nonce());
    let mut touched = vec![dir.join(&tmp), dir.join(&name)];

    let staged = write_generation(store, dir, &tmp, new)
        .and_then(|()| store.step(&dir.join(&name)))
        .and_then(|()| dir.rename(&tmp, dir, &name))
        .and_then(|()| dir.sync());
    if let Err(e) = staged {
        if store.cleans_up() {
            let _ = dir.remove_dir_all(&tmp);
            let _ = dir.remove_dir_all(&name);
        }
        return Err(e);
    }

    let old = link_target(dir, CURRENT)?;
    let switched = (|| {
        if let Some(old) = old.as_deref().filter(|old| *old != name) {
            store.step(&dir.join(PREVIOUS))?;
            dir.replace_symlink(PREVIOUS, Path::new(old))?;
        }
        store.step(&dir.join(CURRENT))?;
        dir.replace_symlink(CURRENT, Path::new(&name))
    })();
    if let Err(e) = switched {
        if store.cleans_up() {
            let _ = dir.remove_dir_all(&name);
        }
        return Err(e);
    }
    touched.push(dir.join(PREVIOUS));
    touched.push(dir.join(CURRENT));
    dir.sync()?;

    // The swap is committed; what follows is housekeeping. The links already exist after
    // the first swap: then there is nothing new in `dir` to make durable.
    let changed = ensure_consumer_links(dir, &links)?;
    if !changed.is_empty() {
        dir.sync()?;
    }
    touched.extend(changed);
    let keep = [Some(name.clone()), old];
    let pruned = prune(store, dir, &keep);
    touched.extend(pruned.iter().map(|p| dir.join(p)));
    Ok(SwapReport {
        fingerprint: new.material.info.fingerprint_sha256.clone(),
        generation: Some(name),
        touched,
        pruned,
        finished_at: SystemTime::now(),
    })
}

/// Creates `tmp` and every file of the generation in it, each with its final mode,
/// then fsyncs it.
fn write_generation(
    store: &Store,
    dir: &Dir,
    tmp: &str,
    new: &NewGeneration<'_>,
) -> Result<(), StoreError> {
    store.step(&dir.join(tmp))?;
    let generation = dir.mkdir(tmp, store.ownership)?;
    for (stem, text, is_key) in super::model::contents(new.material) {
        let name = format!("{stem}.pem");
        store.step(&generation.join(&name))?;
        let mode = if is_key {
            store.key_mode
        } else {
            store.cert_mode
        };
        generation.write_new(&name, text.as_bytes(), mode, store.ownership)?;
    }
    store.step(&generation.join(CONNECTION_FILE))?;
    generation.write_new(
        CONNECTION_FILE,
        &new.connection.to_json(),
        store.cert_mode,
        store.ownership,
    )?;
    for extra in new.extra {
        let mode = if extra.secret {
            store.key_mode
        } else {
            store.cert_mode
        };
        generation.write_new(&extra.name, &extra.bytes, mode, store.ownership)?;
    }
    store.step(&generation.join("."))?;
    generation.sync()
}

/// The names consumers find in `dir`: the PEM files, `connection.json` and the outputs.
fn consumer_links<'a>(outputs: impl Iterator<Item = &'a str>) -> Vec<String> {
    CONSUMER_LINKS
        .iter()
        .copied()
        .chain(outputs)
        .map(str::to_owned)
        .collect()
}

/// Refuses to start a swap that could not finish: a consumer path that exists and is
/// not a symlink belongs to someone else.
fn check_consumer_paths(dir: &Dir, links: &[String]) -> Result<(), StoreError> {
    for file in links {
        match dir.kind(file)? {
            Some(kind) if kind != FileType::Symlink => {
                return Err(StoreError::NotSymlink {
                    path: dir.join(file),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Creates or repairs `dir/<file> -> current/<file>`; returns the links it changed.
fn ensure_consumer_links(dir: &Dir, links: &[String]) -> Result<Vec<PathBuf>, StoreError> {
    let mut changed = Vec::new();
    for file in links.iter().map(String::as_str) {
        let target = Path::new(CURRENT).join(file);
        match dir.kind(file)? {
            Some(FileType::Symlink)
                if dir.read_link(file)?.as_deref() == Some(target.as_path()) =>
            {
                continue;
            }
            Some(FileType::Symlink) | None => {}
            Some(_) => {
                return Err(StoreError::NotSymlink {
                    path: dir.join(file),
                });
            }
        }
        dir.replace_symlink(file, &target)?;
        changed.push(dir.join(file));
    }
    Ok(changed)
}

/// Removes generation directories other than those in `keep`. Failures are logged, not
/// returned: the swap already succeeded.
fn prune(store: &Store, dir: &Dir, keep: &[Option<String>]) -> Vec<String> {
    let names = match dir.list() {
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
        match dir.remove_dir_all(&name) {
            Ok(_) => pruned.push(name),
            Err(e) => {
                tracing::warn!(cert = %store.name, error = %e, "cannot remove an old generation")
            }
        }
    }
    pruned
}

pub(super) fn recover(
    store: &Store,
    dir: &Dir,
    report: &mut RecoveryReport,
) -> Result<(), StoreError> {
    for name in dir.list()? {
        if name.starts_with(TMP_GEN_PREFIX) {
            if dir.remove_dir_all(&name)? {
                report.removed.push(dir.join(&name));
            }
        } else if name.contains(".tmp-")
            && dir.kind(&name)? == Some(FileType::Symlink)
            && dir.remove_file(&name)?
        {
            report.removed.push(dir.join(&name));
        }
    }
    let Some(current) = link_target(dir, CURRENT)? else {
        return Ok(());
    };
    let Some(generation) = dir.sub(&current)? else {
        return Ok(());
    };
    // Every file of the current generation is reachable from `dir`, outputs included.
    let names = generation.list()?;
    let outputs = names
        .iter()
        .map(String::as_str)
        .filter(|n| !CONSUMER_LINKS.contains(n));
    ensure_consumer_links(dir, &consumer_links(outputs))?;
    let previous = link_target(dir, PREVIOUS).ok().flatten();
    let pruned = prune(store, dir, &[Some(current), previous]);
    report.removed.extend(pruned.iter().map(|p| dir.join(p)));
    dir.sync()
}

pub(super) fn load(dir: &Dir) -> Result<Option<CurrentMaterial>, StoreError> {
    let Some((name, generation)) = current_generation(dir)? else {
        return Ok(None);
    };
    load_from(name, &generation).map(Some)
}

/// The generation directory `name` in `dir`, `None` when it does not exist.
pub(super) fn load_generation(
    dir: &Dir,
    name: &str,
) -> Result<Option<CurrentMaterial>, StoreError> {
    match dir.sub(name)? {
        Some(generation) => load_from(name.to_owned(), &generation).map(Some),
        None => Ok(None),
    }
}

fn load_from(name: String, generation: &Dir) -> Result<CurrentMaterial, StoreError> {
    let paths = ConsumerPaths {
        cert: generation.join(CERT),
        key: generation.join(KEY),
        chain: generation.join(CHAIN),
        ca: generation.join(CA),
    };
    let mut texts: [String; 4] = Default::default();
    for (slot, file) in texts.iter_mut().zip([CERT, KEY, CHAIN, CA]) {
        *slot = generation
            .read_text(file)?
            .ok_or_else(|| StoreError::Incomplete {
                missing: generation.join(file),
                present: generation.path().to_owned(),
            })?;
    }
    let connection = super::model::read_connection(generation, CONNECTION_FILE);
    super::model::assemble(&paths, texts, Some(name), connection)
}
