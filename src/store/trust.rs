//! Opens, and creates when asked, the directories the configuration names (`dir`, the
//! folders of the files layout), one path component at a time: each directory is opened
//! relative to the one before with `O_NOFOLLOW|O_DIRECTORY`, created with `mkdirat`, and
//! when running as root every directory on the way, and every symlink followed, is
//! checked for who may change it. Does not read or write files (see `fsio`).
//!
//! The configured path may go through symlinks (`/var/run -> /run`, a volume mounted
//! elsewhere): the administrator chose them. What root must not do is follow a path that
//! another user can rearrange: a directory on the way that someone else owns or may
//! write, or a symlink someone else planted, could send the key anywhere.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt as _;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::StoreError;
use super::fsio::{Dir, Ownership};

/// As many symlinks as the kernel follows in one path.
const MAX_LINKS: usize = 40;

/// The mode of a missing parent that is created on the way (the configured directory
/// itself gets the ownership's mode).
const PARENT_MODE: u32 = 0o755;

/// Opens the directory at `path`; `None` when it (or a directory on the way) does not
/// exist. As root, the path must be one only root and `owner` can change.
pub(super) fn open(path: &Path, owner: Option<u32>) -> Result<Option<Dir>, StoreError> {
    Walk::new(path, owner, None).run()
}

/// Opens the directory at `path`, creating what is missing: parents 0755, the directory
/// itself with the ownership's mode and group. A directory that exists is left as it is.
pub(super) fn ensure(path: &Path, ownership: Ownership) -> Result<Dir, StoreError> {
    Walk::new(path, ownership.owner, Some(ownership))
        .run()?
        .ok_or_else(|| {
            StoreError::io(
                "opening the directory",
                path,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )
        })
}

/// Who may change a directory: only root and `owner` may own it; nobody else may write
/// it, except in a sticky directory of root's on the way (like `/tmp`), where others may
/// add names but never replace ours (the next component is checked in turn).
fn check_directory(
    path: &Path,
    uid: u32,
    mode: u32,
    owner: Option<u32>,
    last: bool,
) -> Result<(), StoreError> {
    let foreign_owner = uid != 0 && Some(uid) != owner;
    let sticky_of_root = uid == 0 && mode & 0o1000 != 0 && !last;
    if foreign_owner || (mode & 0o022 != 0 && !sticky_of_root) {
        return Err(StoreError::Untrusted {
            path: path.to_owned(),
            detail: if foreign_owner {
                format!("it belongs to uid {uid}")
            } else {
                format!("its mode {:04o} lets other users write it", mode & 0o7777)
            },
        });
    }
    Ok(())
}

struct Walk<'a> {
    path: &'a Path,
    owner: Option<u32>,
    /// Create what is missing, with this ownership for the last component.
    create: Option<Ownership>,
    /// Check ownership and modes (as root only: permissions protect everyone else).
    check: bool,
}

impl<'a> Walk<'a> {
    fn new(path: &'a Path, owner: Option<u32>, create: Option<Ownership>) -> Walk<'a> {
        Walk {
            path,
            owner,
            create,
            check: rustix::process::geteuid().is_root(),
        }
    }

    fn io(&self, op: &'static str, at: &Path, e: rustix::io::Errno) -> StoreError {
        StoreError::io(op, at, e.into())
    }

    /// Opens `name` in `parent` as a directory, never through a symlink: `O_PATH` on the
    /// way (search permission is enough, as in a path lookup), readable at the end.
    fn open_at(
        &self,
        parent: &OwnedFd,
        name: &OsString,
        last: bool,
    ) -> Result<OwnedFd, rustix::io::Errno> {
        let how = if last { OFlags::RDONLY } else { OFlags::PATH };
        rustix::fs::openat(
            parent,
            name.as_os_str(),
            how | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    }

    fn check_fd(&self, fd: &OwnedFd, at: &Path, last: bool) -> Result<(), StoreError> {
        if !self.check {
            return Ok(());
        }
        let stat = rustix::fs::fstat(fd).map_err(|e| self.io("inspecting", at, e))?;
        check_directory(at, stat.st_uid, stat.st_mode & 0o7777, self.owner, last)
    }

    fn run(&self) -> Result<Option<Dir>, StoreError> {
        let mut pending: VecDeque<OsString> = VecDeque::new();
        let (start, mut walked) = if self.path.is_absolute() {
            ("/", PathBuf::from("/"))
        } else {
            (".", PathBuf::new())
        };
        push_components(&mut pending, self.path, false);
        let open_start = |root: &str, last: bool| {
            let how = if last { OFlags::RDONLY } else { OFlags::PATH };
            rustix::fs::open(
                root,
                how | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
        };
        let mut fd = open_start(start, pending.is_empty())
            .map_err(|e| self.io("opening the directory", Path::new(start), e))?;
        self.check_fd(&fd, Path::new(start), pending.is_empty())?;
        let mut links = 0;
        let mut created_last = false;
        while let Some(name) = pending.pop_front() {
            let last = pending.is_empty();
            let at = if name == ".." {
                let mut up = walked.clone();
                up.pop();
                up
            } else {
                walked.join(&name)
            };
            let opened = match self.open_at(&fd, &name, last) {
                Err(rustix::io::Errno::NOENT) if self.create.is_some() && name != ".." => {
                    let mode = match (last, self.create) {
                        (true, Some(ownership)) => ownership.dir_mode(),
                        _ => PARENT_MODE,
                    };
                    match rustix::fs::mkdirat(&fd, name.as_os_str(), Mode::from_raw_mode(mode)) {
                        Ok(()) => created_last = last,
                        // Someone else created it meanwhile: it is checked like any other.
                        Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(self.io("creating the directory", &at, e)),
                    }
                    sync_dir(&fd, &walked)?;
                    self.open_at(&fd, &name, last)
                }
                other => other,
            };
            let next = match opened {
                Ok(next) => next,
                Err(rustix::io::Errno::NOENT) => return Ok(None),
                Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
                    let target = self.follow(&fd, &name, &at, &mut links)?;
                    if target.is_absolute() {
                        fd = open_start("/", false)
                            .map_err(|e| self.io("opening the directory", Path::new("/"), e))?;
                        self.check_fd(&fd, Path::new("/"), false)?;
                        walked = PathBuf::from("/");
                    }
                    push_components(&mut pending, &target, true);
                    if pending.is_empty() {
                        // A link to "/" (or "."): the directory itself, opened readable.
                        pending.push_back(OsString::from("."));
                    }
                    continue;
                }
                Err(e) => return Err(self.io("opening the directory", &at, e)),
            };
            self.check_fd(&next, &at, last)?;
            fd = next;
            walked = at;
        }
        let dir = Dir::from_fd(fd, self.path.to_owned());
        if created_last && let Some(ownership) = self.create {
            dir.set_created_ownership(ownership)?;
        }
        Ok(Some(dir))
    }

    /// The target of the symlink `name` in `parent`, if it may be followed: as root, a
    /// link only root or the owner can have made (its directory was checked already).
    fn follow(
        &self,
        parent: &OwnedFd,
        name: &OsString,
        at: &Path,
        links: &mut usize,
    ) -> Result<PathBuf, StoreError> {
        let stat = rustix::fs::statat(parent, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.io("inspecting", at, e))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::Symlink {
            return Err(StoreError::io(
                "using as a directory",
                at,
                std::io::Error::new(
                    std::io::ErrorKind::NotADirectory,
                    "exists and is not a directory",
                ),
            ));
        }
        if self.check && stat.st_uid != 0 && Some(stat.st_uid) != self.owner {
            return Err(StoreError::Untrusted {
                path: at.to_owned(),
                detail: format!("it is a symlink that belongs to uid {}", stat.st_uid),
            });
        }
        *links += 1;
        if *links > MAX_LINKS {
            return Err(self.io("resolving", self.path, rustix::io::Errno::LOOP));
        }
        let target = rustix::fs::readlinkat(parent, name.as_os_str(), Vec::new())
            .map_err(|e| self.io("reading the symlink", at, e))?;
        Ok(PathBuf::from(OsString::from_vec(target.into_bytes())))
    }
}

/// Queues the components of `path` (at the front when `front`: a symlink's target is
/// resolved before what followed the link).
fn push_components(pending: &mut VecDeque<OsString>, path: &Path, front: bool) {
    let names: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    if front {
        for name in names.into_iter().rev() {
            pending.push_front(name);
        }
    } else {
        pending.extend(names);
    }
}

/// fsync of the directory `fd` (possibly an `O_PATH` descriptor) after an entry was made
/// in it.
fn sync_dir(fd: &OwnedFd, path: &Path) -> Result<(), StoreError> {
    let readable = rustix::fs::openat(
        fd,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| StoreError::io("opening the directory", path, e.into()))?;
    rustix::fs::fsync(&readable)
        .map_err(|e| StoreError::io("syncing the directory", path, e.into()))
}
