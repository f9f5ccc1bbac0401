//! Checks the uses `scan` finds in a source tree against a table of layers and an
//! allow-list, and reports every upward use and every cycle with its file and line.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::scan::{Scan, blank, scan, tokenize};

/// A source tree and its rules (see the tables in `layers.rs`).
pub struct Tree {
    /// Relative to the package, `src` or `sim/src`.
    pub root: &'static str,
    /// Bottom first: a name, and the top-level modules of the layer separated by spaces.
    pub layers: &'static [(&'static str, &'static str)],
    /// Top-level modules whose files must not use each other in a cycle.
    pub checked_inside: &'static str,
    /// (file, used module) pairs let through.
    pub allowed: &'static [(&'static str, &'static str)],
}

/// One file of the tree, with what it uses.
struct Source {
    /// For messages: `src/pki/verify.rs`.
    file: String,
    /// `["pki", "verify"]`.
    module: Vec<String>,
    scan: Scan,
}

/// (user, used) -> each (file, line) of a use.
type Edges = BTreeMap<(String, String), Vec<(String, usize)>>;

/// Panics with every problem found in `tree`; prints the table and the uses either way.
pub fn check(tree: &Tree) {
    let (sources, modules) = read(tree.root);
    let mut problems = Vec::new();
    let layer_of: BTreeMap<&str, usize> = tree
        .layers
        .iter()
        .enumerate()
        .flat_map(|(n, (_, names))| names.split_whitespace().map(move |m| (m, n)))
        .collect();
    let tops: BTreeSet<&str> = sources.iter().map(|s| s.module[0].as_str()).collect();
    for top in tops.iter().filter(|t| !layer_of.contains_key(*t)) {
        problems.push(format!(
            "module `{top}` is in no layer: add it to the table"
        ));
    }
    for name in layer_of.keys().filter(|m| !tops.contains(*m)) {
        problems.push(format!(
            "the table names `{name}`, which {} lacks",
            tree.root
        ));
    }

    let (top, inner) = edges(tree, &sources, &modules, &tops, &mut problems);
    for ((a, b), at) in &top {
        let (Some(&la), Some(&lb)) = (layer_of.get(a.as_str()), layer_of.get(b.as_str())) else {
            continue;
        };
        if lb > la {
            let (na, nb) = (tree.layers[la].0, tree.layers[lb].0);
            for (file, line) in at {
                problems.push(format!(
                    "{file}:{line}: `{a}` (layer {la}, {na}) uses `{b}` (layer {lb}, {nb}), a higher layer"
                ));
            }
        }
    }
    cycles(&top, &mut problems);
    for edges in inner.values() {
        cycles(edges, &mut problems);
    }

    let mut report = format!("layers of {}, bottom first:\n", tree.root);
    for (n, (name, names)) in tree.layers.iter().enumerate() {
        let _ = writeln!(report, "  {n} {name}: {names}");
    }
    report.push_str("uses between modules:\n");
    for ((a, b), at) in top.iter().chain(inner.values().flatten()) {
        let (file, line) = &at[0];
        let _ = writeln!(
            report,
            "  {a} -> {b} ({} uses, first {file}:{line})",
            at.len()
        );
    }
    println!("{report}");
    assert!(
        problems.is_empty(),
        "{} problem(s) with the layers of {}:\n{}\n\n{report}",
        problems.len(),
        tree.root,
        problems.join("\n")
    );
}

/// Every file's uses (test-only files left out), and every module path of the tree.
fn read(root: &str) -> (Vec<Source>, BTreeSet<Vec<String>>) {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join(root);
    let mut files = Vec::new();
    collect(&base, &mut files);
    let mut modules = BTreeSet::new();
    let mut kept = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(&base)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        if rel == "lib.rs" || rel == "main.rs" {
            continue;
        }
        let mut module: Vec<String> = rel
            .trim_end_matches(".rs")
            .split('/')
            .map(String::from)
            .collect();
        if module.last().is_some_and(|m| m == "mod") {
            module.pop();
        }
        modules.insert(module.clone());
        let name = module.last().unwrap();
        if name != "tests" && !name.ends_with("_tests") && name != "testutil" {
            kept.push((format!("{root}/{rel}"), module, file));
        }
    }
    let sources = kept
        .into_iter()
        .map(|(file, module, path)| {
            let text = std::fs::read_to_string(path).unwrap();
            let scan = scan(&tokenize(&blank(&text)), &module, &modules);
            Source { file, module, scan }
        })
        .collect();
    (sources, modules)
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            collect(&entry, files);
        } else if entry.extension().is_some_and(|e| e == "rs") {
            files.push(entry);
        }
    }
}

/// For each top-level module, the names its own file re-exports, each with the submodule
/// it comes from: `crate::report::CertState` is a use of `report::state`.
fn reexports(sources: &[Source]) -> BTreeMap<String, BTreeMap<String, String>> {
    let public_of: BTreeMap<&[String], &BTreeSet<String>> = sources
        .iter()
        .map(|s| (s.module.as_slice(), &s.scan.public))
        .collect();
    let mut all: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for s in sources.iter().filter(|s| s.module.len() == 1) {
        for u in &s.scan.uses {
            let Some(exported) = &u.exported else {
                continue;
            };
            if u.path.len() < 2 || u.path[0] != s.module[0] {
                continue;
            }
            let names = all.entry(s.module[0].clone()).or_default();
            let submodule = &u.path[1];
            match exported {
                Some(name) => {
                    names.insert(name.clone(), submodule.clone());
                }
                // A glob: every public name of the file it points at.
                None => {
                    for name in public_of
                        .get(u.path.as_slice())
                        .copied()
                        .into_iter()
                        .flatten()
                    {
                        names.insert(name.clone(), submodule.clone());
                    }
                }
            }
        }
    }
    all
}

/// The uses between top-level modules, and between the files of each module named in
/// `checked_inside`; the allowed ones left out (and an allowance that matched nothing
/// reported).
fn edges(
    tree: &Tree,
    sources: &[Source],
    modules: &BTreeSet<Vec<String>>,
    tops: &BTreeSet<&str>,
    problems: &mut Vec<String>,
) -> (Edges, BTreeMap<String, Edges>) {
    let reexports = reexports(sources);
    let checked: BTreeSet<&str> = tree.checked_inside.split_whitespace().collect();
    let (mut top, mut inner) = (Edges::new(), BTreeMap::<String, Edges>::new());
    let mut allowances_used = BTreeSet::new();
    for s in sources {
        let from = &s.module[0];
        for u in &s.scan.uses {
            let to = &u.path[0];
            let (edges, a, b) = if from != to && tops.contains(to.as_str()) {
                (&mut top, from.clone(), to.clone())
            } else if from == to && checked.contains(from.as_str()) {
                // A submodule, or a name re-exported from one, or the module's own file.
                let file_of =
                    |m: Option<&String>| m.map_or(from.clone(), |m| format!("{from}::{m}"));
                let target = match u.path.get(1) {
                    Some(m) if modules.contains(&u.path[..2]) => Some(m),
                    Some(name) => reexports.get(from).and_then(|r| r.get(name)),
                    None => None,
                };
                let (a, b) = (file_of(s.module.get(1)), file_of(target));
                if a == b {
                    continue;
                }
                (inner.entry(from.clone()).or_default(), a, b)
            } else {
                continue;
            };
            if let Some(n) = tree
                .allowed
                .iter()
                .position(|&(f, m)| f == s.file && m == b)
            {
                allowances_used.insert(n);
                continue;
            }
            let at = edges.entry((a, b)).or_default();
            if at.last() != Some(&(s.file.clone(), u.line)) {
                at.push((s.file.clone(), u.line));
            }
        }
    }
    for (n, (file, module)) in tree.allowed.iter().enumerate() {
        if !allowances_used.contains(&n) {
            problems.push(format!(
                "the allowance for `{module}` in {file} is no longer used: remove it"
            ));
        }
    }
    (top, inner)
}

/// Reports every group of modules that use each other in a cycle, with every use among
/// them (each is part of a cycle).
fn cycles(edges: &Edges, problems: &mut Vec<String>) {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        next.entry(a).or_default().push(b);
    }
    let reach = |from: &str| {
        let (mut seen, mut todo) = (BTreeSet::new(), vec![from]);
        while let Some(n) = todo.pop() {
            for &m in next.get(n).into_iter().flatten() {
                if seen.insert(m) {
                    todo.push(m);
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&str, BTreeSet<&str>> = next.keys().map(|&n| (n, reach(n))).collect();
    let mut reported = BTreeSet::new();
    for (&n, seen) in &reachable {
        if !seen.contains(n) || reported.contains(n) {
            continue;
        }
        let group: BTreeSet<&str> = seen
            .iter()
            .copied()
            .filter(|m| reachable.get(m).is_some_and(|r| r.contains(n)))
            .collect();
        let names: Vec<String> = group.iter().map(|m| format!("`{m}`")).collect();
        let mut message = format!("cycle among {}:", names.join(", "));
        for ((a, b), at) in edges {
            if group.contains(a.as_str()) && group.contains(b.as_str()) {
                let (file, line) = &at[0];
                let _ = write!(message, "\n  {file}:{line}: `{a}` uses `{b}`");
                if at.len() > 1 {
                    let _ = write!(message, " (and {} more uses)", at.len() - 1);
                }
            }
        }
        problems.push(message);
        reported.extend(group);
    }
}
