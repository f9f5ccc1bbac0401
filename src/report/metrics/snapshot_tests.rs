//! Tests of the cached encodings that scrapes may serve: how recent a text must be, and
//! the refresh that keeps it recent.

use super::*;

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
