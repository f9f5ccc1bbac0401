//! Secret values that must never reach a log line, an error message or `Debug` output:
//! the one-time connector token. Does not hold keys (see `protocol::Identity`).

use std::fmt;

use zeroize::Zeroizing;

/// A one-time connector token (Compass `Connector-Token`, Kyma REST `?token=`).
///
/// The text is wiped from memory on drop; `Debug` and `Display` print a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Zeroizing<String>);

impl Token {
    /// Wraps a token as given; surrounding whitespace (a trailing newline from a file) is removed.
    pub fn new(token: impl Into<String>) -> Self {
        let raw = Zeroizing::new(token.into());
        Token(Zeroizing::new(raw.trim().to_owned()))
    }

    /// The token text, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when nothing is left after trimming.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_token() {
        let token = Token::new("s3cr3t-one-time");
        assert!(!format!("{token:?}").contains("s3cr3t"));
        assert!(!format!("{token}").contains("s3cr3t"));
        assert!(!format!("{:?}", Some(&token)).contains("s3cr3t"));
    }

    #[test]
    fn surrounding_whitespace_from_a_token_file_is_removed() {
        assert_eq!(Token::new("  abc\n").expose(), "abc");
        assert!(Token::new(" \n").is_empty());
    }
}
