//! Durable file-system primitives for the store, relative to an open directory: files
//! created with their final mode and owner before the first byte, fsync of files and
//! directories, atomic symlink replacement. Nothing under a directory is reached through
//! a symlink unless the caller reads the link itself (`O_NOFOLLOW`, `*at` calls), so a
//! planted link can neither redirect a write nor expose another file. Does not know about
//! certificates or layouts.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::StoreError;

/// The largest file the store reads: certificates, keys and JSON are a few KiB, so a
/// bigger one is not ours.
const MAX_READ: u64 = 1024 * 1024;

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

    /// Files get the configured owner and group.
    fn apply(self, fd: impl AsFd, path: &Path) -> Result<(), StoreError> {
        if self.owner.is_none() && self.group.is_none() {
            return Ok(());
        }
        rustix::fs::fchown(
            fd,
            self.owner.map(rustix::fs::Uid::from_raw),
            self.group.map(rustix::fs::Gid::from_raw),
        )
        .map_err(|e| StoreError::io("changing the owner of", path, e.into()))
    }

    /// Directories get the configured group only: they stay the daemon's, so a consumer
    /// that owns the files can read them but never rearrange a generation.
    fn apply_to_dir(self, fd: impl AsFd, path: &Path) -> Result<(), StoreError> {
        Ownership {
            owner: None,
            group: self.group,
        }
        .apply(fd, path)
    }
}

/// A short random suffix for temporary names.
pub(super) fn nonce() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// An open directory; every name below is a single component resolved relative to it.
#[derive(Debug)]
pub(super) struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

fn errno(e: rustix::io::Errno) -> io::Error {
    e.into()
}

impl Dir {
    /// Wraps a directory opened by `trust`, named `path` in messages.
    pub fn from_fd(fd: OwnedFd, path: PathBuf) -> Dir {
        Dir { fd, path }
    }

    /// Gives a directory just created its group and exact mode (the umask may have
    /// narrowed it), on the descriptor: never on whatever the path names meanwhile.
    pub fn set_created_ownership(&self, ownership: Ownership) -> Result<(), StoreError> {
        ownership.apply_to_dir(&self.fd, &self.path)?;
        rustix::fs::fchmod(&self.fd, Mode::from_raw_mode(ownership.dir_mode()))
            .map_err(|e| StoreError::io("setting the mode of", &self.path, errno(e)))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The subdirectory `name`, never through a symlink; `None` when missing.
    pub fn sub(&self, name: &str) -> Result<Option<Dir>, StoreError> {
        let path = self.join(name);
        match rustix::fs::openat(
            &self.fd,
            name,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Some(Dir { fd, path })),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
                Err(StoreError::Symlink { path })
            }
            Err(e) => Err(StoreError::io("opening the directory", &path, errno(e))),
        }
    }

    /// What `name` is, without following a symlink; `None` when missing.
    pub fn kind(&self, name: &str) -> Result<Option<FileType>, StoreError> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(FileType::from_raw_mode(stat.st_mode))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(StoreError::io("inspecting", &self.join(name), errno(e))),
        }
    }

    /// A whole regular file as text, `None` when it does not exist (and only then: any
    /// other failure is an error). A symlink in its place is an error, not followed;
    /// so is anything but a regular file, which is opened `O_NONBLOCK` so that a FIFO
    /// planted there cannot hold up the reader.
    pub fn read_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        let path = self.join(name);
        let fd = match rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(rustix::io::Errno::LOOP) => return Err(StoreError::Symlink { path }),
            Err(e) => return Err(StoreError::io("reading", &path, errno(e))),
        };
        regular_file(&fd, &path)?;
        let mut bytes = Vec::new();
        File::from(fd)
            .take(MAX_READ + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| StoreError::io("reading", &path, e))?;
        if bytes.len() as u64 > MAX_READ {
            zeroize::Zeroize::zeroize(&mut bytes);
            return Err(StoreError::Corrupt {
                path,
                reason: format!("larger than {MAX_READ} bytes"),
            });
        }
        String::from_utf8(bytes).map(Some).map_err(|e| {
            let mut bytes = e.into_bytes();
            zeroize::Zeroize::zeroize(&mut bytes);
            StoreError::Corrupt {
                path,
                reason: "not UTF-8 text".into(),
            }
        })
    }

    /// Creates `name` (which must not exist) with exactly `mode` and the ownership,
    /// writes `contents` and fsyncs it. O_CREAT|O_EXCL|O_NOFOLLOW: an existing file or a
    /// planted symlink makes it fail. The mode is set on the still-empty file, so neither
    /// the umask nor a window of wider permissions applies.
    pub fn write_new(
        &self,
        name: &str,
        contents: &[u8],
        mode: u32,
        ownership: Ownership,
    ) -> Result<(), StoreError> {
        let path = self.join(name);
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .map_err(|e| StoreError::io("creating", &path, errno(e)))?;
        ownership.apply(&fd, &path)?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
            .map_err(|e| StoreError::io("setting the mode of", &path, errno(e)))?;
        let mut file = File::from(fd);
        file.write_all(contents)
            .map_err(|e| StoreError::io("writing", &path, e))?;
        file.sync_all()
            .map_err(|e| StoreError::io("syncing", &path, e))
    }

    /// Overwrites the regular file `name` with zeros, its whole length, and fsyncs it,
    /// so that its contents (a private key) do not outlive the unlink that follows in
    /// the blocks the file system frees. A missing file is fine; a symlink is refused.
    /// (On copy-on-write or flash storage old blocks may survive anyway: this is the
    /// part a program can do.)
    pub fn overwrite_with_zeros(&self, name: &str) -> Result<(), StoreError> {
        let path = self.join(name);
        let fd = match rustix::fs::openat(
            &self.fd,
            name,
            OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(()),
            Err(rustix::io::Errno::LOOP) => return Err(StoreError::Symlink { path }),
            Err(e) => return Err(StoreError::io("opening", &path, errno(e))),
        };
        let size = rustix::fs::fstat(&fd)
            .map_err(|e| StoreError::io("inspecting", &path, errno(e)))?
            .st_size;
        let mut file = File::from(fd);
        let zeros = [0u8; 4096];
        let mut left = u64::try_from(size).unwrap_or(0).min(MAX_READ);
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            file.write_all(&zeros[..n])
                .map_err(|e| StoreError::io("overwriting", &path, e))?;
            left -= n as u64;
        }
        file.sync_all()
            .map_err(|e| StoreError::io("syncing", &path, e))
    }

    /// Creates the subdirectory `name` (which must not exist) with exactly the
    /// ownership's directory mode.
    pub fn mkdir(&self, name: &str, ownership: Ownership) -> Result<Dir, StoreError> {
        let path = self.join(name);
        let mode = ownership.dir_mode();
        rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode))
            .map_err(|e| StoreError::io("creating the directory", &path, errno(e)))?;
        let dir = self.sub(name)?.ok_or_else(|| {
            StoreError::io(
                "opening the directory",
                &path,
                io::Error::from(io::ErrorKind::NotFound),
            )
        })?;
        ownership.apply_to_dir(&dir.fd, &path)?;
        rustix::fs::fchmod(&dir.fd, Mode::from_raw_mode(mode))
            .map_err(|e| StoreError::io("setting the mode of", &path, errno(e)))?;
        Ok(dir)
    }

    /// fsync the directory, so that the entries created, renamed or removed in it are
    /// durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        rustix::fs::fsync(&self.fd)
            .map_err(|e| StoreError::io("syncing the directory", &self.path, errno(e)))
    }

    /// rename(2) of `from` in this directory to `to` in `dest`.
    pub fn rename(&self, from: &str, dest: &Dir, to: &str) -> Result<(), StoreError> {
        rustix::fs::renameat(&self.fd, from, &dest.fd, to).map_err(|e| StoreError::Rename {
            from: self.join(from),
            to: dest.join(to),
            source: errno(e),
        })
    }

    /// The target of the symlink `name`, `None` when it does not exist.
    pub fn read_link(&self, name: &str) -> Result<Option<PathBuf>, StoreError> {
        match rustix::fs::readlinkat(&self.fd, name, Vec::new()) {
            Ok(target) => Ok(Some(PathBuf::from(OsStr::from_bytes(target.as_bytes())))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(StoreError::io(
                "reading the symlink",
                &self.join(name),
                errno(e),
            )),
        }
    }

    /// Points the symlink `name` at `target`, atomically: a temporary symlink renamed
    /// over it. The caller fsyncs the directory.
    pub fn replace_symlink(&self, name: &str, target: &Path) -> Result<(), StoreError> {
        let tmp = format!("{name}.tmp-{}", nonce());
        rustix::fs::symlinkat(target, &self.fd, tmp.as_str())
            .map_err(|e| StoreError::io("creating the symlink", &self.join(&tmp), errno(e)))?;
        self.rename(&tmp, self, name).inspect_err(|_| {
            let _ = self.remove_file(&tmp);
        })
    }

    /// Replaces `name` with `contents` by temp file + fsync + rename + directory fsync.
    pub fn write_atomic(&self, name: &str, contents: &[u8], mode: u32) -> Result<(), StoreError> {
        let tmp = format!("{name}.tmp-{}", nonce());
        let own = Ownership {
            owner: None,
            group: None,
        };
        let result = self
            .write_new(&tmp, contents, mode, own)
            .and_then(|()| self.rename(&tmp, self, name));
        if result.is_err() {
            let _ = self.remove_file(&tmp);
        }
        result?;
        self.sync()
    }

    /// Removes a file or symlink; a missing one is fine.
    pub fn remove_file(&self, name: &str) -> Result<bool, StoreError> {
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(StoreError::io("removing", &self.join(name), errno(e))),
        }
    }

    /// Removes the directory tree `name` without following any symlink inside it; a
    /// missing one is fine.
    pub fn remove_dir_all(&self, name: &str) -> Result<bool, StoreError> {
        let Some(sub) = self.sub(name)? else {
            return Ok(false);
        };
        for child in sub.list()? {
            if sub.kind(&child)? == Some(FileType::Directory) {
                sub.remove_dir_all(&child)?;
            } else {
                sub.remove_file(&child)?;
            }
        }
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(StoreError::io(
                "removing the directory",
                &self.join(name),
                errno(e),
            )),
        }
    }

    /// The names in the directory, sorted (`.` and `..` left out).
    pub fn list(&self) -> Result<Vec<String>, StoreError> {
        let listing_error = |e| StoreError::io("listing", &self.path, errno(e));
        let fd = rustix::fs::openat(
            &self.fd,
            ".",
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(listing_error)?;
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::new(fd).map_err(listing_error)? {
            let entry = entry.map_err(listing_error)?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            if let Ok(name) = std::str::from_utf8(name) {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Opens (creating when missing, mode 0600) the lock file `name`: only the daemon's
    /// user (and root) may open it, so nobody else can hold the lock and stop renewals.
    /// flock works on a read-only descriptor: a read-only directory can still be locked
    /// when the file exists. A lock file that others may open (left by an older version)
    /// is narrowed to 0600 when it is ours; root gives it to the directory's owner.
    pub fn open_lock_file(&self, name: &str) -> Result<File, StoreError> {
        let path = self.join(name);
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let opened = match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
            Err(rustix::io::Errno::NOENT) => rustix::fs::openat(
                &self.fd,
                name,
                flags | OFlags::CREATE,
                Mode::from_raw_mode(0o600),
            ),
            other => other,
        };
        let fd = opened.map_err(|e| match e {
            rustix::io::Errno::LOOP => StoreError::Symlink { path: path.clone() },
            e => StoreError::io("opening the lock file", &path, errno(e)),
        })?;
        let stat = regular_file(&fd, &path)?;
        let me = rustix::process::geteuid();
        // Best effort below: on a read-only file system the lock works all the same.
        if me.is_root() {
            // The lock belongs to the directory's owner (the service user, when root runs
            // a one-shot command in its directory), who could replace it anyway: a
            // root-only lock would lock the daemon out of its own directory.
            let dir_owner = rustix::fs::fstat(&self.fd).ok().map(|d| d.st_uid);
            if let Some(uid) = dir_owner.filter(|&uid| uid != stat.st_uid)
                && let Err(e) = rustix::fs::fchown(&fd, Some(rustix::fs::Uid::from_raw(uid)), None)
            {
                tracing::debug!(path = %path.display(), error = %e, "cannot give the lock file to the directory's owner");
            }
        }
        if stat.st_mode & 0o077 != 0
            && (me.is_root() || stat.st_uid == me.as_raw())
            && let Err(e) = rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600))
        {
            tracing::debug!(path = %path.display(), error = %e, "cannot narrow the lock file to 0600");
        }
        Ok(File::from(fd))
    }
}

/// Refuses anything but a regular file behind `fd` (a FIFO, a device, a socket, a
/// directory), with what it is.
fn regular_file(fd: &OwnedFd, path: &Path) -> Result<rustix::fs::Stat, StoreError> {
    let stat = rustix::fs::fstat(fd).map_err(|e| StoreError::io("inspecting", path, errno(e)))?;
    let kind = FileType::from_raw_mode(stat.st_mode);
    if kind != FileType::RegularFile {
        return Err(StoreError::NotRegular {
            path: path.to_owned(),
            kind: kind_name(kind),
        });
    }
    Ok(stat)
}

fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        _ => "special file",
    }
}

/// The directory holding `path` and the name of `path` in it.
pub(super) fn split(path: &Path) -> (&Path, String) {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir, name)
}
