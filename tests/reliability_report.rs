//! Renders `docs/reliability.md` from the results the reliability tests wrote under
//! `target/tmp/reliability/`. `#[ignore]`d, and does nothing unless
//! `KYMA_CERTD_WRITE_REPORT=1`: `tests/crash/report.sh` sets it after running the suite,
//! so a plain `cargo test -- --ignored` never rewrites the file. It refuses to write a
//! table with scenarios missing.

mod support;

use support::results;
use support::world::ROOT_PREFIX;

/// Every scenario the suite records, in table order.
const SCENARIOS: [&str; 15] = [
    "1-crash",
    "2a-disk-full",
    "2b-disk-unwritable",
    "2c-disk-readonly-mount",
    "2d-disk-vanished",
    "3-faults",
    "4a-stall-endless",
    "4b-longer-lifetime",
    "5a-tls-trust-and-name",
    "5b-tls-plain-http",
    "6a-input-properties",
    "6b-check-config",
    "7a-modes",
    "7b-secrets-commands",
    "7c-metrics-port",
];

#[test]
#[ignore = "run by tests/crash/report.sh after the reliability suite"]
fn writes_docs_reliability_md_from_the_latest_results() {
    if std::env::var_os("KYMA_CERTD_WRITE_REPORT").is_none() {
        eprintln!(
            "not writing docs/reliability.md: tests/crash/report.sh sets KYMA_CERTD_WRITE_REPORT"
        );
        return;
    }
    let missing: Vec<&str> = SCENARIOS
        .iter()
        .filter(|id| !results::dir().join(format!("{id}.json")).exists())
        .copied()
        .collect();
    assert!(
        missing.is_empty(),
        "no results for {missing:?}: run the whole suite first (tests/crash/report.sh)"
    );
    let markdown = results::render();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reliability.md");
    std::fs::write(&path, &markdown).expect("writing docs/reliability.md");
    assert!(
        !markdown.contains(ROOT_PREFIX),
        "a temporary path slipped into the report"
    );
    eprintln!("wrote {} ({} bytes)", path.display(), markdown.len());
}
