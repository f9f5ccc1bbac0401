//! The modules of the crate, and those of the connector simulator, form layers that only
//! point down: a module uses modules of its own layer or of lower ones, never of a higher
//! one, and no modules use each other in a cycle, directly or through others. Inside the
//! modules named in `CRATE_CHECKED_INSIDE`, the files (submodules) do not form cycles
//! either; a module's own file (`mod.rs`) counts as one of them, so a file that uses what
//! its parent defines while the parent uses the file is a cycle.
//!
//! A careful text scan, not a parser (`layers/scan.rs`). What counts as a use: a path that
//! starts with `crate::`, `super::` or `self::`, in a `use` tree (`use crate::{a, b::c}`)
//! or in code (`crate::a::f()`), and in a module with submodules a path that starts with
//! one of them (`model::Config`). A name a module's own file re-exports
//! (`crate::report::CertState`, from `pub use state::CertState`) counts as a use of the
//! submodule that defines it.
//!
//! Left out: comments (doc links included) and string literals; test-only code, which may
//! reach anywhere: files named `tests.rs`, `*_tests.rs` or `testutil.rs`, and the item that
//! follows a `#[cfg(test)]`. `lib.rs` only declares and re-exports modules, and a
//! `main.rs` is a binary, another crate.
//!
//! To add a module, put it into the lowest layer that holds everything it uses (a failure
//! names the use that does not fit). `cargo test --test layers -- --nocapture` prints the
//! tables and every use between modules.

#[path = "layers/check.rs"]
mod check;
#[path = "layers/scan.rs"]
mod scan;

use std::collections::BTreeSet;

use check::{Tree, check};

/// `src/`, bottom first: a name for messages, and the top-level modules of the layer.
const CRATE_LAYERS: &[(&str, &str)] = &[
    // Helpers that know nothing of certificates; `schedule` is pure arithmetic on times.
    (
        "helpers",
        "errors memory logging time_text clock schedule systemd",
    ),
    // One concern each: keys and certificates, the connector protocols, one-time tokens,
    // the hooks run after a swap, the extra output files.
    ("parts", "pki protocol token hooks outputs"),
    // `config` reads the configuration into the parts' types. `report` holds the metrics
    // and the failure reasons `flow` classifies its errors into.
    ("configuration and reporting", "config report"),
    ("storage", "store"),
    // Enroll, renew, revoke, tell the dependents, the policy and the ledger.
    ("renewal path", "flow"),
    ("daemon", "daemon"),
    // `demo` is a command: it uses `commands`, `cli` and `exit`.
    ("command line", "commands demo cli app exit man"),
];

/// Modules whose files must not use each other in a cycle.
const CRATE_CHECKED_INSIDE: &str = "pki protocol store config report hooks token flow daemon";

/// Uses that break a rule today, each waiting for a change in code owned elsewhere: (file,
/// the module it uses), where the module is a top-level one (`app`) or, for a cycle inside
/// a module, a file of it (`store` for `store/mod.rs`, `store::fsio`). One entry lets every
/// such use in the file through. An entry that no longer matches fails the test: remove it.
const CRATE_ALLOWED: &[(&str, &str)] = &[];

/// `sim/src`, bottom first. The handlers answer one protocol each; the router (`server`)
/// accepts connections and hands each request to its handler.
const SIM_LAYERS: &[(&str, &str)] = &[
    ("leaves", "error subject tokens respond"),
    ("parts", "config csr pki peer answers fault registry"),
    ("state", "shared"),
    ("handlers", "compass rest admin"),
    ("router", "server"),
    ("simulator", "simulator"),
];

#[test]
fn crate_modules_only_point_down() {
    check(&Tree {
        root: "src",
        layers: CRATE_LAYERS,
        checked_inside: CRATE_CHECKED_INSIDE,
        allowed: CRATE_ALLOWED,
    });
}

#[test]
fn simulator_modules_only_point_down() {
    check(&Tree {
        root: "sim/src",
        layers: SIM_LAYERS,
        checked_inside: "",
        allowed: &[],
    });
}

/// The scan itself, on a made-up file of module `m`.
#[test]
fn the_scan_finds_uses_and_skips_comments_strings_and_tests() {
    let text = r##"
        use crate::{a, b::{self, C}};
        use super::sibling::X;
        // crate::in_comment
        /* crate::in_block /* nested */ crate::still */
        const S: &str = "crate::in_string";
        const R: &str = r#"crate::in_raw "quoted""#;
        const Q: char = '"';
        fn f<'a>(x: &'a str) { crate::c::call(); child::g(); y.child::h(); }
        #[cfg(test)]
        mod tests { use crate::hidden; fn t() { if true { crate::hidden2() } } }
        mod inline { use super::*; use super::super::up::Z; }
        pub use child::{Re as Exported, Other};
    "##;
    let path = |text: &str| text.split("::").map(String::from).collect::<Vec<_>>();
    let modules = BTreeSet::from([path("m"), path("m::child"), path("sibling"), path("up")]);
    let scanned = scan::scan(&scan::tokenize(&scan::blank(text)), &path("m"), &modules);
    let found: Vec<String> = scanned
        .uses
        .iter()
        .map(|u| format!("{}:{}", u.line, u.path.join("::")))
        .collect();
    let expected = "2:a 2:b 2:b::C 3:sibling::X 9:c::call 9:m::child::g 12:m 12:up::Z \
                    13:m::child::Re 13:m::child::Other";
    assert_eq!(found.join(" "), expected);
    let public: Vec<&str> = scanned.public.iter().map(String::as_str).collect();
    assert_eq!(public, ["Exported", "Other"]);
}

/// `state.json` has one writer: outside the store itself, only the ledger
/// (`src/flow/ledger.rs`) changes it; everything else records facts through the ledger.
/// Test code may write fixtures.
#[test]
fn state_json_has_one_writer() {
    let mut writers = Vec::new();
    let mut files = vec![std::path::PathBuf::from("src")];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap();
        let test_only = name == "tests.rs" || name.ends_with("_tests.rs") || name == "testutil.rs";
        if !name.ends_with(".rs") || test_only || path.starts_with("src/store") {
            continue;
        }
        // The code before the first `#[cfg(test)]`, without comments and strings.
        let text = std::fs::read_to_string(&path).unwrap();
        let code = scan::blank(text.split("#[cfg(test)]").next().unwrap());
        for (n, line) in code.lines().enumerate() {
            if (line.contains(".update_state(") || line.contains(".write_state("))
                && path != std::path::Path::new("src/flow/ledger.rs")
            {
                writers.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        writers.is_empty(),
        "state.json written outside the ledger:\n{}",
        writers.join("\n")
    );
}
