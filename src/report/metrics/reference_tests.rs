//! `docs/reference.md` lists exactly the metrics the daemon exports, each with its type and
//! labels, and every certificate state: a metric or label added to the exporter without
//! the reference fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::time::UNIX_EPOCH;

use super::*;
use crate::report::format::Format;

const REFERENCE: &str = include_str!("../../../docs/reference.md");

/// The rows of the first table under `heading`.
fn table(heading: &str) -> Vec<Vec<String>> {
    let start = REFERENCE
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("docs/reference.md has no {heading:?}"));
    let rest = &REFERENCE[start + heading.len() + 2..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

fn code_spans(cell: &str) -> BTreeSet<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Every event the registry knows, for three certificates.
fn populated() -> Arc<Metrics> {
    let metrics = Metrics::new("1");
    let t = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
    for name in ["orders", "billing", "edge"] {
        metrics.cert_loaded(name, t(1_750_000_000), t(1_757_776_000));
        metrics.enrolled(name, Some(t(1_749_000_000)));
        metrics.next_renewal(name, Some(t(1_755_000_000)));
        metrics.set_state(name, CertState::Valid);
        metrics.renewal_succeeded(name, Duration::from_millis(700));
        metrics.renewal_failed(name, FailureReason::Network, Duration::from_secs(3));
        metrics.restore_failures(name, 2);
        metrics.hook_ran(name, HookKind::Command, true);
        metrics.hooks_pending(name, 1);
        metrics.token_enrollment(name, false);
        metrics.ca_changed(name);
    }
    metrics.config_reload(true);
    metrics
}

/// Exported families (as Prometheus stores them) with their type and label names, from
/// the classic text format.
fn exported() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let text = String::from_utf8(populated().encode(Format::Classic).to_vec()).unwrap();
    let mut families: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            families.entry(name.to_owned()).or_default().0 = kind.to_owned();
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap();
        let mut name = &line[..name_end];
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix)
                && families
                    .get(base)
                    .is_some_and(|(kind, _)| kind == "histogram")
            {
                name = base;
            }
        }
        let labels: BTreeSet<String> = match line[name_end..].strip_prefix('{') {
            Some(rest) => rest[..rest.find('}').unwrap()]
                .split(',')
                .filter_map(|pair| pair.split_once('=').map(|(k, _)| k.to_owned()))
                .filter(|k| k != "le")
                .collect(),
            None => BTreeSet::new(),
        };
        families
            .entry(name.to_owned())
            .or_default()
            .1
            .extend(labels);
    }
    families
}

#[test]
fn the_reference_documents_exactly_the_exported_metrics_with_type_and_labels() {
    let documented: BTreeMap<String, (String, BTreeSet<String>)> = table("## Metrics")
        .into_iter()
        .map(|row| {
            let name = row[0].trim_matches('`').to_owned();
            (name, (row[1].clone(), code_spans(&row[2])))
        })
        .collect();
    let exported = exported();
    let mut problems = Vec::new();
    for (name, (kind, labels)) in &exported {
        match documented.get(name) {
            None => problems.push(format!(
                "{name} is exported but not documented in docs/reference.md"
            )),
            Some((doc_kind, doc_labels)) => {
                if doc_kind != kind {
                    problems.push(format!("{name} is a {kind}, documented as {doc_kind}"));
                }
                if doc_labels != labels {
                    problems.push(format!(
                        "{name} has labels {labels:?}, documented as {doc_labels:?}"
                    ));
                }
            }
        }
    }
    for name in documented.keys().filter(|n| !exported.contains_key(*n)) {
        problems.push(format!("{name} is documented but not exported"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_reference_lists_every_state() {
    let documented: BTreeSet<String> = table("## States")
        .into_iter()
        .map(|row| row[0].trim_matches('`').to_owned())
        .collect();
    let states: BTreeSet<String> = CertState::ALL
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    assert_eq!(documented, states);
}
