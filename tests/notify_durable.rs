//! Every certificate that becomes current reaches every `on_renew` hook at least once:
//! one-shot `renew` runs the hooks (exit 4 while one fails, retried by the next run),
//! and a daemon killed between the swap and its hooks tells the dependents at its next
//! start. Also: a lost or corrupt `state.json` never blocks a renewal, and
//! `connection.json` travels with each generation.

mod support;

use std::path::Path;
use std::time::Duration;

use support::pem::fingerprint;
use support::world::{Settings, World, toml_path};

const LONG: Duration = Duration::from_secs(3600);

/// The command of a hook appending the announced fingerprint to `log`, failing while
/// `gate` does not exist.
fn logging_hook(log: &Path, gate: &Path) -> String {
    format!(
        "command = [\"sh\", \"-c\", \"test -e \\\"$0\\\" && echo $KYMA_CERTD_FINGERPRINT >> \\\"$1\\\"\", {}, {}]",
        toml_path(gate),
        toml_path(log)
    )
}

fn announced(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn renew_force_runs_the_hooks_once_per_new_certificate() {
    let world = World::with(Settings::one_shot(), LONG);
    let log = world.root().join("announced");
    let gate = world.root().join("gate");
    std::fs::write(&gate, "").unwrap();
    world.write_config(&[world.compass("app").hook(&[logging_hook(&log, &gate)])]);
    world.enroll("app");
    // Enrollment leaves the announcement to the daemon or the next `renew`.
    assert!(announced(&log).is_empty(), "{:?}", announced(&log));

    world
        .command(&["renew", "--force", "--name", "app"])
        .run()
        .ok();
    let renewed = fingerprint(&world.files("app")["cert.pem"]);
    assert_eq!(announced(&log), vec![renewed.clone()]);

    // Nothing new: a second pass tells nobody again.
    world.command(&["renew", "--name", "app"]).run().ok();
    assert_eq!(announced(&log), vec![renewed]);
}

#[test]
fn a_failed_hook_exits_4_stays_pending_and_the_next_renew_delivers_it() {
    // Hooks that failed wait their backoff, retry_min..retry_max, in `renew` as in the
    // daemon.
    let mut settings = Settings::one_shot();
    settings.defaults.set("retry_min = \"2s\"");
    settings.defaults.set("retry_max = \"3s\"");
    let world = World::with(settings, LONG);
    let log = world.root().join("announced");
    let gate = world.root().join("gate");
    world.write_config(&[world.compass("app").hook(&[logging_hook(&log, &gate)])]);
    world.enroll("app");

    let run = world
        .command(&["renew", "--force", "--name", "app"])
        .run()
        .fails_with(4);
    assert!(run.stderr().contains("stay pending"), "{}", run.stderr());
    let renewed = fingerprint(&world.files("app")["cert.pem"]);
    let status = world.status("app");
    assert_eq!(
        status["fingerprint_sha256"],
        renewed.as_str(),
        "the renewal is kept"
    );
    assert_eq!(
        status["hooks_pending"].as_array().unwrap().len(),
        1,
        "{status}"
    );
    assert!(
        status["hook_error"]
            .as_str()
            .unwrap()
            .contains("exited with status 1"),
        "{status}"
    );

    std::fs::write(&gate, "").unwrap();
    // Within the hook's backoff, a run says when its next round is and runs nothing.
    let waiting = world
        .command(&["renew", "--name", "app"])
        .run()
        .fails_with(4);
    assert!(
        waiting.stderr().contains("next round at"),
        "{}",
        waiting.stderr()
    );
    assert!(announced(&log).is_empty());
    std::thread::sleep(std::time::Duration::from_secs(4));
    // Not due, nothing renewed: the pending notification is what this run delivers.
    world.command(&["renew", "--name", "app"]).run().ok();
    assert_eq!(announced(&log), vec![renewed.clone()]);
    let status = world.status("app");
    assert_eq!(
        status["hooks_pending"].as_array().unwrap().len(),
        0,
        "{status}"
    );
    assert_eq!(status["fingerprint_sha256"], renewed.as_str());
}

#[test]
fn a_corrupt_or_deleted_state_json_never_blocks_a_renewal() {
    for protocol in ["compass", "kyma-rest"] {
        let world = World::with(Settings::one_shot(), LONG);
        world.write_config(&[world.cert("app", protocol)]);
        world.enroll("app");
        let dir = world.cert_dir("app");

        std::fs::write(dir.join("state.json"), "{\"consecutive_fail").unwrap();
        let before = fingerprint(&world.files("app")["cert.pem"]);
        world
            .command(&["renew", "--force", "--name", "app"])
            .run()
            .ok();
        let after = fingerprint(&world.files("app")["cert.pem"]);
        assert_ne!(
            before, after,
            "{protocol}: renewed despite a corrupt state.json"
        );
        let aside: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("state.json.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1, "{protocol}: the corrupt file is set aside");

        std::fs::remove_file(dir.join("state.json")).unwrap();
        world
            .command(&["renew", "--force", "--name", "app"])
            .run()
            .ok();
        let again = fingerprint(&world.files("app")["cert.pem"]);
        assert_ne!(after, again, "{protocol}: renewed without a state.json");
    }
}

#[test]
fn connection_json_tells_consumers_what_the_connector_returned() {
    for protocol in ["compass", "kyma-rest"] {
        let world = World::with(Settings::one_shot(), LONG);
        world.write_config(&[world.cert("app", protocol)]);
        world.enroll("app");
        world
            .command(&["renew", "--force", "--name", "app"])
            .run()
            .ok();
        let dir = world.cert_dir("app");
        let text = std::fs::read_to_string(dir.join("connection.json")).unwrap();
        let facts: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(facts["protocol"], protocol, "{text}");
        assert_eq!(
            facts["fingerprint_sha256"],
            fingerprint(&world.files("app")["cert.pem"]).as_str(),
            "{text}"
        );
        assert!(
            facts["client_id"].as_str().is_some_and(|id| !id.is_empty()),
            "{text}"
        );
        assert!(facts["subject"].as_str().unwrap().contains("CN="), "{text}");
        let renewal = facts["renewal_url"].as_str().unwrap();
        let urls = facts["urls"].as_object().unwrap();
        if protocol == "compass" {
            assert!(urls.contains_key("directorURL"), "{text}");
            assert_eq!(urls["certificateSecuredConnectorURL"], renewal, "{text}");
        } else {
            assert!(
                renewal.ends_with("/v1/applications/management/info"),
                "{text}"
            );
            for name in ["metadataUrl", "eventsUrl", "renewCertUrl", "revokeCertUrl"] {
                assert!(urls.contains_key(name), "{name} in {text}");
            }
        }
        assert!(!text.contains("token"), "no token in {text}");
        // It flips with the generation: the link goes through `current`.
        assert_eq!(
            std::fs::read_link(dir.join("connection.json")).unwrap(),
            Path::new("current/connection.json")
        );
    }
}

#[test]
fn a_symlink_planted_in_a_generation_is_refused_not_followed() {
    let world = World::with(Settings::one_shot(), LONG);
    world.write_config(&[world.compass("app")]);
    world.enroll("app");
    let dir = world.cert_dir("app");
    let generation = dir.join(std::fs::read_link(dir.join("current")).unwrap());
    let elsewhere = world.root().join("elsewhere.pem");
    std::fs::copy(generation.join("key.pem"), &elsewhere).unwrap();
    std::fs::remove_file(generation.join("key.pem")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, generation.join("key.pem")).unwrap();

    let run = world
        .command(&["renew", "--force", "--name", "app"])
        .run()
        .fails_with(1);
    assert!(run.stderr().contains("is a symlink"), "{}", run.stderr());
    // Nothing was replaced: the planted link and the file behind it are as they were.
    assert!(
        std::fs::symlink_metadata(generation.join("key.pem"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}
