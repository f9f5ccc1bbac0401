//! What is on disk and how tests arrange it: the consumer files of a certificate folder,
//! fingerprints, leftovers of interrupted writes, modes and owners, a small tmpfs, a full
//! file system. Reads and arranges; asserts nothing itself.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use kyma_certd::pki::keys::PrivateKey;
use kyma_certd::pki::x509::CertInfo;

use super::world::FILE_NAMES;

/// What is on disk for a symlink-layout certificate folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnDisk {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub chain: Vec<u8>,
    pub ca: Vec<u8>,
}

impl OnDisk {
    /// Reads the four consumer paths of `dir`.
    pub fn read(dir: &Path) -> OnDisk {
        let [cert, key, chain, ca] = FILE_NAMES.map(|file| {
            fs::read(dir.join(file))
                .unwrap_or_else(|e| panic!("read {file} in {}: {e}", dir.display()))
        });
        OnDisk {
            cert,
            key,
            chain,
            ca,
        }
    }

    pub fn info(&self) -> CertInfo {
        CertInfo::from_pem(std::str::from_utf8(&self.cert).unwrap()).expect("a certificate")
    }

    pub fn fingerprint(&self) -> String {
        self.info().fingerprint_sha256
    }

    /// Whether the key belongs to the certificate.
    pub fn key_matches(&self) -> bool {
        let key =
            PrivateKey::from_pem(std::str::from_utf8(&self.key).unwrap()).expect("a private key");
        key.matches_spki(&self.info().spki_der)
    }
}

/// The fingerprint of the certificate at `dir/cert.pem`, if one is readable.
pub fn fingerprint_on_disk(dir: &Path) -> Option<String> {
    let text = fs::read_to_string(dir.join("cert.pem")).ok()?;
    CertInfo::from_pem(&text).ok().map(|i| i.fingerprint_sha256)
}

/// Names in `dir` that only exist in the middle of a write.
pub fn temporary_leftovers(dir: &Path) -> Vec<String> {
    assert!(dir.is_dir(), "{} is not a folder", dir.display());
    list(dir)
        .into_iter()
        // `.lock` is the store's permanent lock file, not a leftover.
        .filter(|n| n != ".lock")
        .filter(|n| n.contains(".tmp") || n.contains("tmp-") || n.starts_with('.'))
        .collect()
}

/// The names in a directory, sorted (empty when it does not exist).
pub fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// The mode bits of a file, following symlinks.
pub fn mode_of(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// `chown -hR id:id path`.
pub fn chown_tree(path: &Path, id: u32) {
    std::os::unix::fs::lchown(path, Some(id), Some(id))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), id);
        }
    }
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped; `Err` with the
/// reason when this machine does not allow it (not root, no mount namespace rights).
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    pub fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755")])
            .arg("tmpfs")
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            path: path.to_owned(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Writes filler files into `dir` until its file system reports it is full; returns them.
pub fn fill_file_system(dir: &Path) -> Vec<PathBuf> {
    let mut fillers = Vec::new();
    for chunk in [64 * 1024, 4096, 512, 1] {
        loop {
            let path = dir.join(format!(".filler-{}", fillers.len()));
            let written = fs::write(&path, vec![0u8; chunk]);
            fillers.push(path);
            if written.is_err() {
                break;
            }
        }
    }
    fillers
}
