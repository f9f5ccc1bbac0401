//! The one-shot commands log as the configuration says: with `log_format = "json"` (an
//! init container whose ConfigMap asks for JSON) every line they write, on standard
//! output and standard error, success and failure alike, is one JSON object; with text,
//! the result is a plain line.

mod support;

use std::time::Duration;

use support::invoke::Run;
use support::world::{Settings, World};

const LONG: Duration = Duration::from_secs(3600);

/// Every non-empty line of `text`, parsed; panics on a line that is not a JSON object.
fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let value: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}\n{text}"));
            assert!(
                value["level"].is_string() && value["message"].is_string(),
                "{l}"
            );
            value
        })
        .collect()
}

fn all_json(run: &Run) -> Vec<serde_json::Value> {
    let mut lines = json_lines(&run.stdout());
    lines.extend(json_lines(&run.stderr()));
    lines
}

#[test]
fn enroll_writes_json_lines_when_the_configuration_asks_for_json() {
    let mut world = World::with(Settings::one_shot(), LONG);
    world.settings.daemon.set("log_format = \"json\"");
    world.settings.daemon.set("log_level = \"info\"");
    world.write_config(&[world.compass("app")]);

    let enrolled = world.try_enroll("app").ok();
    let lines = all_json(&enrolled);
    let result = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("enrolled app:"))
        })
        .unwrap_or_else(|| panic!("no result line: {lines:?}"));
    assert_eq!(result["name"], "app");
    assert_eq!(result["level"], "INFO");

    // The init container's second start: skipped, said in JSON.
    let token = world.sim.mint_compass_token();
    let again = world
        .command(&[
            "enroll",
            "--name",
            "app",
            "--if-needed",
            "--token-file",
            "-",
        ])
        .stdin(&token)
        .run()
        .ok();
    let lines = all_json(&again);
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("the token was not used"))),
        "{lines:?}"
    );

    // A failure is a JSON line too, with its exit code.
    let refused = world
        .command(&["enroll", "--name", "app", "--token-file", "-"])
        .stdin("no-such-token")
        .run()
        .fails_with(1);
    let lines = all_json(&refused);
    let error = lines
        .iter()
        .find(|l| l["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no error line: {lines:?}"));
    assert_eq!(error["exit_code"], 1, "{error}");
}

#[test]
fn enroll_prints_a_plain_line_with_text_logs() {
    let world = World::with(Settings::one_shot(), LONG);
    world.write_config(&[world.compass("app")]);
    let enrolled = world.try_enroll("app").ok();
    assert!(
        enrolled.stdout().starts_with("enrolled app: "),
        "{}",
        enrolled.stdout()
    );
    assert!(enrolled.stderr().is_empty(), "{}", enrolled.stderr());
}
