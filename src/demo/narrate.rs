//! The demo's narration: one readable line per thing the daemon does (a renewal, a hook
//! run, the next renewal, a warning), with short fingerprints and times of day, instead
//! of the daemon's full log (`demo --verbose` shows that). Reads the daemon's log events;
//! does not decide what the daemon logs.

use std::collections::HashMap;
use std::fmt;
use std::io::Write as _;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// How many hex digits of a fingerprint the narration shows.
pub const SHORT: usize = 8;

/// The first [`SHORT`] characters of a fingerprint.
pub fn short(fingerprint: &str) -> &str {
    fingerprint.get(..SHORT).unwrap_or(fingerprint)
}

/// A `tracing` layer that prints the narration on standard output.
#[derive(Default)]
pub struct Narrator {
    /// What the running hook printed, told with its outcome.
    hook_said: Mutex<Option<String>>,
}

impl<S: Subscriber> Layer<S> for Narrator {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let said = self
            .hook_said
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let line = match narrate(*event.metadata().level(), &fields, said) {
            Narration::Line(line) => line,
            Narration::HookOutput(text) => {
                *self
                    .hook_said
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(text);
                return;
            }
            Narration::Nothing(said) => {
                // Not the end of a hook run: keep what the hook said for that line.
                if let Some(said) = said {
                    *self
                        .hook_said
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(said);
                }
                return;
            }
        };
        // After SIGHUP the terminal may be gone: a failed write is not an error here.
        let _ = writeln!(std::io::stdout(), "{} {line}", clock());
    }
}

/// What one log event becomes in the narration.
#[derive(Debug, PartialEq, Eq)]
enum Narration {
    Line(String),
    /// A line the running hook printed: told with the hook's outcome.
    HookOutput(String),
    /// Not narrated; the hook output seen so far is kept.
    Nothing(Option<String>),
}

/// The narration of one event with `fields` at `level`; `hook_said` is what the running
/// hook printed so far.
fn narrate(level: Level, fields: &Fields, hook_said: Option<String>) -> Narration {
    let message = fields.get("message").unwrap_or_default();
    if let (Some(old), Some(new)) = (fields.get("old"), fields.get("new"))
        && message.starts_with("renewed ")
    {
        let until = fields.get("not_after").map(time_of_day).unwrap_or_default();
        return Narration::Line(format!(
            "renewed {} -> {}, valid until {until}",
            short(old),
            short(new)
        ));
    }
    if let Some(hook) = fields.get("hook") {
        return match (message, fields.get("stream")) {
            (_, Some("stdout")) => Narration::HookOutput(message.to_owned()),
            ("hook succeeded", _) => Narration::Line(match hook_said {
                Some(said) => format!("hook ran ({hook}): {said}"),
                None => format!("hook ran ({hook})"),
            }),
            ("hook failed", _) => Narration::Line(format!(
                "hook failed ({hook}): {}",
                fields.get("error").unwrap_or_default()
            )),
            _ if level <= Level::WARN => Narration::Line(format!("warning ({hook}): {message}")),
            _ => Narration::Nothing(hook_said),
        };
    }
    if let Some(next) = fields.get("next_renewal")
        && message.starts_with("next renewal in")
    {
        return Narration::Line(format!("{message} (at {})", time_of_day(next)));
    }
    if level <= Level::WARN {
        return Narration::Line(match fields.get("error") {
            Some(error) => format!("warning: {message}: {error}"),
            None => format!("warning: {message}"),
        });
    }
    Narration::Nothing(hook_said)
}

/// `13:50:36` of an RFC 3339 UTC timestamp (the demo's certificates live minutes).
fn time_of_day(rfc3339: &str) -> String {
    rfc3339
        .split_once('T')
        .map(|(_, time)| time.trim_end_matches('Z').to_owned())
        .unwrap_or_else(|| rfc3339.to_owned())
}

/// Now, as `13:50:36` (UTC, like the certificates' times).
fn clock() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:02}:{:02}:{:02}", now.hour(), now.minute(), now.second())
}

/// An event's fields as text.
#[derive(Default)]
struct Fields(HashMap<&'static str, String>);

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name(), format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&'static str, &str)]) -> Fields {
        Fields(pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect())
    }

    const OLD: &str = "3f2a9c1b00000000000000000000000000000000000000000000000000000000";
    const NEW: &str = "8e7d6c5a11111111111111111111111111111111111111111111111111111111";

    #[test]
    fn a_renewal_is_one_line_with_short_fingerprints() {
        let event = fields(&[
            (
                "message",
                "renewed 3f2a9c1b00000000 -> 8e7d6c5a11111111, valid until ...",
            ),
            ("old", OLD),
            ("new", NEW),
            ("not_after", "2025-01-01T13:51:01Z"),
        ]);
        assert_eq!(
            narrate(Level::INFO, &event, None),
            Narration::Line("renewed 3f2a9c1b -> 8e7d6c5a, valid until 13:51:01".into())
        );
    }

    #[test]
    fn a_hook_run_is_told_once_with_what_the_hook_printed() {
        let output = fields(&[
            ("message", "the application would reload now"),
            ("hook", "command"),
            ("stream", "stdout"),
        ]);
        let said = match narrate(Level::INFO, &output, None) {
            Narration::HookOutput(said) => said,
            other => panic!("{other:?}"),
        };
        let done = fields(&[("message", "hook succeeded"), ("hook", "command")]);
        assert_eq!(
            narrate(Level::INFO, &done, Some(said)),
            Narration::Line("hook ran (command): the application would reload now".into())
        );
        let failed = fields(&[
            ("message", "hook failed"),
            ("hook", "signal"),
            ("error", "no such process"),
        ]);
        assert_eq!(
            narrate(Level::WARN, &failed, None),
            Narration::Line("hook failed (signal): no such process".into())
        );
    }

    #[test]
    fn the_next_renewal_names_its_time_of_day_and_chatter_is_left_out() {
        let next = fields(&[
            ("message", "next renewal in 35s"),
            ("next_renewal", "2025-01-01T13:50:36Z"),
        ]);
        assert_eq!(
            narrate(Level::INFO, &next, None),
            Narration::Line("next renewal in 35s (at 13:50:36)".into())
        );
        let renewing = fields(&[("message", "renewing")]);
        assert_eq!(
            narrate(Level::INFO, &renewing, Some("kept".into())),
            Narration::Nothing(Some("kept".into()))
        );
        let failed = fields(&[
            ("message", "renewal failed; retrying in 2s"),
            ("error", "connection refused"),
        ]);
        assert_eq!(
            narrate(Level::WARN, &failed, None),
            Narration::Line("warning: renewal failed; retrying in 2s: connection refused".into())
        );
    }
}
