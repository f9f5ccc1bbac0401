//! Reloading the configuration (SIGHUP, or the file changed: an edit, a Kubernetes
//! ConfigMap update): certificates added, removed or changed get their tasks started,
//! stopped or restarted; the others keep running undisturbed.

use super::*;

impl Supervisor {
    /// Watches the configuration file's directory; without a watch, SIGHUP still works.
    pub(super) fn watch_config(&mut self) {
        let dir = config_dir(&self.config.path);
        if let Err(e) = self.watcher.watch(CONFIG_WATCH, &dir) {
            warn!(dir = %dir.display(), error = %e, "cannot watch the configuration's directory; send SIGHUP after a change");
        }
    }

    /// The configuration's directory settled after a change: reload when the file's
    /// contents differ from what was last read (a missing or unreadable file is a
    /// moment of a replacement: the next change event looks again).
    pub(super) async fn config_file_changed(&mut self) {
        let dir = config_dir(&self.config.path);
        // A directory replaced as a whole is watched again.
        let _ = self.watcher.watch(CONFIG_WATCH, &dir);
        let digest = config_digest(&self.config.path);
        if digest.is_none() || digest == self.config_digest {
            debug!(path = %self.config.path.display(), "the configuration's directory changed, the file did not");
            return;
        }
        self.reload("the configuration file changed").await;
    }

    /// SIGHUP, or a change of the file: a bad new config is rejected and counted; the
    /// old one stays in force.
    pub(super) async fn reload(&mut self, cause: &str) {
        systemd::reloading();
        info!(path = %self.config.path.display(), "{cause}: reloading the configuration");
        // Remembered before the file is parsed: a bad version is reported once, not at
        // every later event in its directory.
        self.config_digest = config_digest(&self.config.path);
        let new = match config::load(&self.config.path) {
            Ok(new) => new,
            Err(e) => {
                self.metrics.config_reload(false);
                error!(
                    "the new configuration is invalid and was not applied; still running on the previous one:\n{e}"
                );
                systemd::ready();
                return;
            }
        };
        // An emptied or truncated file would otherwise stop every renewal and remove every
        // certificate's series, and with them the alerts that watch them.
        if new.certificates.is_empty() && !self.tasks.is_empty() {
            self.metrics.config_reload(false);
            error!(
                "the new configuration has no [[certificate]] and was not applied; still running on the previous one (restart the daemon to run without certificates)"
            );
            systemd::ready();
            return;
        }
        self.metrics.config_reload(true);
        if new.daemon != self.config.daemon || new.metrics != self.config.metrics {
            warn!("changes to [daemon] and [metrics] take effect at the next restart");
        }
        let old: HashMap<String, Arc<CertificateConfig>> = self
            .tasks
            .iter()
            .map(|(name, handle)| (name.clone(), Arc::clone(&handle.cfg)))
            .collect();
        let wanted: HashSet<&str> = new.certificates.iter().map(|c| c.name.as_str()).collect();
        let removed: Vec<String> = old
            .keys()
            .filter(|n| !wanted.contains(n.as_str()))
            .cloned()
            .collect();
        let mut restart = Vec::new();
        let daemon = self.config.daemon.clone();
        let metrics_settings = self.config.metrics.clone();
        let mut new = new;
        for cert in std::mem::take(&mut new.certificates) {
            match old.get(&cert.name) {
                Some(previous) if **previous == cert => {}
                _ => restart.push(Arc::new(cert)),
            }
        }
        self.config = Config {
            daemon,
            metrics: metrics_settings,
            ..new
        };
        // Removed and changed certificates stop together, before any replacement starts:
        // an old task never writes over its successor's metrics. Stopping is quick (tasks
        // abandon their wait, renewal or hook), so the loop stays responsive.
        for name in &removed {
            info!(name = %name, "certificate removed from the configuration");
        }
        let changed: Vec<String> = restart
            .iter()
            .map(|cert| cert.name.clone())
            .filter(|name| old.contains_key(name))
            .collect();
        for name in &changed {
            info!(name = %name, "certificate changed in the configuration; restarting it");
        }
        self.stop(&[removed.as_slice(), changed.as_slice()].concat())
            .await;
        for name in &removed {
            self.metrics.forget(name);
        }
        for cert in restart {
            if !old.contains_key(&cert.name) {
                info!(name = %cert.name, "certificate added to the configuration");
            }
            self.start(cert);
        }
        self.announce();
        systemd::ready();
    }
}

/// SHA-256 of the configuration file's contents (through symlinks, as `load` reads it);
/// `None` when it cannot be read.
pub(super) fn config_digest(path: &std::path::Path) -> Option<Vec<u8>> {
    std::fs::read(path)
        .ok()
        .map(|bytes| crate::pki::x509::sha256(&bytes).as_ref().to_vec())
}

/// The directory holding the configuration file: changes there (an edit, a renamed
/// replacement, the `..data` symlink swap of a Kubernetes ConfigMap volume) may change it.
pub(super) fn config_dir(path: &std::path::Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
