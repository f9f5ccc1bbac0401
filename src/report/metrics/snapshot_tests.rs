//! Tests of the cached encodings that scrapes may serve: how recent a text must be, and
//! the refresh that keeps it recent.

use std::sync::Arc;

use super::*;
use crate::report::CertState;

const RELOADED_ONCE: &str = "kyma_certd_config_reloads_total{result=\"success\"} 1\n";

fn text(bytes: &Bytes) -> &str {
    std::str::from_utf8(bytes).expect("the encoding is UTF-8")
}

/// A registry whose text is large enough that scrapes may be served a recent copy.
fn large_registry() -> Arc<Metrics> {
    let metrics = Metrics::new("1");
    let now = std::time::SystemTime::now();
    for i in 0..200 {
        metrics.cert_loaded(&format!("cert-{i}"), now, now + Duration::from_secs(3600));
    }
    assert!(metrics.encode(Format::Classic).len() >= STALE_TEXT_MIN_BYTES);
    metrics
}

#[test]
fn a_small_registry_is_always_encoded_exactly() {
    let metrics = Metrics::new("1");
    metrics.encode(Format::Classic);
    metrics.config_reload(true);

    let served = metrics.encode_recent(Format::Classic, Duration::from_secs(3600));

    assert!(text(&served).contains(RELOADED_ONCE), "{}", text(&served));
}

#[test]
fn a_text_younger_than_the_allowed_age_is_served_although_an_event_followed() {
    let metrics = large_registry();
    let before = metrics.encode(Format::Classic);
    metrics.config_reload(true);

    let served = metrics.encode_recent(Format::Classic, Duration::from_secs(3600));

    assert_eq!(served.as_ptr(), before.as_ptr());
    assert!(!text(&served).contains(RELOADED_ONCE));
}

#[test]
fn a_text_older_than_the_allowed_age_is_encoded_afresh() {
    let metrics = large_registry();
    metrics.encode(Format::Classic);
    metrics.config_reload(true);
    // Ages the cached text past the allowed millisecond.
    std::thread::sleep(Duration::from_millis(5));

    let served = metrics.encode_recent(Format::Classic, Duration::from_millis(1));

    assert!(text(&served).contains(RELOADED_ONCE), "{}", text(&served));
}

#[test]
fn encode_is_always_current() {
    let metrics = Metrics::new("1");
    metrics.encode(Format::OpenMetrics);
    metrics.config_reload(true);

    assert!(text(&metrics.encode(Format::OpenMetrics)).contains(RELOADED_ONCE));
}

#[test]
fn refresh_brings_a_scraped_format_up_to_date_without_a_scrape() {
    let metrics = Metrics::new("1");
    metrics.encode(Format::OpenMetrics);
    metrics.config_reload(true);

    metrics.refresh_stale();

    // Served from the cache (an hour of staleness allowed), yet current.
    let served = metrics.encode_recent(Format::OpenMetrics, Duration::from_secs(3600));
    assert!(text(&served).contains(RELOADED_ONCE), "{}", text(&served));
    assert_eq!(
        metrics.encode(Format::OpenMetrics).as_ptr(),
        served.as_ptr(),
        "the refreshed text is the current one"
    );
}

#[test]
fn a_large_registry_is_known_to_encode_slowly_before_its_first_encoding() {
    let metrics = Metrics::new("1");
    assert!(!metrics.encodes_slowly());
    let now = std::time::SystemTime::now();
    for i in 0..200 {
        metrics.cert_loaded(&format!("cert-{i}"), now, now + Duration::from_secs(3600));
    }
    assert!(metrics.encodes_slowly(), "200 certificates, never encoded");
    let size = metrics.encode(Format::OpenMetrics).len();
    // The estimate is within a fifth of the real size.
    let estimate = 200 * BYTES_PER_CERTIFICATE;
    assert!(
        size * 4 / 5 <= estimate && estimate <= size * 6 / 5,
        "{size} bytes, estimated {estimate}"
    );
}

#[test]
fn a_quiet_registry_keeps_no_large_text_and_the_first_event_brings_it_back() {
    let metrics = large_registry();
    metrics.encode(Format::OpenMetrics);
    assert!(
        metrics
            .cached(Format::OpenMetrics, Duration::ZERO)
            .is_some()
    );

    metrics.pretend_quiet();
    metrics.drop_idle_encodings();
    assert!(
        metrics
            .cached(Format::OpenMetrics, Duration::from_secs(3600))
            .is_none()
    );
    assert!(metrics.is_cold(), "a scraped format without a text");
    // A scrape of the quiet registry is answered, and nothing is kept.
    metrics.encode(Format::OpenMetrics);
    assert!(
        metrics
            .cached(Format::OpenMetrics, Duration::from_secs(3600))
            .is_none()
    );
    // Nobody scrapes the classic format: it is not encoded in the background.
    assert!(
        metrics
            .cached(Format::Classic, Duration::from_secs(3600))
            .is_none()
    );

    // The first event: the refresher's encoding is kept for the scrapes that follow.
    metrics.config_reload(true);
    metrics.refresh_stale();
    assert!(!metrics.is_cold());
    let served = metrics
        .cached(Format::OpenMetrics, Duration::ZERO)
        .expect("a current text");
    assert!(text(&served).contains(RELOADED_ONCE));
}

#[test]
fn a_replaced_large_text_lends_its_buffer_to_a_later_encoding() {
    let metrics = large_registry();
    let first = metrics.encode(Format::OpenMetrics);
    let first_buffer = first.as_ptr();
    drop(first);
    // The next encoding replaces the first text, whose buffer nobody holds any more.
    metrics.config_reload(true);
    metrics.encode(Format::OpenMetrics);
    metrics.config_reload(true);
    let third = metrics.encode(Format::OpenMetrics);
    assert_eq!(
        third.as_ptr(),
        first_buffer,
        "the first text's buffer was reused"
    );
    assert!(text(&third).contains("kyma_certd_config_reloads_total{result=\"success\"} 2\n"));

    // A text a scrape still holds is not reused.
    metrics.config_reload(true);
    let held = metrics.encode(Format::OpenMetrics);
    metrics.config_reload(true);
    metrics.encode(Format::OpenMetrics);
    metrics.config_reload(true);
    assert_ne!(metrics.encode(Format::OpenMetrics).as_ptr(), held.as_ptr());

    // A quiet registry keeps no spare buffer.
    metrics.pretend_quiet();
    metrics.drop_idle_encodings();
    assert!(metrics.lock_spare().is_empty());
}

#[tokio::test]
async fn waiting_for_a_change_completes_after_an_event() {
    let metrics = Metrics::new("1");
    let waiter = tokio::spawn({
        let metrics = Arc::clone(&metrics);
        async move { metrics.wait_for_change().await }
    });
    metrics.set_state("orders", CertState::Valid);

    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiter wakes up")
        .expect("the waiter does not panic");
}
