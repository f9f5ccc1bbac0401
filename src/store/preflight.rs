//! Checks, before a one-time token is spent, that a commit of a new certificate could
//! succeed: `dir` and the files layout's folders exist (or are created), are trusted and
//! writable with the configured modes and ownership, and every path a consumer reads is of
//! the type the store replaces. Changes nothing a consumer sees.

use std::path::Path;

use rustix::fs::FileType;

use super::files::{TMP_MARK, configured};
use super::fsio::{self, Dir};
use super::{Store, StoreError, symlink};
use crate::config::Layout;

impl Store {
    /// Whether a commit could succeed now; the error names the path and what is wrong.
    pub fn preflight(&self) -> Result<(), StoreError> {
        let locked = self.lock()?;
        let dir = &locked.dir;
        // The temporary names recovery removes, should a crash leave one behind.
        probe(
            self,
            dir,
            &format!("{}.tmp-preflight", super::model::STATE_FILE),
        )?;
        match &self.layout {
            Layout::Symlink => {
                for name in [symlink::CERT, symlink::KEY, symlink::CHAIN, symlink::CA] {
                    match dir.kind(name)? {
                        None | Some(FileType::Symlink) => {}
                        Some(_) => {
                            return Err(StoreError::NotSymlink {
                                path: dir.join(name),
                            });
                        }
                    }
                }
            }
            Layout::Files(files) => {
                for target in configured(files) {
                    let (parent, name) = fsio::split(target);
                    let parent = self.ensure_folder(parent)?;
                    expect_regular_or_missing(&parent, &name, target)?;
                    probe(self, &parent, &format!(".{name}{TMP_MARK}preflight"))?;
                }
            }
        }
        Ok(())
    }
}

/// Creates and removes `name` in `dir` as a key would be written (mode and ownership).
fn probe(store: &Store, dir: &Dir, name: &str) -> Result<(), StoreError> {
    // A leftover of an interrupted probe is ours to remove.
    dir.remove_file(name)?;
    let written = dir.write_new(name, b"", store.key_mode, store.ownership);
    let removed = dir.remove_file(name);
    written?;
    removed.map(drop)
}

fn expect_regular_or_missing(dir: &Dir, name: &str, target: &Path) -> Result<(), StoreError> {
    match dir.kind(name)? {
        None | Some(FileType::RegularFile) => Ok(()),
        Some(FileType::Symlink) => Err(StoreError::Symlink {
            path: target.to_owned(),
        }),
        Some(other) => Err(StoreError::io(
            "expecting a regular file at",
            target,
            std::io::Error::other(format!("found {}", kind_name(other))),
        )),
    }
}

fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::Directory => "a directory",
        FileType::Fifo => "a fifo",
        FileType::Socket => "a socket",
        FileType::CharacterDevice | FileType::BlockDevice => "a device",
        _ => "something else",
    }
}
