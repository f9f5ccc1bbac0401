//! HTTP response building blocks: JSON and empty bodies, the request body limit, and the
//! streamed bodies of the stall and oversized faults. Does not route or decide anything.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};

/// The body type of every response.
pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Largest request body accepted (a CSR for a 16k-bit RSA key is far below).
pub(crate) const MAX_REQUEST_BODY: usize = 1024 * 1024;

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("the request body is larger than {MAX_REQUEST_BODY} bytes")]
    TooLarge,
    #[error("the request body could not be read")]
    Read,
}

pub(crate) async fn read_body(body: Incoming) -> Result<Bytes, BodyError> {
    match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Read),
    }
}

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

pub(crate) fn empty() -> Body {
    Empty::new().boxed_unsync()
}

/// A response with a serialised JSON value.
pub(crate) fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    with_body(status, "application/json", full(bytes))
}

pub(crate) fn with_body(
    status: StatusCode,
    content_type: &'static str,
    body: Body,
) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A JSON body, announced in full, of which only the first half arrives: the status and
/// headers are kept, the body is cut (so a client sees a parse error, not a short read).
pub(crate) async fn malformed(response: Response<Body>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let cut = if bytes.len() < 2 {
        Bytes::from_static(b"{\"")
    } else {
        bytes.slice(..bytes.len() / 2)
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, full(cut))
}

/// 200 with headers sent at once, then silence for `duration`, then an empty end.
pub(crate) fn stalled(duration: Duration) -> Response<Body> {
    let stream = futures::stream::once(async move {
        tokio::time::sleep(duration).await;
        Ok::<_, Infallible>(Frame::data(Bytes::new()))
    });
    with_body(
        StatusCode::OK,
        "application/json",
        StreamBody::new(stream).boxed_unsync(),
    )
}

const OVERSIZED_PREFIX: &[u8] = b"{\"data\":{\"result\":{\"certificateChain\":\"";
const CHUNK: usize = 64 * 1024;

/// 200 streaming `total` bytes (chunked, no length announced) of a JSON text that never ends.
pub(crate) fn oversized(total: u64) -> Response<Body> {
    let filler = Bytes::from(vec![b'A'; CHUNK]);
    let prefix_len = OVERSIZED_PREFIX
        .len()
        .min(usize::try_from(total).unwrap_or(usize::MAX));
    let mut left = total.saturating_sub(prefix_len as u64);
    let first = Bytes::from_static(&OVERSIZED_PREFIX[..prefix_len]);
    let rest = std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let take = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
        left -= take as u64;
        Some(filler.slice(..take))
    });
    let stream = futures::stream::iter(std::iter::once(first).chain(rest))
        .map(|bytes| Ok::<_, Infallible>(Frame::data(bytes)));
    with_body(
        StatusCode::OK,
        "application/json",
        StreamBody::new(stream).boxed_unsync(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn oversized_body_has_exactly_the_requested_length() {
        let response = oversized(3 * CHUNK as u64 + 7);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(bytes.len(), 3 * CHUNK + 7);
        assert!(bytes.starts_with(OVERSIZED_PREFIX));
    }

    #[tokio::test]
    async fn malformed_body_is_not_json_but_keeps_the_status() {
        let original = json(
            StatusCode::CREATED,
            &serde_json::json!({"crt": "abc", "x": 1}),
        );
        let response = malformed(original).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_err());
    }
}
