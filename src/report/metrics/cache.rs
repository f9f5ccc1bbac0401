//! The encoded texts of the registry. Each format's last text is kept until the next
//! event, so repeated scrapes of an unchanged registry cost a reference count; a large
//! registry may serve a text a little stale while events come; large texts and spare
//! buffers are dropped once the registry is quiet. Does not decide what a text holds (see
//! `export`).

use std::sync::MutexGuard;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Metrics, NO_EVENT};
use crate::report::format::{Format, write_classic};

/// Below this size a scrape always encodes afresh: exact values cost under a millisecond.
/// Above it (about a hundred certificates) a text at most `max_age` old may be served.
pub(super) const STALE_TEXT_MIN_BYTES: usize = 256 * 1024;

/// A large text is kept for later scrapes only while events come (renewals, a start):
/// this long after the last one it is dropped, and a quiet daemon holds none (a
/// thousand certificates' text is 3 MB). Scrapes of a quiet registry encode afresh.
pub const TEXT_KEEP: Duration = Duration::from_secs(10);

/// A certificate's share of the text, about: 40 series of about 70 bytes.
const BYTES_PER_CERTIFICATE: usize = 2_800;

/// At most this many spare buffers: the text being replaced and a classic encoding's
/// OpenMetrics draft.
const SPARE_BUFFERS: usize = 2;

/// One cached encoding: the registry at `generation`, read at `as_of` (every event
/// before `as_of` is in the text).
pub(super) struct Encoded {
    generation: u64,
    as_of: Instant,
    text: Bytes,
}

pub(super) fn slot(format: Format) -> usize {
    match format {
        Format::OpenMetrics => 0,
        Format::Classic => 1,
    }
}

impl Metrics {
    /// The whole registry in `format`, as it is now.
    ///
    /// The text is cached per format until the next event, so repeated scrapes of an
    /// unchanged registry cost a reference count.
    pub fn encode(&self, format: Format) -> Bytes {
        self.encode_recent(format, Duration::ZERO)
    }

    /// The registry in `format`, allowing the cached text when it misses only the events
    /// of the last `max_age`: with thousands of certificates an encoding takes
    /// milliseconds, and a scrape during a burst of renewals should not pay for it each
    /// time (see [`Metrics::refresh_stale`]). `Duration::ZERO` is [`Metrics::encode`].
    pub fn encode_recent(&self, format: Format, max_age: Duration) -> Bytes {
        self.wanted[slot(format)].store(true, Ordering::Relaxed);
        // Read before encoding: an event during the encoding bumps it past this value.
        let generation = self.generation.load(Ordering::Acquire);
        let now = Instant::now();
        match self.cached_at(format, max_age, generation, now) {
            Some(text) => text,
            None => self.encode_into_cache(format, generation, now),
        }
    }

    /// The cached text that [`Metrics::encode_recent`] would serve, if there is one.
    pub fn cached(&self, format: Format, max_age: Duration) -> Option<Bytes> {
        self.wanted[slot(format)].store(true, Ordering::Relaxed);
        let generation = self.generation.load(Ordering::Acquire);
        self.cached_at(format, max_age, generation, Instant::now())
    }

    /// Whether an encoding takes long enough (milliseconds) to be done off the event loop.
    pub fn encodes_slowly(&self) -> bool {
        self.expected_size() >= STALE_TEXT_MIN_BYTES
    }

    /// The next text's size: the last one's, or an estimate before the first, so that
    /// even the first scrape of a large registry is encoded off the event loop.
    fn expected_size(&self) -> usize {
        let last = self.last_size.load(Ordering::Relaxed);
        let estimate = self.lock().certs.len() * BYTES_PER_CERTIFICATE;
        last.max(estimate)
    }

    fn cached_at(
        &self,
        format: Format,
        max_age: Duration,
        generation: u64,
        now: Instant,
    ) -> Option<Bytes> {
        let cache = self.lock_cache();
        let cached = cache[slot(format)].as_ref()?;
        let recent = cached.generation == generation
            || (!max_age.is_zero()
                && cached.text.len() >= STALE_TEXT_MIN_BYTES
                && now.duration_since(cached.as_of) <= max_age);
        recent.then(|| cached.text.clone())
    }

    /// Re-encodes the formats someone scrapes whose cached text is out of date or was
    /// dropped while the registry was quiet. Takes milliseconds with many certificates:
    /// call it off the event loop.
    pub fn refresh_stale(&self) {
        for format in [Format::OpenMetrics, Format::Classic] {
            if !self.wanted[slot(format)].load(Ordering::Relaxed) {
                continue;
            }
            let generation = self.generation.load(Ordering::Acquire);
            let current = matches!(
                &self.lock_cache()[slot(format)],
                Some(cached) if cached.generation == generation
            );
            if !current {
                self.encode_into_cache(format, generation, Instant::now());
            }
        }
    }

    /// Whether a scraped format has no cached text: the registry was quiet and its large
    /// text was dropped. The first event after such a pause is encoded at once, so the
    /// scrapes of a burst find a text from its start.
    pub fn is_cold(&self) -> bool {
        let cache = self.lock_cache();
        [Format::OpenMetrics, Format::Classic]
            .into_iter()
            .any(|format| {
                self.wanted[slot(format)].load(Ordering::Relaxed) && cache[slot(format)].is_none()
            })
    }

    fn encode_into_cache(&self, format: Format, generation: u64, as_of: Instant) -> Bytes {
        let slot = slot(format);
        // The expected size, with room: one allocation instead of a dozen doublings.
        let expected = self.expected_size();
        let size_hint = expected + expected / 8;
        let text = Bytes::from(self.encode_uncached(format, size_hint));
        self.last_size.store(text.len(), Ordering::Relaxed);
        if text.len() >= STALE_TEXT_MIN_BYTES && !self.keeps_texts() {
            return text;
        }
        let replaced = {
            let mut cache = self.lock_cache();
            // Two encoders may race (a scrape and the refresher): keep the newer text.
            if cache[slot]
                .as_ref()
                .is_none_or(|cached| cached.generation <= generation)
            {
                cache[slot].replace(Encoded {
                    generation,
                    as_of,
                    text: text.clone(),
                })
            } else {
                None
            }
        };
        if let Some(replaced) = replaced {
            self.recycle(replaced.text);
        }
        text
    }

    fn encode_uncached(&self, format: Format, size_hint: usize) -> String {
        let mut text = self.buffer(size_hint);
        // Writing into a String cannot fail, and every metric here encodes without error.
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            tracing::error!("encoding the metrics failed");
        }
        match format {
            Format::OpenMetrics => text,
            Format::Classic => {
                let mut classic = self.buffer(size_hint);
                write_classic(&text, &mut classic);
                text.clear();
                self.keep_spare(text);
                classic
            }
        }
    }

    /// An empty buffer of at least `capacity`: a spare one while events come, else new.
    fn buffer(&self, capacity: usize) -> String {
        let mut buffer = self.lock_spare().pop().unwrap_or_default();
        buffer.reserve(capacity);
        buffer
    }

    /// Keeps the buffer of a replaced text for the next encoding, if no scrape still
    /// holds it and events are coming (a quiet registry keeps no large buffer).
    fn recycle(&self, text: Bytes) {
        if text.len() < STALE_TEXT_MIN_BYTES || !self.keeps_texts() {
            return;
        }
        let Ok(unique) = text.try_into_mut() else {
            return;
        };
        let mut buffer = Vec::from(unique);
        buffer.clear();
        if let Ok(buffer) = String::from_utf8(buffer) {
            self.keep_spare(buffer);
        }
    }

    fn keep_spare(&self, buffer: String) {
        if buffer.capacity() < STALE_TEXT_MIN_BYTES || !self.keeps_texts() {
            return;
        }
        let mut spare = self.lock_spare();
        if spare.len() < SPARE_BUFFERS {
            spare.push(buffer);
        }
    }

    fn lock_spare(&self) -> MutexGuard<'_, Vec<String>> {
        self.spare
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_cache(&self) -> MutexGuard<'_, [Option<Encoded>; 2]> {
        self.encoded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drops the large cached texts and spare buffers once no event has come for
    /// `TEXT_KEEP`.
    pub fn drop_idle_encodings(&self) {
        if self.keeps_texts() {
            return;
        }
        self.lock_spare().clear();
        for cached in self.lock_cache().iter_mut() {
            if cached
                .as_ref()
                .is_some_and(|c| c.text.len() >= STALE_TEXT_MIN_BYTES)
            {
                *cached = None;
            }
        }
    }

    /// Whether large texts are kept for later scrapes: while events come, i.e. an event
    /// came within the last `TEXT_KEEP`.
    pub fn keeps_texts(&self) -> bool {
        match self.last_event_ms.load(Ordering::Relaxed) {
            NO_EVENT => false,
            last => {
                self.born
                    .elapsed()
                    .saturating_sub(Duration::from_millis(last))
                    < TEXT_KEEP
            }
        }
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
