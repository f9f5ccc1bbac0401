//! Looks for secrets in text the daemon shows (logs, errors, metrics, `status`,
//! `state.json`): PEM armour, the base64 of PEM text (how CSRs and certificates travel),
//! known key and certificate bodies, known tokens, and long mixed-case base64 runs that
//! look like any of them. Asserts nothing by itself beyond `assert_clean`.

use std::fs;
use std::path::Path;

/// Secrets to look for; `scan` also applies the generic patterns.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    needles: Vec<(String, String)>,
    /// How many distinct texts were scanned, and how many bytes.
    pub scanned: usize,
    pub scanned_bytes: usize,
}

/// Every PEM text starts with this, and its base64 (what connectors exchange) with the
/// second string.
const GENERIC: [(&str, &str); 4] = [
    ("PEM armour", "-----BEGIN"),
    ("a PEM key label", "PRIVATE KEY"),
    (
        "base64 of PEM text (a CSR or certificate on the wire)",
        "LS0tLS1CRUdJTi",
    ),
    ("PEM armour end", "-----END"),
];

/// Runs of these characters at least this long, mixing upper case, lower case and
/// digits, look like base64 secrets (hex fingerprints are lower case only).
const RUN_MIN: usize = 32;

impl Secrets {
    pub fn new() -> Secrets {
        Secrets::default()
    }

    /// An exact secret, such as a token.
    pub fn add(&mut self, what: &str, secret: &str) {
        let secret = secret.trim();
        if secret.len() >= 8 {
            self.needles.push((what.to_owned(), secret.to_owned()));
        }
    }

    /// Every body line of a PEM text (the base64 between the armour lines).
    fn add_pem(&mut self, what: &str, pem: &str) {
        for line in pem.lines() {
            let line = line.trim();
            if !line.starts_with("-----") && line.len() >= 16 {
                self.needles.push((what.to_owned(), line.to_owned()));
            }
        }
    }

    /// Every private key found in files under `dir` (recursively, symlinks not followed).
    pub fn add_keys_under(&mut self, dir: &Path) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                self.add_keys_under(&path);
            } else if kind.is_file()
                && let Ok(text) = fs::read_to_string(&path)
                && text.contains("PRIVATE KEY-----")
            {
                self.add_pem("a private key", &text);
            }
        }
    }

    /// Every certificate the simulator issued.
    pub fn add_issued(&mut self, sim: &kyma_connector_sim::Simulator) {
        for issued in sim.issued_certificates() {
            self.add_pem("an issued certificate body", &issued.pem);
        }
    }

    /// What in `text` looks like a secret, each with a reason.
    pub fn scan(&mut self, text: &str) -> Vec<String> {
        self.scanned += 1;
        self.scanned_bytes += text.len();
        let mut found = Vec::new();
        for (what, needle) in GENERIC {
            if let Some(at) = text.find(needle) {
                found.push(format!("{what} at byte {at}: {}", excerpt(text, at)));
            }
        }
        for (what, needle) in &self.needles {
            if let Some(at) = text.find(needle.as_str()) {
                found.push(format!("{what} at byte {at}: {}", excerpt(text, at)));
            }
        }
        let is_run = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '=' || c == '_';
        let mut start = None;
        for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
            match (is_run(c), start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    let run = &text[s..i];
                    if run.len() >= RUN_MIN
                        && run.chars().any(|c| c.is_ascii_uppercase())
                        && run.chars().any(|c| c.is_ascii_lowercase())
                        && run.chars().any(|c| c.is_ascii_digit())
                    {
                        found.push(format!(
                            "a long base64-like run at byte {s}: {}",
                            excerpt(text, s)
                        ));
                    }
                    start = None;
                }
                _ => {}
            }
        }
        found
    }

    /// Panics with every finding in `text`, naming `place`.
    pub fn assert_clean(&mut self, place: &str, text: &str) {
        let found = self.scan(text);
        assert!(
            found.is_empty(),
            "{place} shows secrets:\n  {}",
            found.join("\n  ")
        );
    }
}

/// A few characters around `at`, for the failure message (the secret itself is a test
/// fixture, so showing part of it is fine).
fn excerpt(text: &str, at: usize) -> String {
    let mut start = at.saturating_sub(40);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (at + 60).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    text[start..end].replace('\n', "⏎")
}
