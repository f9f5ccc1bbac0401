//! The one-time token in every form the Compass Director hands out (the raw token, the
//! base64 `rawEncoded` JSON blob, the legacy connector URL), read from text (`form`) or a
//! token file (`file`), and the choice of the URL an enrollment starts from (`target`).
//! Sends nothing, does not watch files, and never puts any form of the token into an
//! error or a `Debug` output.

mod file;
mod form;
mod target;

#[cfg(test)]
mod testutil;

pub use file::{MAX_TOKEN_FILE_BYTES, TokenFileError, read_token_file, read_watched_token_file};
pub use form::{OneTimeToken, TokenForm, TokenFormError, accepted_forms};
pub use target::{EnrollTarget, enroll_target};
