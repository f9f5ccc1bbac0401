//! Maps the outcome of a command to the exit codes of DESIGN.md section 2, in one place.

use std::fmt;

/// The process exit codes the contract promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The operation failed: network, server, verification, disk.
    Failed = 1,
    /// Usage or configuration error.
    Usage = 2,
    /// The certificate is missing, expired or revoked: a new one-time token is needed.
    ReenrollmentNeeded = 3,
    /// The certificate is fine, but a dependent was not told about it (an `on_renew`
    /// hook failed; it stays pending and is retried).
    NotNotified = 4,
}

impl Exit {
    /// Which of two outcomes a command reports when several certificates end differently:
    /// the one that needs a person soonest.
    fn severity(self) -> u8 {
        match self {
            Exit::Usage => 4,
            Exit::ReenrollmentNeeded => 3,
            Exit::Failed => 2,
            Exit::NotNotified => 1,
        }
    }

    pub fn is_worse_than(self, other: Exit) -> bool {
        self.severity() > other.severity()
    }
}

/// An error on its way to the top of a command, carrying the exit code it maps to.
pub struct CommandError {
    pub exit: Exit,
    pub error: anyhow::Error,
}

impl CommandError {
    pub fn failed(error: impl Into<anyhow::Error>) -> Self {
        Self {
            exit: Exit::Failed,
            error: error.into(),
        }
    }

    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Self {
            exit: Exit::Usage,
            error: error.into(),
        }
    }

    pub fn reenroll(error: impl Into<anyhow::Error>) -> Self {
        Self {
            exit: Exit::ReenrollmentNeeded,
            error: error.into(),
        }
    }

    pub fn not_notified(error: impl Into<anyhow::Error>) -> Self {
        Self {
            exit: Exit::NotNotified,
            error: error.into(),
        }
    }

    pub fn code(&self) -> u8 {
        self.exit as u8
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `{:#}` prints anyhow's cause chain on one line: "outer: inner: root".
        write!(f, "{:#}", self.error)
    }
}

impl fmt::Debug for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

pub type CommandResult<T = ()> = Result<T, CommandError>;
