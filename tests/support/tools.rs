//! Programs besides the binary under test that some suites need installed.

use std::path::Path;

/// Whether `program` can be run; else, unless `KYMA_CERTD_NO_PROMETHEUS=1`, fails the test
/// with what to install. Returns `false` when the test should be skipped.
pub fn prometheus_installed(program: &str) -> bool {
    if Path::new(program).is_file() || which(program) {
        return true;
    }
    if std::env::var("KYMA_CERTD_NO_PROMETHEUS").as_deref() == Ok("1") {
        eprintln!("skipped: {program} is not installed and KYMA_CERTD_NO_PROMETHEUS=1");
        return false;
    }
    panic!(
        "{program} is not installed: install Debian's `prometheus` package (it ships prometheus \
         and promtool), or set KYMA_CERTD_NO_PROMETHEUS=1 to skip the tests that need it"
    );
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
