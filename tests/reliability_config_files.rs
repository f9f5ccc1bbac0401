//! Hostile configuration files: `check-config` of the real binary on empty, binary, huge,
//! deeply nested and contradictory files: a clear error naming the file every time, never
//! a panic or a stack overflow.

mod support;

use std::time::{Duration, Instant};

use support::invoke::kyma_certd;
use support::results;
use support::world::{Settings, World};

/// `check-config` on `bytes`: exit 2, the file named, no panic, no signal.
fn refused(world: &World, bytes: &[u8], expect: &str) -> (String, Duration) {
    std::fs::write(&world.config, bytes).unwrap();
    let started = Instant::now();
    let output = world.command(&["check-config"]).run();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(2),
        "expected exit 2 ({expect}), got {:?}: {stderr}",
        output.status
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("overflow"),
        "{stderr}"
    );
    assert!(
        stderr.contains(world.config.to_str().unwrap()),
        "the message does not name the file: {stderr}"
    );
    assert!(stderr.contains(expect), "expected {expect:?} in: {stderr}");
    assert!(stderr.lines().count() < 50, "a flood of messages: {stderr}");
    let first = stderr.lines().next().unwrap_or_default().to_owned();
    (results::without_local_paths(&first), took)
}

#[test]
fn check_config_refuses_hostile_files_clearly_without_crashing() {
    let world = World::with(Settings::stress(), Duration::from_secs(3600));
    let file = world.config.to_str().unwrap().to_owned();
    let cert = |name: &str, dir: &str| {
        format!("[[certificate]]\nname = \"{name}\"\nprotocol = \"compass\"\ndir = \"{dir}\"\n")
    };
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng as u8
        })
        .collect();
    let deep_tables = format!("[{}]\nx = 1\n", vec!["a"; 10_000].join("."));
    let deep_inline = format!("x = {}1{}\n", "{a = ".repeat(10_000), "}".repeat(10_000));
    let deep_arrays = format!("x = {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let huge = "# padding\n".repeat(1_000_000);
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        ("binary garbage", garbage, format!("{file}:")),
        ("a 10 MB file", huge.into_bytes(), "larger than 1024 KiB".into()),
        ("10,000 nested table names", deep_tables.into_bytes(), format!("{file}:1:")),
        ("10,000 nested inline tables", deep_inline.into_bytes(), format!("{file}:1:")),
        ("10,000 nested arrays", deep_arrays.into_bytes(), format!("{file}:1:")),
        (
            "duplicate certificate names",
            format!("{}\n{}", cert("orders", "/var/lib/a"), cert("orders", "/var/lib/b")).into_bytes(),
            "already used by the certificate on line 2".into(),
        ),
        (
            "two certificates in one directory",
            format!("{}\n{}", cert("orders", "/var/lib/a"), cert("billing", "/var/lib/a")).into_bytes(),
            "is already used by certificate \"orders\"".into(),
        ),
        (
            "two certificates writing one file",
            format!(
                "{}layout = \"files\"\ncert_file = \"/t/c.pem\"\nkey_file = \"/t/k.pem\"\nchain_file = \"/t/ch.pem\"\nca_file = \"/t/ca.pem\"\n\n{}layout = \"files\"\ncert_file = \"/t/c.pem\"\nkey_file = \"/t/k2.pem\"\nchain_file = \"/t/ch2.pem\"\nca_file = \"/t/ca2.pem\"\n",
                cert("orders", "/var/lib/a"),
                cert("billing", "/var/lib/b")
            )
            .into_bytes(),
            "/t/c.pem is also written by certificate \"orders\"".into(),
        ),
        ("a NUL in a value", b"[[certificate]]\nname = \"a\0b\"\n".to_vec(), format!("{file}:")),
    ];
    let mut rows = Vec::new();
    let mut slowest = Duration::ZERO;
    for (what, bytes, expect) in &cases {
        let (first, took) = refused(&world, bytes, expect);
        slowest = slowest.max(took);
        rows.push(format!("{what}: {first}"));
    }
    // A directory, and a missing file.
    let output = kyma_certd(world.root(), &["check-config"]).run();
    assert_eq!(output.status.code(), Some(2), "{}", output.text());
    let missing = world.path("missing.toml");
    let output = kyma_certd(&missing, &["check-config"]).run();
    assert_eq!(output.status.code(), Some(2), "{}", output.text());
    assert!(output.text().contains(missing.to_str().unwrap()));

    results::record(
        "6b-check-config",
        "`kyma-certd check-config` on 4 KiB of random bytes, a 10 MB file, 10,000 nested table names, inline tables and arrays, duplicate names, two certificates sharing a directory or a file, a NUL in a value, a directory and a missing file",
        "exit 2; the message names the file (and line where meaningful); no panic, no stack overflow, fewer than 50 lines",
        &[
            ("files tried", (cases.len() + 2).to_string()),
            ("slowest", format!("{:.2} s", slowest.as_secs_f64())),
            ("first lines", rows.join(" / ")),
        ],
    );
}
