//! Installs the process-wide tracing subscriber: one event per line on stderr, as text or
//! JSON, colours only on a terminal, `RUST_LOG` over the configured filter. In JSON, the
//! fields of the enclosing spans (the certificate's `name` and `protocol`) are flattened
//! into every event, so each line stands on its own. Does not decide what is logged.

use std::fmt;
use std::io::{self, IsTerminal, Write};

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// How each event is written (`log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

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
        .map_err(|source| LoggingError::AlreadySetUp { source })?;
    let _ = FORMAT.set(format);
    Ok(())
}

/// The format `init` installed.
static FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// Whether `init` installed JSON logs.
pub fn is_json() -> bool {
    FORMAT.get() == Some(&LogFormat::Json)
}

/// Tells whoever runs a one-shot command what it did with certificate `name`: a line on
/// standard output, as text, or, when the logs are JSON (an init container whose
/// configuration says `log_format = "json"`), as one JSON object shaped like a log line
/// (`timestamp`, `level`, `message`, `name`, `target`), so that a log pipeline parses
/// every line the container writes.
pub fn outcome(name: &str, text: fmt::Arguments<'_>) {
    let line = if is_json() {
        let mut timestamp = String::new();
        let _ = SystemTime.format_time(&mut Writer::new(&mut timestamp));
        let mut fields = Fields(Vec::with_capacity(5));
        fields.add("timestamp", Value::String(timestamp));
        fields.add("level", Value::String("INFO".into()));
        fields.add("message", Value::String(text.to_string()));
        fields.add("name", Value::String(name.to_owned()));
        fields.add("target", Value::String("kyma_certd::outcome".into()));
        serde_json::to_string(&fields).unwrap_or_default()
    } else {
        text.to_string()
    };
    // A closed standard output (a pipe whose reader left) is not worth a panic.
    let _ = writeln!(io::stdout(), "{line}");
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
    // A failed write is dropped silently: tracing-subscriber would report it with
    // `eprintln!`, which panics when the writer that failed is stderr (a closed pipe).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .log_internal_errors(false)
        .with_writer(OneLine(writer));
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(
            builder
                .with_ansi(false)
                .fmt_fields(JsonFields::new())
                .event_format(FlatJson)
                .finish(),
        ),
    }
}

/// One JSON object per event: `timestamp`, `level`, the event's fields (`message` among
/// them), `target`, `span` (the innermost span's name), then the fields of every enclosing
/// span, inner before outer. A key appears once: the event's own field wins over a span's,
/// an inner span's over an outer one's. (tracing-subscriber's own JSON nests span fields
/// under `span` and writes the span's name as a second `name` key, which hides a
/// certificate's `name` from every JSON parser.)
struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let meta = event.metadata();
        let mut fields = Fields(Vec::with_capacity(16));
        fields.add("timestamp", Value::String(timestamp));
        fields.add("level", Value::String(meta.level().as_str().to_owned()));
        event.record(&mut fields);
        fields.add("target", Value::String(meta.target().to_owned()));
        if let Some(scope) = ctx.event_scope() {
            for (depth, span) in scope.enumerate() {
                if depth == 0 {
                    fields.add("span", Value::String(span.name().to_owned()));
                }
                let extensions = span.extensions();
                let Some(recorded) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                // JsonFields records a span's fields as one JSON object.
                if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&recorded.fields) {
                    for (key, value) in map {
                        fields.add(&key, value);
                    }
                }
            }
        }
        let line = serde_json::to_string(&fields).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

/// An event's fields in the order they were added; a repeated key is ignored.
struct Fields(Vec<(String, Value)>);

impl Fields {
    fn add(&mut self, key: &str, value: Value) {
        if !self.0.iter().any(|(k, _)| k == key) {
            self.0.push((key.to_owned(), value));
        }
    }
}

impl serde::Serialize for Fields {
    fn serialize<Z: serde::Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let value = serde_json::Number::from_f64(value)
            .map_or_else(|| Value::String(value.to_string()), Value::Number);
        self.add(field.name(), value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.add(field.name(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.add(field.name(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.add(field.name(), Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.add(field.name(), Value::String(value.to_owned()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.add(field.name(), Value::String(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.add(field.name(), Value::String(format!("{value:?}")));
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
        assert_eq!(event["cert"], "orders");
        assert_eq!(event["span"], "renew");
        assert!(event["timestamp"].as_str().unwrap().ends_with('Z'), "{out}");
        assert!(!out.contains('\u{1b}'), "no colour codes in JSON");
    }

    #[test]
    fn json_logs_flatten_every_enclosing_span_and_keep_one_value_per_key() {
        let out = log_with(LogFormat::Json, "trace", false, || {
            let cert = tracing::info_span!("cert", name = "orders", protocol = "compass");
            let _cert = cert.enter();
            let inner = tracing::debug_span!("hook_output", stream = "stdout", protocol = "x");
            let _inner = inner.enter();
            tracing::info!(took_ms = 12u64, ok = true, ratio = 0.5, "hook said hi");
            tracing::info!(name = "override", "own field");
        });
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{out}");
        let first = &lines[0];
        assert_eq!(
            first["name"], "orders",
            "the span's name field, not its name"
        );
        assert_eq!(first["protocol"], "x", "the inner span wins: {out}");
        assert_eq!(first["stream"], "stdout");
        assert_eq!(first["span"], "hook_output");
        assert_eq!(first["took_ms"], 12);
        assert_eq!(first["ok"], true);
        assert_eq!(first["ratio"], 0.5);
        assert_eq!(first["target"], module_path!());
        assert_eq!(lines[1]["name"], "override", "the event's own field wins");
        for line in out.lines() {
            assert_eq!(line.matches("\"name\":").count(), 1, "one key each: {line}");
        }
    }

    #[test]
    fn json_events_outside_any_span_have_no_span_key() {
        let out = log_with(LogFormat::Json, "info", false, || tracing::info!("alone"));
        let event: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(event["message"], "alone");
        assert!(event.get("span").is_none(), "{out}");
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
