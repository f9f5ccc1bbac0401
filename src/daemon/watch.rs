//! Watches certificate directories for changes made by someone else (a manual `enroll`,
//! a configuration-management tool) and reports which certificate changed. Does not
//! decide whether a change matters: the certificate's task compares fingerprints, so the
//! daemon's own swaps settle without a loop.

use std::collections::HashMap;
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
            },
            rx,
        ))
    }

    /// Watches `dir` (not recursively: generations are renamed into it) for `name`.
    /// A directory that does not exist yet is watched through its parent. Calling it again
    /// after the directory was removed or replaced watches what is there now.
    pub fn watch(&mut self, name: &str, dir: &Path) -> notify::Result<()> {
        let target = if dir.exists() {
            dir
        } else {
            dir.parent().unwrap_or(dir)
        };
        self.watcher.watch(target, RecursiveMode::NonRecursive)?;
        self.dirs.insert(dir.to_path_buf(), name.to_owned());
        Ok(())
    }

    pub fn unwatch(&mut self, dir: &Path) {
        if self.dirs.remove(dir).is_some() {
            let _ = self.watcher.unwatch(dir);
        }
    }

    /// Which certificate a changed path belongs to, if any: the path is the directory
    /// itself, a file in it, or the directory seen from its parent.
    pub fn owner_of(&self, path: &Path) -> Option<&str> {
        self.dirs
            .iter()
            .find(|(dir, _)| path == dir.as_path() || path.parent() == Some(dir.as_path()))
            .map(|(_, name)| name.as_str())
    }
}
