//! Installs the process-wide tracing subscriber: one event per line on stderr, as text or
//! JSON, colours only on a terminal, `RUST_LOG` over the configured filter. Does not decide
//! what is logged.

use std::io::{self, IsTerminal, Write};

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// Errors of this layer.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("invalid log filter {filter:?} (from {origin})")]
    Filter {
        filter: String,
        origin: &'static str,
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("logging is already set up")]
    AlreadySetUp {
        source: tracing::subscriber::SetGlobalDefaultError,
    },
}

/// Sends every later event to stderr in `format`, filtered by `RUST_LOG` when it is set and
/// not empty, else by `filter` (`log_level`). Fails, without side effects, on a bad filter
/// or when called a second time.
pub fn init(format: LogFormat, filter: &str) -> Result<(), LoggingError> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = env_filter(filter, rust_log.as_deref())?;
    let ansi = io::stderr().is_terminal();
    let subscriber = subscriber(format, filter, io::stderr, ansi);
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|source| LoggingError::AlreadySetUp { source })
}

/// The filter: `rust_log` when set and not blank, else `configured`.
fn env_filter(configured: &str, rust_log: Option<&str>) -> Result<EnvFilter, LoggingError> {
    let (filter, origin) = match rust_log.map(str::trim) {
        Some(from_env) if !from_env.is_empty() => (from_env, "RUST_LOG"),
        _ => (configured, "log_level"),
    };
    EnvFilter::try_new(filter).map_err(|source| LoggingError::Filter {
        filter: filter.to_owned(),
        origin,
        source,
    })
}

/// The subscriber `init` installs, writing to `writer`.
fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(OneLine(writer));
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(
            builder
                .with_ansi(false)
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
    }
}

/// Keeps each event on one line: newlines inside a formatted event (a multi-line error
/// body, say) become `\n`, so a value cannot forge extra log lines.
struct OneLine<M>(M);

impl<'w, M: MakeWriter<'w>> MakeWriter<'w> for OneLine<M> {
    type Writer = OneLineWriter<M::Writer>;

    fn make_writer(&'w self) -> Self::Writer {
        OneLineWriter(self.0.make_writer())
    }
}

struct OneLineWriter<W>(W);

impl<W: Write> Write for OneLineWriter<W> {
    /// The formatter hands over one whole event per call, ending in its newline.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (body, end) = match buf.strip_suffix(b"\n") {
            Some(body) => (body, &b"\n"[..]),
            None => (buf, &b""[..]),
        };
        if !body.contains(&b'\n') {
            self.0.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut line = Vec::with_capacity(buf.len() + 16);
        for &byte in body {
            if byte == b'\n' {
                line.extend_from_slice(b"\\n");
            } else {
                line.push(byte);
            }
        }
        line.extend_from_slice(end);
        self.0.write_all(&line)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer that collects everything in memory.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;

        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn log_with(format: LogFormat, filter: &str, ansi: bool, emit: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let filter = env_filter(filter, None).unwrap();
        let subscriber = subscriber(format, filter, buffer.clone(), ansi);
        tracing::subscriber::with_default(subscriber, emit);
        buffer.text()
    }

    fn renew_events() {
        let span = tracing::info_span!("renew", cert = "orders");
        let _entered = span.enter();
        tracing::info!(attempt = 2, "renewed\nFAKE line");
        tracing::debug!("hidden at info");
    }

    #[test]
    fn json_logs_are_one_object_per_line_with_the_certificate_name() {
        let out = log_with(LogFormat::Json, "info", true, renew_events);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let event: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(event["message"], "renewed\nFAKE line");
        assert_eq!(event["attempt"], 2);
        assert_eq!(event["level"], "INFO");
        assert_eq!(event["span"]["cert"], "orders");
        assert!(!out.contains('\u{1b}'), "no colour codes in JSON");
    }

    #[test]
    fn text_logs_keep_each_event_on_one_line_without_colours_off_a_terminal() {
        let out = log_with(LogFormat::Text, "info", false, renew_events);
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains("renewed\\nFAKE line"), "{out}");
        assert!(out.contains("cert=\"orders\""), "{out}");
        assert!(!out.contains('\u{1b}'), "{out}");
    }

    #[test]
    fn text_logs_on_a_terminal_are_coloured() {
        let out = log_with(LogFormat::Text, "info", true, renew_events);
        assert!(out.contains('\u{1b}'), "{out}");
    }

    #[test]
    fn the_filter_hides_lower_levels_and_a_debug_filter_shows_them() {
        let out = log_with(LogFormat::Text, "kyma_certd=debug", false, renew_events);
        assert!(out.contains("hidden at info"), "{out}");
        let out = log_with(LogFormat::Text, "warn", false, renew_events);
        assert_eq!(out, "");
    }

    #[test]
    fn rust_log_overrides_the_configured_filter_unless_blank() {
        assert_eq!(
            env_filter("info", Some("debug")).unwrap().to_string(),
            "debug"
        );
        assert_eq!(env_filter("info", Some("  ")).unwrap().to_string(), "info");
        assert_eq!(env_filter("warn", None).unwrap().to_string(), "warn");
    }

    #[test]
    fn a_bad_filter_is_an_error_naming_its_origin() {
        let err = env_filter("info", Some("kyma_certd=loud")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid log filter \"kyma_certd=loud\" (from RUST_LOG)"
        );
        let err = env_filter("[[", None).unwrap_err();
        assert!(err.to_string().ends_with("(from log_level)"), "{err}");
    }

    #[test]
    fn a_second_init_is_an_error_not_a_panic() {
        // The first call may also fail if another test set a global default; either way
        // the second one must fail cleanly.
        let _ = init(LogFormat::Text, "off");
        let second = init(LogFormat::Json, "off");
        assert!(matches!(second, Err(LoggingError::AlreadySetUp { .. })));
    }
}
