//! What a connector's `Date` header said, set against this host's clock when the answer
//! arrived: the evidence for a clock skew. Does not read the clock to decide anything.

/// What a server's `Date` header said, and when it was received by this host's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerDate {
    pub server: std::time::SystemTime,
    pub local: std::time::SystemTime,
}

impl ServerDate {
    /// How far the server's clock is ahead of this host's, in whole seconds (negative:
    /// behind). The header has one-second resolution.
    pub fn skew_seconds(&self) -> i64 {
        match self.server.duration_since(self.local) {
            Ok(ahead) => ahead.as_secs() as i64,
            Err(behind) => -(behind.duration().as_secs() as i64),
        }
    }
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110's IMF-fixdate).
pub(super) fn parse_http_date(text: &str) -> Option<std::time::SystemTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(text.trim(), &format)
        .ok()
        .map(|t| t.assume_utc().into())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_http_date_is_read_and_compared_with_the_local_clock() {
        let server = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            server,
            std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777)
        );
        assert_eq!(parse_http_date("yesterday"), None);
        let date = ServerDate {
            server,
            local: server - Duration::from_secs(90),
        };
        assert_eq!(date.skew_seconds(), 90);
        let date = ServerDate {
            server,
            local: server + Duration::from_millis(2500),
        };
        assert_eq!(date.skew_seconds(), -2);
    }
}
