//! Durable file-system primitives for the store: files created with their final mode and
//! owner before the first byte, fsync of files and directories, atomic symlink
//! replacement. Does not know about certificates or layouts.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::StoreError;

/// Who owns what the store creates, and with which modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ownership {
    pub owner: Option<u32>,
    pub group: Option<u32>,
}

impl Ownership {
    /// 0755, or 0750 when a group is set (the group may enter, others may not).
    pub fn dir_mode(self) -> u32 {
        if self.group.is_some() { 0o750 } else { 0o755 }
    }

    fn apply(self, file: &File, path: &Path) -> Result<(), StoreError> {
        if self.owner.is_none() && self.group.is_none() {
            return Ok(());
        }
        std::os::unix::fs::fchown(file, self.owner, self.group)
            .map_err(|e| StoreError::io("changing the owner of", path, e))
    }
}

/// A short random suffix for temporary names.
pub(super) fn nonce() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Creates `path` (which must not exist) with exactly `mode` and the ownership, writes
/// `contents` and fsyncs it. `create_new` is O_CREAT|O_EXCL: an existing file or a
/// planted symlink makes it fail. The mode is set on the still-empty file, so neither the
/// umask nor a window of wider permissions applies.
pub(super) fn write_new_file(
    path: &Path,
    contents: &[u8],
    mode: u32,
    ownership: Ownership,
) -> Result<(), StoreError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| StoreError::io("creating", path, e))?;
    ownership.apply(&file, path)?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| StoreError::io("setting the mode of", path, e))?;
    file.write_all(contents)
        .map_err(|e| StoreError::io("writing", path, e))?;
    file.sync_all()
        .map_err(|e| StoreError::io("syncing", path, e))?;
    Ok(())
}

/// Creates the directory `path` (which must not exist) with exactly the ownership's
/// directory mode.
pub(super) fn create_dir_exact(path: &Path, ownership: Ownership) -> Result<(), StoreError> {
    let mode = ownership.dir_mode();
    fs::DirBuilder::new()
        .mode(mode)
        .create(path)
        .map_err(|e| StoreError::io("creating the directory", path, e))?;
    let dir = File::open(path).map_err(|e| StoreError::io("opening", path, e))?;
    ownership.apply(&dir, path)?;
    dir.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| StoreError::io("setting the mode of", path, e))?;
    Ok(())
}

/// Makes sure `dir` exists: missing parents are created with the default mode, `dir`
/// itself with the ownership's directory mode. An existing directory is left as it is.
pub(super) fn ensure_dir(dir: &Path, ownership: Ownership) -> Result<(), StoreError> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(StoreError::io(
                "using as a directory",
                dir,
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "exists and is not a directory",
                ),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io("inspecting", dir, e)),
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)
            .map_err(|e| StoreError::io("creating the directory", parent, e))?;
    }
    match create_dir_exact(dir, ownership) {
        Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
            Ok(())
        }
        other => other,
    }?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// fsync a directory so that the entries created, renamed or removed in it are durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("syncing the directory", dir, e))
}

/// rename(2), with the error naming both paths.
pub(super) fn rename(from: &Path, to: &Path) -> Result<(), StoreError> {
    fs::rename(from, to).map_err(|source| StoreError::Rename {
        from: from.to_owned(),
        to: to.to_owned(),
        source,
    })
}

/// Points the symlink `dir/name` at `target`, atomically: a temporary symlink renamed
/// over it. The caller fsyncs `dir`.
pub(super) fn replace_symlink(dir: &Path, name: &str, target: &Path) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{name}.tmp-{}", nonce()));
    std::os::unix::fs::symlink(target, &tmp)
        .map_err(|e| StoreError::io("creating the symlink", &tmp, e))?;
    rename(&tmp, &dir.join(name)).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// The target of a symlink, `None` when it does not exist.
pub(super) fn read_link(path: &Path) -> Result<Option<PathBuf>, StoreError> {
    match fs::read_link(path) {
        Ok(target) => Ok(Some(target)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("reading the symlink", path, e)),
    }
}

/// A whole file as text, `None` when it does not exist.
pub(super) fn read_text(path: &Path) -> Result<Option<String>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| StoreError::Corrupt {
                path: path.to_owned(),
                reason: "not UTF-8 text".into(),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("reading", path, e)),
    }
}

/// Replaces `path` with `contents` by temp file + fsync + rename + directory fsync.
pub(super) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!("{name}.tmp-{}", nonce()));
    let own = Ownership {
        owner: None,
        group: None,
    };
    let result = write_new_file(&tmp, contents, mode, own).and_then(|()| rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

/// Removes a file or symlink; a missing one is fine.
pub(super) fn remove_file(path: &Path) -> Result<bool, StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::io("removing", path, e)),
    }
}

/// Removes a directory tree; a missing one is fine.
pub(super) fn remove_dir_all(path: &Path) -> Result<bool, StoreError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::io("removing the directory", path, e)),
    }
}

/// The names in a directory (empty when it does not exist).
pub(super) fn list_dir(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("listing", dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("listing", dir, e))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}
