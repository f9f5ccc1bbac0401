//! The two text formats of a scrape and the conversion from OpenMetrics (what
//! prometheus-client writes) to the classic format 0.0.4 (what promtool lints). Does not
//! parse samples: it rewrites descriptors and copies sample lines.

/// The two text encodings a scrape can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text, as prometheus-client writes it.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4, derived from the OpenMetrics text.
    Classic,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Classic => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Turns prometheus-client's OpenMetrics text into the classic 0.0.4 text format: drops
/// `# EOF` and `# UNIT`, names counter families by their `_total` samples in `# HELP` and
/// `# TYPE`, and calls OpenMetrics `unknown` `untyped`. Sample lines are copied unchanged,
/// in bulk, appended to `out`. (Exemplars, `info` and `stateset` are not handled: this
/// registry has none.)
pub fn write_classic(text: &str, out: &mut String) {
    out.reserve(text.len());
    // A `# HELP` waits for the `# TYPE` after it, which says whether it names a counter.
    let mut pending_help: Option<(&str, &str)> = None;
    let mut counter: Option<&str> = None;
    let mut rest = text;
    while !rest.is_empty() {
        // Label values escape newlines, so a line starting with '#' is always a comment.
        let samples = if rest.starts_with('#') {
            0
        } else {
            rest.find("\n#").map_or(rest.len(), |i| i + 1)
        };
        if samples > 0 {
            write_help(out, pending_help.take(), counter);
            out.push_str(&rest[..samples]);
            rest = &rest[samples..];
            continue;
        }
        let end = rest.find('\n').map_or(rest.len(), |i| i + 1);
        let line = rest[..end].trim_end_matches('\n');
        rest = &rest[end..];
        if let Some(help) = line.strip_prefix("# HELP ") {
            write_help(out, pending_help.take(), counter);
            pending_help = Some(help.split_once(' ').unwrap_or((help, "")));
        } else if let Some(kind) = line.strip_prefix("# TYPE ") {
            let (name, kind) = kind.split_once(' ').unwrap_or((kind, ""));
            counter = (kind == "counter").then_some(name);
            write_help(out, pending_help.take(), counter);
            out.push_str("# TYPE ");
            out.push_str(name);
            if counter.is_some() {
                out.push_str("_total");
            }
            out.push(' ');
            out.push_str(if kind == "unknown" { "untyped" } else { kind });
            out.push('\n');
        } else if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        } else {
            write_help(out, pending_help.take(), counter);
            out.push_str(line);
            out.push('\n');
        }
    }
    write_help(out, pending_help, counter);
}

fn write_help(out: &mut String, help: Option<(&str, &str)>, counter: Option<&str>) {
    let Some((name, text)) = help else {
        return;
    };
    out.push_str("# HELP ");
    out.push_str(name);
    if counter == Some(name) {
        out.push_str("_total");
    }
    out.push(' ');
    out.push_str(text);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openmetrics_to_classic(text: &str) -> String {
        let mut out = String::new();
        write_classic(text, &mut out);
        out
    }

    #[test]
    fn classic_conversion_renames_counter_descriptors_and_drops_eof_and_unit() {
        let open = "# HELP a_requests Requests.\n\
                    # TYPE a_requests counter\n\
                    a_requests_total{x=\"# TYPE a_requests counter\"} 3\n\
                    # HELP a_size_bytes Size.\n\
                    # TYPE a_size_bytes gauge\n\
                    # UNIT a_size_bytes bytes\n\
                    a_size_bytes 7\n\
                    # HELP a_odd Odd.\n\
                    # TYPE a_odd unknown\n\
                    a_odd 1\n\
                    # EOF\n";
        let classic = "# HELP a_requests_total Requests.\n\
                       # TYPE a_requests_total counter\n\
                       a_requests_total{x=\"# TYPE a_requests counter\"} 3\n\
                       # HELP a_size_bytes Size.\n\
                       # TYPE a_size_bytes gauge\n\
                       a_size_bytes 7\n\
                       # HELP a_odd Odd.\n\
                       # TYPE a_odd untyped\n\
                       a_odd 1\n";
        assert_eq!(openmetrics_to_classic(open), classic);
        assert_eq!(openmetrics_to_classic(""), "");
    }

    #[test]
    fn classic_conversion_handles_type_before_help_and_a_missing_final_newline() {
        let open = "# TYPE b counter\n# HELP b Bees.\nb_total 1";
        assert_eq!(
            openmetrics_to_classic(open),
            "# TYPE b_total counter\n# HELP b_total Bees.\nb_total 1"
        );
    }

    #[test]
    fn content_types_are_exact() {
        assert_eq!(
            Format::OpenMetrics.content_type(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert_eq!(
            Format::Classic.content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
    }
}
