//! What is wrong with a configuration file: each problem with its file, line, column,
//! section and key, collected without repeats. Does not decide what is wrong (see
//! `build`) nor read the file.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    /// 1-based line and column (in characters); `None` for whole-file problems.
    pub position: Option<(usize, usize)>,
    /// `[daemon]`, `[defaults]`, `certificate "orders"`, ...
    pub context: Option<String>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        f.write_str(": ")?;
        if let Some(context) = &self.context {
            write!(f, "{context}: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Every problem found, one per line in `Display`.
    #[error("{}", render_problems(.problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

fn render_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Collects problems, turning byte offsets into lines and columns, without repeats (a
/// bad `[defaults]` value is reported once, not once per certificate).
pub(crate) struct Problems {
    path: PathBuf,
    line_starts: Vec<usize>,
    text: String,
    list: Vec<Problem>,
    seen: HashSet<String>,
}

impl Problems {
    pub(crate) fn new(path: &Path, text: &str) -> Problems {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Problems {
            path: path.to_owned(),
            line_starts,
            text: text.to_owned(),
            list: Vec::new(),
            seen: HashSet::new(),
        }
    }

    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|start| *start <= offset);
        let start = self.line_starts[line - 1];
        let column = self.text[start..offset].chars().count() + 1;
        (line, column)
    }

    pub(crate) fn at(
        &mut self,
        span: Range<usize>,
        context: Option<&str>,
        key: Option<&str>,
        message: impl Into<String>,
    ) {
        let problem = Problem {
            path: self.path.clone(),
            position: Some(self.position(span.start)),
            context: context.map(str::to_owned),
            key: key.map(str::to_owned),
            message: message.into(),
        };
        self.push(problem);
    }

    pub(crate) fn whole_file(&mut self, message: impl Into<String>) {
        let problem = Problem {
            path: self.path.clone(),
            position: None,
            context: None,
            key: None,
            message: message.into(),
        };
        self.push(problem);
    }

    fn push(&mut self, problem: Problem) {
        if self.seen.insert(problem.to_string()) {
            self.list.push(problem);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(crate) fn into_error(mut self) -> ConfigError {
        self.list.sort_by_key(|p| p.position);
        ConfigError::Invalid {
            path: self.path,
            problems: self.list,
        }
    }
}
