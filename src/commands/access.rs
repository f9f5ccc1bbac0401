//! Says which permission a refused read lacked: the path that refused, its mode, owner and
//! group, and who asked. Does not change permissions.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group, Uid, User};

/// Whether an I/O error in `error`'s cause chain refused access.
pub fn denied(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && io.kind() == io::ErrorKind::PermissionDenied
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// Why `path` cannot be read by this process, in one sentence: the nearest path that this
/// process may look at (`path` itself, or the directory above it that refuses to be
/// searched), with its mode, owner and group, and whether this process is in that group.
pub fn hint(path: &Path) -> String {
    let (at, meta) = match nearest_visible(path) {
        Some(found) => found,
        None => return format!("{} cannot be reached", path.display()),
    };
    let user = user_name(Uid::effective());
    let owner = user_name(Uid::from_raw(meta.uid()));
    let known_group = Group::from_gid(Gid::from_raw(meta.gid())).ok().flatten();
    let group = group_name(Gid::from_raw(meta.gid()));
    let member = in_group(Gid::from_raw(meta.gid()));
    let what = if at == path {
        at.display().to_string()
    } else {
        format!("the directory {}", at.display())
    };
    let advice = if member {
        "its mode gives the group no access".to_owned()
    } else if known_group.is_some() && User::from_uid(Uid::effective()).is_ok_and(|u| u.is_some()) {
        format!(
            "user {user} is not in group {group} (add it with `sudo usermod -aG {group} {user}`, then log in again)"
        )
    } else {
        format!("{user} is not in group {group}")
    };
    format!(
        "{what} is mode {:04o}, owner {owner}, group {group}, and {advice}",
        meta.mode() & 0o7777
    )
}

fn nearest_visible(path: &Path) -> Option<(PathBuf, std::fs::Metadata)> {
    let mut at = Some(path);
    while let Some(p) = at {
        if let Ok(meta) = std::fs::symlink_metadata(p) {
            return Some((p.to_owned(), meta));
        }
        at = p.parent().filter(|parent| !parent.as_os_str().is_empty());
    }
    None
}

fn user_name(uid: Uid) -> String {
    match User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => format!("uid {uid}"),
    }
}

fn group_name(gid: Gid) -> String {
    match Group::from_gid(gid) {
        Ok(Some(group)) => group.name,
        _ => format!("gid {gid}"),
    }
}

/// Whether this process holds `gid` (as its group or a supplementary group): group
/// membership granted after login counts only in a new login session.
fn in_group(gid: Gid) -> bool {
    Gid::effective() == gid || nix::unistd::getgroups().is_ok_and(|groups| groups.contains(&gid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_refused_read_is_found_anywhere_in_the_cause_chain() {
        let refused = io::Error::from(io::ErrorKind::PermissionDenied);
        let wrapped = anyhow::Error::new(refused).context("reading /x");
        assert!(denied(wrapped.as_ref()));
        let missing = anyhow::Error::new(io::Error::from(io::ErrorKind::NotFound));
        assert!(!denied(missing.as_ref()));
    }

    #[test]
    fn the_hint_names_the_path_its_mode_owner_and_group() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let text = hint(&file);
        let owner = user_name(Uid::effective());
        assert!(
            text.starts_with(&format!("{} is mode 0640, owner ", file.display())),
            "{text}"
        );
        assert!(text.contains(&format!("owner {owner}")), "{text}");
        // The test's own group: it is a member.
        assert!(text.contains("gives the group no access"), "{text}");
    }

    #[test]
    fn a_path_below_an_unreachable_directory_names_that_directory() {
        let dir = tempfile::tempdir().unwrap();
        let text = hint(&dir.path().join("orders/state.json"));
        assert!(
            text.starts_with(&format!("the directory {} is mode", dir.path().display())),
            "{text}"
        );
    }
}
