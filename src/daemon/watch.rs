//! Watches certificate directories for changes made by someone else (a manual `enroll`,
//! a configuration-management tool) and reports which certificate changed. Does not
//! decide whether a change matters: the certificate's task compares fingerprints, so the
//! daemon's own swaps settle without a loop.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// A burst of events (one `touch` is three or four) is folded into one notice after
/// this quiet period; well under the one-second promise.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// Keeps the OS watcher alive and maps directories to certificate names.
pub struct DirWatcher {
    watcher: RecommendedWatcher,
    /// Every certificate with a file in the directory: with the files layout several
    /// certificates may share one (`/etc/ssl/app/a.crt`, `/etc/ssl/app/b.crt`), and a
    /// change there concerns each of them.
    dirs: HashMap<PathBuf, BTreeSet<String>>,
    /// Directories that did not exist yet, watched through their parent until they appear.
    via_parent: HashSet<PathBuf>,
}

impl DirWatcher {
    /// Starts a watcher whose raw events (the certificate names they concern) arrive
    /// on the returned channel.
    pub fn new() -> notify::Result<(Self, mpsc::UnboundedReceiver<PathBuf>)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else { return };
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            for path in event.paths {
                // The receiver only disappears at shutdown.
                let _ = tx.send(path);
            }
        })?;
        Ok((
            Self {
                watcher,
                dirs: HashMap::new(),
                via_parent: HashSet::new(),
            },
            rx,
        ))
    }

    /// Watches `dir` (not recursively: generations are renamed into it) for `name`.
    /// A directory that does not exist yet is watched through its parent until
    /// [`DirWatcher::appeared`] sees it created. Calling it again after the directory was
    /// removed or replaced watches what is there now.
    pub fn watch(&mut self, name: &str, dir: &Path) -> notify::Result<()> {
        if dir.is_dir() {
            self.watcher.watch(dir, RecursiveMode::NonRecursive)?;
        } else {
            self.watcher
                .watch(dir.parent().unwrap_or(dir), RecursiveMode::NonRecursive)?;
            self.via_parent.insert(dir.to_path_buf());
        }
        self.dirs
            .entry(dir.to_path_buf())
            .or_default()
            .insert(name.to_owned());
        Ok(())
    }

    /// Called for every changed path: when it is a watched directory that has just been
    /// created, watch it directly, so changes inside it are seen from now on. (Whatever
    /// was written before this point is found by the look the change itself triggers.)
    pub fn appeared(&mut self, path: &Path) {
        if self.via_parent.contains(path)
            && path.is_dir()
            && self
                .watcher
                .watch(path, RecursiveMode::NonRecursive)
                .is_ok()
        {
            self.via_parent.remove(path);
        }
    }

    /// `name` no longer cares about `dir`; the directory stays watched while another
    /// certificate still has files in it.
    pub fn unwatch(&mut self, name: &str, dir: &Path) {
        let Some(names) = self.dirs.get_mut(dir) else {
            return;
        };
        names.remove(name);
        if !names.is_empty() {
            return;
        }
        self.dirs.remove(dir);
        if !self.via_parent.remove(dir) {
            let _ = self.watcher.unwatch(dir);
        }
    }

    /// The certificates a changed path belongs to: those of the path itself (a watched
    /// directory, or one seen from its parent) and those of its parent directory.
    pub fn owners_of(&self, path: &Path) -> BTreeSet<&str> {
        // Two lookups rather than a scan: every file event of every renewal comes here.
        let own = self.dirs.get(path);
        let parents = path.parent().and_then(|parent| self.dirs.get(parent));
        own.into_iter()
            .chain(parents)
            .flatten()
            .map(String::as_str)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_belongs_to_the_certificate_of_its_directory_or_of_itself() {
        let folder = tempfile::tempdir().unwrap();
        let orders = folder.path().join("orders");
        let billing = folder.path().join("billing");
        std::fs::create_dir(&orders).unwrap();
        std::fs::create_dir(&billing).unwrap();
        let (mut watcher, _events) = DirWatcher::new().unwrap();
        watcher.watch("orders", &orders).unwrap();
        watcher.watch("billing", &billing).unwrap();

        assert_eq!(watcher.owners_of(&orders), owners(&["orders"]));
        assert_eq!(
            watcher.owners_of(&orders.join("state.json")),
            owners(&["orders"])
        );
        assert_eq!(
            watcher.owners_of(&billing.join("current")),
            owners(&["billing"])
        );
        assert_eq!(
            watcher.owners_of(&orders.join("gen-1").join("key.pem")),
            owners(&[])
        );
        assert_eq!(watcher.owners_of(&folder.path().join("other")), owners(&[]));
        assert_eq!(watcher.owners_of(folder.path()), owners(&[]));
    }

    fn owners<'a>(names: &[&'a str]) -> BTreeSet<&'a str> {
        names.iter().copied().collect()
    }

    #[test]
    fn a_shared_directory_belongs_to_every_certificate_with_files_in_it() {
        let folder = tempfile::tempdir().unwrap();
        let shared = folder.path().join("ssl");
        let orders = folder.path().join("orders");
        std::fs::create_dir(&shared).unwrap();
        std::fs::create_dir(&orders).unwrap();
        let (mut watcher, _events) = DirWatcher::new().unwrap();
        watcher.watch("orders", &orders).unwrap();
        watcher.watch("orders", &shared).unwrap();
        watcher.watch("billing", &shared).unwrap();

        assert_eq!(
            watcher.owners_of(&shared.join("billing.crt")),
            owners(&["billing", "orders"])
        );
        // A directory that is both watched and inside a watched one concerns both sets.
        watcher.watch("audit", folder.path()).unwrap();
        assert_eq!(watcher.owners_of(&orders), owners(&["audit", "orders"]));

        watcher.unwatch("orders", &shared);
        assert_eq!(
            watcher.owners_of(&shared.join("orders.crt")),
            owners(&["billing"])
        );
        watcher.unwatch("billing", &shared);
        assert_eq!(watcher.owners_of(&shared.join("orders.crt")), owners(&[]));
    }
}
