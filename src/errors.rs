//! How errors are printed: one line with the whole cause chain. Used by every log line,
//! `state.json` record and command message that shows an error. Does not classify errors.

/// An error and its causes on one line: "outer: inner: root". A cause whose text is
/// already part of the line is skipped: libraries often repeat their source's message.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("renewing orders")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_is_on_one_line() {
        let error = Outer(std::io::Error::other("connection reset"));
        assert_eq!(error_chain(&error), "renewing orders: connection reset");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("request failed: connection reset")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn a_cause_that_repeats_what_was_said_is_left_out() {
        let error = Repeats(std::io::Error::other("connection reset"));
        assert_eq!(error_chain(&error), "request failed: connection reset");
    }
}
