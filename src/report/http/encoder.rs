//! Where `/metrics` texts are encoded. A small registry is encoded on the event loop
//! (microseconds). A large one (a thousand certificates: 3 MB, milliseconds) is encoded
//! on one dedicated thread, for the background refresher and for the scrapes that find
//! no recent text alike: one thread is one allocator arena, and a scrape queued behind a
//! refresh finds that text instead of encoding it again. The thread is started from the
//! event loop, so it runs at the loop's priority, above the key generation of the
//! blocking pool.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{MAX_STALENESS, REFRESH_DELAY};
use crate::report::format::Format;
use crate::report::metrics::{Metrics, TEXT_KEEP};

/// The encodings of one server. The thread ends when this is dropped.
pub(super) struct Encoder {
    metrics: Arc<Metrics>,
    thread: Mutex<Option<mpsc::Sender<Job>>>,
}

enum Job {
    /// Re-encode the stale scraped formats, then report.
    Refresh(oneshot::Sender<()>),
    /// A text for a scrape: the cached one if it became recent meanwhile.
    Scrape(Format, oneshot::Sender<Bytes>),
}

impl Encoder {
    pub(super) fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            metrics,
            thread: Mutex::new(None),
        })
    }

    /// The text for a scrape: the cached one when recent enough, else a fresh encoding.
    pub(super) async fn text(&self, format: Format) -> Bytes {
        if let Some(text) = self.metrics.cached(format, MAX_STALENESS) {
            return text;
        }
        if self.metrics.encodes_slowly() {
            let (reply, answer) = oneshot::channel();
            if self.send(Job::Scrape(format, reply))
                && let Ok(text) = answer.await
            {
                return text;
            }
        }
        // Small, or no thread: encode here, a slower scrape rather than none.
        self.metrics.encode_recent(format, MAX_STALENESS)
    }

    /// Re-encodes the stale scraped formats.
    async fn refresh(&self) {
        if self.metrics.encodes_slowly() {
            let (done, finished) = oneshot::channel();
            if self.send(Job::Refresh(done)) && finished.await.is_ok() {
                return;
            }
        }
        self.metrics.refresh_stale();
    }

    /// Hands `job` to the thread, starting it if needed; false if there is none.
    fn send(&self, job: Job) -> bool {
        let mut thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner);
        if thread.is_none() {
            *thread = spawn(Arc::clone(&self.metrics));
        }
        let sent = thread.as_ref().is_some_and(|jobs| jobs.send(job).is_ok());
        if !sent {
            // It could not start, or it died: start a new one next time.
            *thread = None;
        }
        sent
    }
}

fn spawn(metrics: Arc<Metrics>) -> Option<mpsc::Sender<Job>> {
    let (jobs, queue) = mpsc::channel::<Job>();
    let started = std::thread::Builder::new()
        .name("metrics-encoder".into())
        .spawn(move || {
            for job in queue {
                match job {
                    Job::Refresh(done) => {
                        metrics.refresh_stale();
                        let _ = done.send(());
                    }
                    Job::Scrape(format, reply) => {
                        let _ = reply.send(metrics.encode_recent(format, MAX_STALENESS));
                        // A scrape of a quiet daemon keeps no text; the copy of the
                        // values it encoded from leaves free pages in this thread's
                        // arena (about 0.4 MB for a thousand certificates).
                        if !metrics.keeps_texts() {
                            crate::memory::release_free_memory();
                        }
                    }
                }
            }
        });
    match started {
        Ok(_) => Some(jobs),
        Err(err) => {
            tracing::warn!(%err, "cannot start the metrics encoder thread");
            None
        }
    }
}

/// Keeps the scraped encodings recent while events happen, and drops the large ones once
/// the registry has been quiet for `TEXT_KEEP`; sleeps while nothing changes. Events
/// within `REFRESH_DELAY` share one encoding, except the first after a quiet spell,
/// which is encoded at once: the scrapes of a burst of renewals then find a text from
/// its start instead of each encoding one.
pub(super) async fn refresh_after_changes(encoder: Arc<Encoder>) {
    let metrics = Arc::clone(&encoder.metrics);
    loop {
        metrics.wait_for_change().await;
        loop {
            if !metrics.is_cold() {
                tokio::time::sleep(REFRESH_DELAY).await;
            }
            encoder.refresh().await;
            let quiet = tokio::time::timeout(TEXT_KEEP, metrics.wait_for_change()).await;
            if quiet.is_err() {
                metrics.drop_idle_encodings();
                break;
            }
        }
    }
}
