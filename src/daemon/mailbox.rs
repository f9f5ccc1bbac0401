//! What the supervisor tells one certificate task: the set of messages not yet taken,
//! and a wakeup. A channel would hold a 512-byte block per certificate for messages
//! that carry no data; this holds a byte and a `Notify`. Repeated messages of one kind
//! merge: a task answers each kind by looking again or renewing once, so twice is once.

use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::Notify;

/// A message from the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// SIGUSR1: renew now, whatever the schedule says.
    RenewNow,
    /// Someone changed the files: look again.
    FilesChanged,
    /// The wall clock moved (a step or a resume): measure the sleep to the deadline again.
    ClockChanged,
}

impl Control {
    /// The order in which pending messages are taken: a look at the files (and at the
    /// clock) before a forced renewal, so that the renewal starts from what is on disk.
    const BY_PRIORITY: [Control; 3] = [
        Control::FilesChanged,
        Control::ClockChanged,
        Control::RenewNow,
    ];

    fn bit(self) -> u8 {
        match self {
            Control::RenewNow => 1,
            Control::FilesChanged => 2,
            Control::ClockChanged => 4,
        }
    }
}

#[derive(Debug, Default)]
pub struct Mailbox {
    pending: AtomicU8,
    posted: Notify,
}

impl Mailbox {
    pub fn post(&self, control: Control) {
        self.pending.fetch_or(control.bit(), Ordering::AcqRel);
        // Stores a wakeup when the task is not waiting: its next `recv` returns at once.
        self.posted.notify_one();
    }

    /// The most urgent pending message, without waiting.
    pub fn take(&self) -> Option<Control> {
        let pending = self.pending.load(Ordering::Acquire);
        let control = Control::BY_PRIORITY
            .into_iter()
            .find(|c| pending & c.bit() != 0)?;
        self.pending.fetch_and(!control.bit(), Ordering::AcqRel);
        Some(control)
    }

    /// Forgets every pending message: what they asked for was just done.
    pub fn clear(&self) {
        self.pending.store(0, Ordering::Release);
    }

    /// Waits for a message.
    pub async fn recv(&self) -> Control {
        loop {
            if let Some(control) = self.take() {
                return control;
            }
            self.posted.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn repeated_messages_merge_and_a_look_comes_before_a_renewal() {
        let mailbox = Mailbox::default();
        mailbox.post(Control::RenewNow);
        mailbox.post(Control::FilesChanged);
        mailbox.post(Control::FilesChanged);
        assert_eq!(mailbox.take(), Some(Control::FilesChanged));
        assert_eq!(mailbox.take(), Some(Control::RenewNow));
        assert_eq!(mailbox.take(), None);
    }

    #[test]
    fn clear_forgets_what_is_pending() {
        let mailbox = Mailbox::default();
        mailbox.post(Control::RenewNow);
        mailbox.post(Control::ClockChanged);
        mailbox.clear();
        assert_eq!(mailbox.take(), None);
    }

    #[tokio::test]
    async fn a_message_posted_while_the_task_waits_wakes_it() {
        let mailbox = Arc::new(Mailbox::default());
        let waiting = tokio::spawn({
            let mailbox = Arc::clone(&mailbox);
            async move { mailbox.recv().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        mailbox.post(Control::ClockChanged);
        let got = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(got, Control::ClockChanged);
    }

    #[tokio::test]
    async fn a_message_posted_before_the_wait_is_not_lost() {
        let mailbox = Mailbox::default();
        mailbox.post(Control::RenewNow);
        let got = tokio::time::timeout(Duration::from_secs(5), mailbox.recv()).await;
        assert_eq!(got.ok(), Some(Control::RenewNow));
    }
}
