//! Token files: the one `enroll --token-file` reads and the one the daemon watches, read
//! within a size limit and wiped after reading. Does not watch them.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::form::{OneTimeToken, TokenFormError};

/// A token file larger than this holds no token (a Kubernetes Secret is at most 1 MiB;
/// a token, even as a blob, is well under 1 KiB).
pub const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

/// Why a token file gave no usable token. No variant carries the file's content.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read the token file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the token file {path} is larger than 64 KiB: it holds no token")]
    TooLarge { path: PathBuf },
    #[error("the token file {path} is not UTF-8 text")]
    NotText { path: PathBuf },
    #[error("the token file {path} holds no usable token")]
    Form {
        path: PathBuf,
        #[source]
        source: TokenFormError,
    },
}

/// Reads and recognises the token in `path` (for `enroll --token-file`, and for a token
/// file the daemon watches). What was read is wiped before this returns.
pub fn read_token_file(path: &Path) -> Result<OneTimeToken, TokenFileError> {
    let mut bytes = Zeroizing::new(Vec::new());
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_TOKEN_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|source| TokenFileError::Read {
            path: path.to_owned(),
            source,
        })?;
    token_from_bytes(path, &bytes)
}

/// The token in what a token file held.
fn token_from_bytes(path: &Path, bytes: &[u8]) -> Result<OneTimeToken, TokenFileError> {
    if bytes.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(TokenFileError::TooLarge {
            path: path.to_owned(),
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| TokenFileError::NotText {
        path: path.to_owned(),
    })?;
    OneTimeToken::parse(text).map_err(|source| TokenFileError::Form {
        path: path.to_owned(),
        source,
    })
}

/// Reads the `token_file` the daemon watches, like [`read_token_file`], but opened
/// `O_NONBLOCK` and only if it is a regular file: a FIFO put there must not hold up the
/// daemon. (Symlinks are followed: secret volumes are made of them.)
pub fn read_watched_token_file(path: &Path) -> Result<OneTimeToken, TokenFileError> {
    use rustix::fs::{FileType, Mode, OFlags};
    let read_error = |source: std::io::Error| TokenFileError::Read {
        path: path.to_owned(),
        source,
    };
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| read_error(e.into()))?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| read_error(e.into()))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let mut bytes = Zeroizing::new(Vec::new());
    std::fs::File::from(fd)
        .take(MAX_TOKEN_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    token_from_bytes(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::TokenForm;
    use crate::token::testutil::{SECRET, compass_blob};

    #[test]
    fn a_token_file_is_read_in_any_form_and_bad_files_are_named_not_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{}\n", compass_blob())).unwrap();
        let parsed = read_token_file(&path).unwrap();
        assert_eq!(parsed.form(), TokenForm::RawEncoded);
        assert_eq!(parsed.token().expose(), SECRET);

        std::fs::write(&path, "tok-s3cr3t_Q tok-s3cr3t_Q").unwrap();
        let err = read_token_file(&path).unwrap_err();
        assert!(matches!(
            err,
            TokenFileError::Form {
                source: TokenFormError::Garbled,
                ..
            }
        ));
        std::fs::write(&path, b"tok-s3cr3t_Q\xff").unwrap();
        assert!(matches!(
            read_token_file(&path),
            Err(TokenFileError::NotText { .. })
        ));
        std::fs::write(&path, "x".repeat(MAX_TOKEN_FILE_BYTES as usize + 1)).unwrap();
        assert!(matches!(
            read_token_file(&path),
            Err(TokenFileError::TooLarge { .. })
        ));
        let missing = dir.path().join("missing");
        let err = read_token_file(&missing).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn a_watched_token_file_that_is_a_fifo_is_an_error_at_once_not_a_wait() {
        let dir = tempfile::tempdir().unwrap();
        let folder = std::fs::File::open(dir.path()).unwrap();
        rustix::fs::mknodat(
            &folder,
            "token",
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let started = std::time::Instant::now();
        let err = read_watched_token_file(&dir.path().join("token")).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        let TokenFileError::Read { source, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(source.to_string(), "not a regular file");

        std::fs::write(dir.path().join("real"), "abc123\n").unwrap();
        let token = read_watched_token_file(&dir.path().join("real")).unwrap();
        assert_eq!(token.token().expose(), "abc123");
        let missing = read_watched_token_file(&dir.path().join("absent")).unwrap_err();
        assert!(
            matches!(missing, TokenFileError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
        );
    }
}
