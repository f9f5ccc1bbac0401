//! Reads Rust source text into the uses of other modules it makes, without a parser:
//! comments and literals are blanked out, the rest is cut into tokens, and paths that
//! start with `crate`, `super`, `self` or a submodule's name are resolved to absolute
//! module paths. The item after a `#[cfg(test)]` is skipped.

use std::collections::BTreeSet;

/// One use of another module's item: where, and the absolute path (without `crate`).
pub struct Use {
    pub line: usize,
    pub path: Vec<String>,
    /// From a `pub use`: the name it is re-exported under, `None` for a glob.
    pub exported: Option<Option<String>>,
}

/// What one file uses, and what it makes public.
pub struct Scan {
    pub uses: Vec<Use>,
    /// Names of the items the file declares `pub` outside any block.
    pub public: BTreeSet<String>,
}

/// The text with comments and the insides of string and character literals replaced by
/// spaces, line breaks kept.
pub fn blank(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let ident = |i: usize| c.get(i).is_some_and(|c| c.is_alphanumeric() || *c == '_');
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    // Skips from `i` to `end`, keeping line breaks.
    let skip_to = |out: &mut String, from: usize, end: usize| {
        out.extend(c[from..end.min(c.len())].iter().filter(|&&ch| ch == '\n'));
        out.push(' ');
        end
    };
    while i < c.len() {
        let at = |k: usize| c.get(i + k).copied();
        if at(0) == Some('/') && at(1) == Some('/') {
            let end = (i..c.len()).find(|&k| c[k] == '\n').unwrap_or(c.len());
            i = skip_to(&mut out, i, end);
        } else if at(0) == Some('/') && at(1) == Some('*') {
            let (mut k, mut depth) = (i, 0);
            while k < c.len() {
                if c[k] == '/' && c.get(k + 1) == Some(&'*') {
                    depth += 1;
                    k += 2;
                } else if c[k] == '*' && c.get(k + 1) == Some(&'/') {
                    depth -= 1;
                    k += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    k += 1;
                }
            }
            i = skip_to(&mut out, i, k);
        } else if at(0) == Some('r')
            && (!ident(i.wrapping_sub(1)) || (c[i - 1] == 'b' && !ident(i.wrapping_sub(2))))
            && {
                let h = (1..).take_while(|&k| at(k) == Some('#')).count();
                at(h + 1) == Some('"')
            }
        {
            let hashes = (1..).take_while(|&k| at(k) == Some('#')).count();
            let mut k = i + hashes + 2;
            while k < c.len() && !(c[k] == '"' && (1..=hashes).all(|h| c.get(k + h) == Some(&'#')))
            {
                k += 1;
            }
            out.push('"');
            i = skip_to(&mut out, i, k + hashes + 1);
            out.push('"');
        } else if at(0) == Some('"') {
            let mut k = i + 1;
            while k < c.len() && c[k] != '"' {
                k += if c[k] == '\\' { 2 } else { 1 };
            }
            out.push('"');
            i = skip_to(&mut out, i, k + 1);
            out.push('"');
        } else if at(0) == Some('\'') && at(1) == Some('\\') {
            let end = (i + 3..c.len()).find(|&k| c[k] == '\'').unwrap_or(c.len());
            i = skip_to(&mut out, i, end + 1);
        } else if at(0) == Some('\'') && at(2) == Some('\'') {
            i = skip_to(&mut out, i, i + 3);
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

pub struct Token {
    text: String,
    line: usize,
}

pub fn tokenize(code: &str) -> Vec<Token> {
    let c: Vec<char> = code.chars().collect();
    let (mut tokens, mut line, mut i) = (Vec::new(), 1, 0);
    while i < c.len() {
        let start = i;
        if c[i] == '\n' {
            line += 1;
            i += 1;
            continue;
        } else if c[i].is_whitespace() {
            i += 1;
            continue;
        } else if c[i].is_alphanumeric() || c[i] == '_' {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
        } else if c[i] == ':' && c.get(i + 1) == Some(&':') {
            i += 2;
        } else {
            i += 1;
        }
        tokens.push(Token {
            text: c[start..i].iter().collect(),
            line,
        });
    }
    tokens
}

fn is_ident(text: &str) -> bool {
    text.starts_with(|c: char| c.is_alphabetic() || c == '_')
}

/// The uses and public names of one file of module `module`.
pub fn scan(t: &[Token], module: &[String], modules: &BTreeSet<Vec<String>>) -> Scan {
    let text = |i: usize| t.get(i).map_or("", |t| t.text.as_str());
    let mut scan = Scan {
        uses: Vec::new(),
        public: BTreeSet::new(),
    };
    let mut current = module.to_vec();
    // Inline `mod name { .. }`: the brace depth inside each.
    let mut inline: Vec<usize> = Vec::new();
    let (mut depth, mut i) = (0usize, 0);
    while i < t.len() {
        let word = text(i);
        let public = text(i.wrapping_sub(1)) == "pub"
            || (text(i.wrapping_sub(1)) == ")" && text(i.wrapping_sub(4)) == "pub");
        if ["#", "[", "cfg", "(", "test", ")", "]"]
            .iter()
            .enumerate()
            .all(|(k, w)| text(i + k) == *w)
        {
            i = skip_item(t, i + 7);
        } else if word == "{" {
            depth += 1;
            i += 1;
        } else if word == "}" {
            if inline.last() == Some(&depth) {
                inline.pop();
                current.pop();
            }
            depth = depth.saturating_sub(1);
            i += 1;
        } else if word == "mod" && is_ident(text(i + 1)) && text(i + 2) == "{" {
            current.push(text(i + 1).to_string());
            inline.push(depth + 1);
            i += 2;
        } else if word == "use" && (is_ident(text(i + 1)) || matches!(text(i + 1), "::" | "{")) {
            let mut leaves = Vec::new();
            i = use_tree(t, i + 1, Vec::new(), &mut leaves);
            for (segments, name, line) in leaves {
                if public
                    && depth == 0
                    && let Some(name) = &name
                {
                    scan.public.insert(name.clone());
                }
                if let Some(path) = resolve(&current, &segments, modules) {
                    let exported = (public && depth == 0).then_some(name);
                    scan.uses.push(Use {
                        line,
                        path,
                        exported,
                    });
                }
            }
        } else if (matches!(word, "crate" | "super" | "self")
            || modules.contains(&[current.as_slice(), &[word.to_string()]].concat()))
            && text(i + 1) == "::"
            && !matches!(text(i.wrapping_sub(1)), "::" | ".")
        {
            let line = t[i].line;
            let mut segments = vec![word.to_string()];
            i += 1;
            while text(i) == "::" && is_ident(text(i + 1)) {
                segments.push(text(i + 1).to_string());
                i += 2;
            }
            if let Some(path) = resolve(&current, &segments, modules) {
                scan.uses.push(Use {
                    line,
                    path,
                    exported: None,
                });
            }
        } else {
            if public && depth == 0 {
                // `pub const fn f`, `pub async fn f`, `pub const X`, `pub struct S`, ...
                let mut k = i;
                while matches!(text(k), "async" | "unsafe" | "extern")
                    || (text(k) == "const" && text(k + 1) == "fn")
                {
                    k += 1;
                }
                if matches!(
                    text(k),
                    "struct"
                        | "enum"
                        | "fn"
                        | "const"
                        | "static"
                        | "type"
                        | "trait"
                        | "mod"
                        | "union"
                ) {
                    scan.public.insert(text(k + 1).to_string());
                }
            }
            i += 1;
        }
    }
    scan
}

/// The index after the item that starts at `i`: its attributes, then up to a `;` outside
/// any bracket, or through its `{ .. }` block.
fn skip_item(t: &[Token], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < t.len() {
        match t[i].text.as_str() {
            "(" | "[" => depth += 1,
            ")" | "]" => depth = depth.saturating_sub(1),
            ";" if depth == 0 => return i + 1,
            "{" if depth == 0 => {
                let mut braces = 0usize;
                while i < t.len() {
                    match t[i].text.as_str() {
                        "{" => braces += 1,
                        "}" => {
                            braces -= 1;
                            if braces == 0 {
                                return i + 1;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// Parses the `use` tree at `i` into its leaves; returns the index after it.
/// A leaf of a `use` tree: its path, the name it binds (`None` for a glob), its line.
type Leaf = (Vec<String>, Option<String>, usize);

fn use_tree(t: &[Token], mut i: usize, mut prefix: Vec<String>, leaves: &mut Vec<Leaf>) -> usize {
    let text = |i: usize| t.get(i).map_or("", |t| t.text.as_str());
    loop {
        match text(i) {
            "::" => i += 1,
            "*" => {
                leaves.push((prefix, None, t[i].line));
                return i + 1;
            }
            "{" => {
                i += 1;
                while i < t.len() && text(i) != "}" {
                    i = use_tree(t, i, prefix.clone(), leaves);
                    if text(i) == "," {
                        i += 1;
                    }
                }
                return i + 1;
            }
            word if is_ident(word) => {
                let line = t[i].line;
                i += 1;
                if word != "self" {
                    prefix.push(word.to_string());
                }
                if text(i) == "::" {
                    continue;
                }
                let mut name = prefix.last().cloned();
                if text(i) == "as" {
                    name = Some(text(i + 1).to_string());
                    i += 2;
                }
                leaves.push((prefix, name, line));
                return i;
            }
            _ => return i,
        }
    }
}

/// The absolute module path (without `crate`) of `segments` used in module `current`, if
/// it names something of this crate.
fn resolve(
    current: &[String],
    segments: &[String],
    modules: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let (first, rest) = segments.split_first()?;
    let path = match first.as_str() {
        "crate" => rest.to_vec(),
        "super" => {
            let ups = 1 + rest.iter().take_while(|s| *s == "super").count();
            let base = current.get(..current.len().checked_sub(ups)?)?;
            [base, &rest[ups - 1..]].concat()
        }
        "self" => [current, rest].concat(),
        _ if modules.contains(&[current, std::slice::from_ref(first)].concat()) => {
            [current, segments].concat()
        }
        _ => return None,
    };
    (!path.is_empty()).then_some(path)
}
