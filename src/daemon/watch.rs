//! Watches certificate directories for changes made by someone else (a manual `enroll`,
//! a configuration-management tool) and reports which certificate changed. Does not
//! decide whether a change matters: the certificate's task compares fingerprints, so the
//! daemon's own swaps settle without a loop.

use std::collections::{HashMap, HashSet};
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
    dirs: HashMap<PathBuf, String>,
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
        self.dirs.insert(dir.to_path_buf(), name.to_owned());
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

    pub fn unwatch(&mut self, dir: &Path) {
        if self.dirs.remove(dir).is_some() && !self.via_parent.remove(dir) {
            let _ = self.watcher.unwatch(dir);
        }
    }

    /// Which certificate a changed path belongs to, if any: the path is the directory
    /// itself, a file in it, or the directory seen from its parent.
    pub fn owner_of(&self, path: &Path) -> Option<&str> {
        // Two lookups rather than a scan: every file event of every renewal comes here.
        self.dirs
            .get(path)
            .or_else(|| path.parent().and_then(|parent| self.dirs.get(parent)))
            .map(String::as_str)
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

        assert_eq!(watcher.owner_of(&orders), Some("orders"));
        assert_eq!(watcher.owner_of(&orders.join("state.json")), Some("orders"));
        assert_eq!(watcher.owner_of(&billing.join("current")), Some("billing"));
        assert_eq!(
            watcher.owner_of(&orders.join("gen-1").join("key.pem")),
            None
        );
        assert_eq!(watcher.owner_of(&folder.path().join("other")), None);
        assert_eq!(watcher.owner_of(folder.path()), None);
    }
}
