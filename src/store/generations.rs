//! Every generation a certificate keeps on disk, read one by one (the symlink layout
//! keeps the previous generation for rollback, and older ones until they are pruned; the
//! files layout keeps one set of files), and the removal of one of them with its key
//! overwritten first. What a revocation needs; does not talk to a connector.

use rustix::fs::FileType;

use super::{CONNECTION_FILE, ConsumerPaths, CurrentMaterial, Store, StoreError, symlink};
use crate::config::Layout;

/// Which link names a generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// What consumers read now.
    Current,
    /// Kept for rollback (symlink layout).
    Previous,
    /// Neither: left by a swap whose pruning failed, or by a crash before it.
    Older,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Current => "current",
            Role::Previous => "previous",
            Role::Older => "older",
        }
    }
}

/// One generation kept on disk, with its key.
#[derive(Debug)]
pub struct Generation {
    pub role: Role,
    pub material: CurrentMaterial,
}

impl Store {
    /// Every generation on disk whose files are complete and whose key matches its
    /// certificate: the current one first, then the previous one, then older ones. A
    /// generation that does not load is an error (it may hold a key: the caller must
    /// not think it dealt with everything).
    pub fn generations(&self) -> Result<Vec<Generation>, StoreError> {
        match &self.layout {
            Layout::Files(_) => Ok(self
                .load_current()?
                .map(|material| Generation {
                    role: Role::Current,
                    material,
                })
                .into_iter()
                .collect()),
            Layout::Symlink => {
                let Some(dir) = self.open_dir()? else {
                    return Ok(Vec::new());
                };
                let current = symlink::link_target(&dir, symlink::CURRENT)?;
                let previous = symlink::link_target(&dir, symlink::PREVIOUS).ok().flatten();
                let mut found = Vec::new();
                for name in dir.list()? {
                    if !name.starts_with(symlink::GEN_PREFIX)
                        || dir.kind(&name)? != Some(FileType::Directory)
                    {
                        continue;
                    }
                    let role = if current.as_deref() == Some(name.as_str()) {
                        Role::Current
                    } else if previous.as_deref() == Some(name.as_str()) {
                        Role::Previous
                    } else {
                        Role::Older
                    };
                    if let Some(material) = symlink::load_generation(&dir, &name)? {
                        found.push(Generation { role, material });
                    }
                }
                found.sort_by_key(|g| g.role);
                Ok(found)
            }
        }
    }

    /// Removes `generation` from disk, every file of it overwritten with zeros and
    /// fsync'd before it is unlinked (the key, and keystores that hold it): symlink
    /// layout, its directory and the `current` or `previous` link naming it; files
    /// layout, the four files, `connection.json` and the configured outputs. The
    /// certificate is then missing until the next enrollment.
    pub fn discard(&self, generation: &Generation) -> Result<(), StoreError> {
        let locked = self.lock()?;
        let dir = &locked.dir;
        match &self.layout {
            Layout::Symlink => {
                let Some(name) = generation.material.generation.as_deref() else {
                    return Ok(());
                };
                for link in [symlink::CURRENT, symlink::PREVIOUS] {
                    if symlink::link_target(dir, link).ok().flatten().as_deref() == Some(name) {
                        dir.remove_file(link)?;
                    }
                }
                if dir.kind(symlink::CURRENT)?.is_none() {
                    // The consumer links (`cert.pem -> current/cert.pem`, ...) lead nowhere
                    // now: the next enrollment makes them again.
                    for entry in dir.list()? {
                        if dir.kind(&entry)? == Some(FileType::Symlink)
                            && dir
                                .read_link(&entry)?
                                .is_some_and(|t| t.starts_with(symlink::CURRENT))
                        {
                            dir.remove_file(&entry)?;
                        }
                    }
                }
                dir.sync()?;
                if let Some(sub) = dir.sub(name)? {
                    for file in sub.list()? {
                        if sub.kind(&file)? == Some(FileType::RegularFile) {
                            sub.overwrite_with_zeros(&file)?;
                        }
                    }
                }
                dir.remove_dir_all(name)?;
                dir.sync()
            }
            Layout::Files(files) => {
                let ConsumerPaths {
                    cert,
                    key,
                    chain,
                    ca,
                } = self.consumer_paths();
                // The key first: whatever fails afterwards, it is gone.
                for path in [&key, &cert, &chain, &ca] {
                    let (parent, name) = super::fsio::split(path);
                    if let Some(parent) = self.open_folder(parent)? {
                        parent.overwrite_with_zeros(&name)?;
                        parent.remove_file(&name)?;
                        parent.sync()?;
                    }
                }
                let _ = files;
                for name in self
                    .outputs
                    .iter()
                    .map(String::as_str)
                    .chain([CONNECTION_FILE])
                {
                    dir.overwrite_with_zeros(name)?;
                    dir.remove_file(name)?;
                }
                dir.sync()
            }
        }
    }
}
