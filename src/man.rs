//! The man page: clap's rendering of the command line, followed by the configuration
//! reference and the exit codes taken from `docs/reference.md` (one source for both).
//! Converts only the Markdown that page uses: headings, paragraphs, bullet lists, tables.

use std::io::{self, Write};

use clap::CommandFactory;

use crate::cli::Cli;

/// The reference, built into the binary for its man page.
pub const REFERENCE: &str = include_str!("../docs/reference.md");

/// Writes the whole man page (roff) to `out`.
pub fn render(out: &mut impl Write) -> io::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    out.write_all(&page)?;
    out.write_all(reference_sections().as_bytes())
}

/// The Configuration and Exit codes sections of the reference, as roff.
pub fn reference_sections() -> String {
    let mut roff = String::new();
    for (title, heading) in [
        ("CONFIGURATION", "## Configuration"),
        ("EXIT STATUS", "## Exit codes"),
    ] {
        if let Some(body) = section(REFERENCE, heading) {
            roff.push_str(&format!(".SH {title}\n"));
            roff.push_str(&to_roff(body));
        }
    }
    roff.push_str(
        ".SH SEE ALSO\n/usr/share/doc/kyma-certd/reference.md (states, metrics, files, hook environment, token forms), /usr/share/doc/kyma-certd/operations.md (runbooks)\n",
    );
    roff
}

/// The text under a `## ` heading, up to the next one.
fn section<'a>(markdown: &'a str, heading: &str) -> Option<&'a str> {
    let start = markdown.find(&format!("\n{heading}\n"))? + heading.len() + 2;
    let rest = &markdown[start..];
    Some(rest.find("\n## ").map_or(rest, |end| &rest[..end]))
}

fn to_roff(markdown: &str) -> String {
    let mut out = String::new();
    let mut header: Option<Vec<String>> = None;
    for line in markdown.lines() {
        let line = line.trim_end();
        if let Some(heading) = line.strip_prefix("### ") {
            out.push_str(&format!(".SS {}\n", inline(heading)));
            header = None;
        } else if line.starts_with('|') {
            let cells = cells(line);
            if cells
                .iter()
                .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
            {
                continue;
            }
            match &header {
                None => header = Some(cells),
                Some(names) => out.push_str(&table_row(names, &cells)),
            }
        } else if line.is_empty() {
            header = None;
            out.push_str(".PP\n");
        } else if let Some(item) = line.strip_prefix("- ") {
            out.push_str(&format!(".IP \\(bu 2\n{}\n", text_line(item)));
        } else {
            // A continuation line: a leading space would start a new, indented line.
            out.push_str(&text_line(line.trim_start()));
            out.push('\n');
        }
    }
    out
}

fn cells(line: &str) -> Vec<String> {
    line.trim_matches('|')
        .split('|')
        .map(|cell| cell.trim().to_owned())
        .collect()
}

/// One table row: the first cell in bold as the tag, the other cells as `name: value`
/// (the last one, the meaning, as it is).
fn table_row(names: &[String], cells: &[String]) -> String {
    let Some((first, rest)) = cells.split_first() else {
        return String::new();
    };
    let mut details = Vec::new();
    for (i, cell) in rest.iter().enumerate() {
        let name = names.get(i + 1).map(String::as_str).unwrap_or_default();
        if i + 1 == rest.len() {
            details.push(inline(cell));
        } else {
            details.push(format!("{}: {}", inline(name), inline(cell)));
        }
    }
    format!(
        ".TP\n\\fB{}\\fR\n{}\n",
        escape(&first.replace('`', "")),
        text_line(&details.join("; "))
    )
}

/// A line of running text: a leading `.` or `'` would be read as a request.
fn text_line(text: &str) -> String {
    let text = inline(text);
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}")
    } else {
        text
    }
}

/// Markdown inline syntax to plain roff text: code spans lose their backticks, links
/// keep their text.
fn inline(text: &str) -> String {
    let mut plain = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        match (after.find("]("), after.find(')')) {
            (Some(close), Some(end)) if close < end && !after[..close].contains('[') => {
                plain.push_str(&rest[..open]);
                plain.push_str(&after[..close]);
                rest = &after[end + 1..];
            }
            _ => {
                plain.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    plain.push_str(rest);
    escape(&plain.replace('`', ""))
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\e")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_their_text_and_tables_become_tagged_paragraphs() {
        assert_eq!(
            inline("see [`[[certificate.output]]`](#certificateoutput), `a\\b`"),
            "see [[certificate.output]], a\\eb"
        );
        let roff = to_roff(
            "### `[metrics]`\n\n| key | type | meaning |\n|---|---|---|\n| `listen` | string | where |\n",
        );
        assert_eq!(
            roff,
            ".SS [metrics]\n.PP\n.TP\n\\fBlisten\\fR\ntype: string; where\n"
        );
    }

    #[test]
    fn the_man_page_carries_the_configuration_and_exit_codes() {
        let mut page = Vec::new();
        render(&mut page).unwrap();
        let page = String::from_utf8(page).unwrap();
        assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
        assert!(page.contains("\n.SH CONFIGURATION\n"), "{page}");
        assert!(page.contains("\n.SH EXIT STATUS\n"), "{page}");
        assert!(page.contains("\\fBmax_concurrent_renewals\\fR"), "{page}");
        // No line of running text starts with a roff request by accident.
        for line in page.lines().skip_while(|l| *l != ".SH CONFIGURATION") {
            assert!(!line.starts_with('\'') && !line.starts_with(". "), "{line}");
        }
    }
}
