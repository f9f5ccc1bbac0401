//! `enroll` with every form of one-time token the Compass Director hands out (the raw
//! token, the base64 `rawEncoded` blob, the legacy connector URL), each on the protocol it
//! fits, and the forms that do not fit: refused before any request, so that the same token
//! still enrolls afterwards. No form of the token reaches the output.

mod support;

use std::time::Duration;

use kyma_connector_sim::{DirectorToken, Endpoint, SimConfig};
use support::invoke::Run;
use support::world::{Settings, World};

const LONG: Duration = Duration::from_secs(3600);

/// A world whose config names one certificate `app` of `protocol`, without
/// `connector_url` (so that the URL must come from the token or from `--url`).
fn world_without_connector_url(protocol: &str) -> World {
    let world = World::with(Settings::one_shot(), LONG);
    let mut cert = world.cert("app", protocol);
    cert.connector_url = None;
    world.write_config(&[cert]);
    let text = std::fs::read_to_string(&world.config).unwrap();
    assert!(!text.contains("connector_url"), "{text}");
    world
}

/// `enroll --name app --token-file -` with `text` on standard input, plus `extra` arguments.
fn enroll_with(world: &World, text: &str, extra: &[&str]) -> Run {
    let mut args = vec!["enroll", "--name", "app", "--token-file", "-"];
    args.extend_from_slice(extra);
    world.command(&args).stdin(text).run()
}

/// Asserts the run enrolled `app` and showed no form of the token.
fn assert_enrolled(world: &World, run: Run, director: &DirectorToken) {
    let run = run.ok();
    assert!(run.stdout().contains("enrolled app"), "{}", run.stdout());
    assert_no_token(&run, director);
    let files = world.files("app");
    assert!(
        files["cert.pem"].starts_with(b"-----BEGIN CERTIFICATE-----"),
        "cert.pem written"
    );
}

fn assert_no_token(run: &Run, director: &DirectorToken) {
    let shown = format!("{}{}", run.stdout(), run.stderr());
    for secret in [
        &director.token,
        &director.raw_encoded,
        &director.legacy_connector_url,
    ] {
        assert!(
            !shown.contains(secret.as_str()),
            "a token form shown: {shown}"
        );
    }
}

/// Requests the simulator saw on its token-secured endpoints (either protocol).
fn token_requests(world: &World) -> u64 {
    let counts = world.sim.request_counts();
    [
        Endpoint::CompassConfiguration,
        Endpoint::CompassSign,
        Endpoint::CompassInvalid,
        Endpoint::RestInfo,
        Endpoint::RestSign,
    ]
    .into_iter()
    .map(|e| counts.get(e))
    .sum()
}

#[test]
fn compass_enrolls_with_the_raw_encoded_blob_and_its_connector_url() {
    let world = world_without_connector_url("compass");
    let director = world.sim.mint_director_token(world.sim.app());
    // A file written by hand or by a UI ends with newlines.
    let run = enroll_with(&world, &format!("{}\n\n", director.raw_encoded), &[]);
    assert_enrolled(&world, run, &director);
    assert_eq!(world.sim.request_counts().get(Endpoint::CompassSign), 1);
}

#[test]
fn compass_enrolls_with_the_raw_token_and_the_configured_connector_url() {
    let world = World::with(Settings::one_shot(), LONG);
    world.write_config(&[world.compass("app")]);
    let director = world.sim.mint_director_token(world.sim.app());
    let run = world
        .command(&["enroll", "--name", "app", "--token", &director.token])
        .run();
    assert_enrolled(&world, run, &director);
}

#[test]
fn compass_uses_the_token_of_a_legacy_url_with_the_configured_connector_url() {
    let world = World::with(Settings::one_shot(), LONG);
    world.write_config(&[world.compass("app")]);
    let director = world.sim.mint_director_token(world.sim.app());
    let run = enroll_with(&world, &director.legacy_connector_url, &[]);
    assert_enrolled(&world, run, &director);
    let counts = world.sim.request_counts();
    assert_eq!(counts.get(Endpoint::CompassSign), 1);
    assert_eq!(
        counts.get(Endpoint::RestInfo),
        0,
        "the REST adapter was not asked"
    );
}

#[test]
fn kyma_rest_enrolls_with_the_legacy_connector_url_alone() {
    let world = world_without_connector_url("kyma-rest");
    let director = world.sim.mint_director_token(world.sim.app());
    let run = enroll_with(&world, &format!("{}\n", director.legacy_connector_url), &[]);
    assert_enrolled(&world, run, &director);
    assert_eq!(world.sim.request_counts().get(Endpoint::RestSign), 1);
}

#[test]
fn kyma_rest_enrolls_with_the_blob_or_raw_token_and_a_configuration_url() {
    let world = world_without_connector_url("kyma-rest");
    for form in ["blob", "raw"] {
        let director = world.sim.mint_director_token(world.sim.app());
        let mut url = url::Url::parse(&director.legacy_connector_url).unwrap();
        url.set_query(None);
        let text = match form {
            "blob" => &director.raw_encoded,
            _ => &director.token,
        };
        let run = enroll_with(&world, text, &["--url", url.as_str()]);
        assert_enrolled(&world, run, &director);
    }
}

#[test]
fn compass_refuses_a_legacy_url_without_a_connector_url_and_the_token_stays_usable() {
    let world = world_without_connector_url("compass");
    let director = world.sim.mint_director_token(world.sim.app());
    let run = enroll_with(&world, &director.legacy_connector_url, &[]).fails_with(2);
    let stderr = run.stderr();
    assert!(
        stderr.contains("legacy connector URL does not fit a compass certificate"),
        "{stderr}"
    );
    assert!(
        stderr.contains("compass accepts the rawEncoded blob"),
        "{stderr}"
    );
    assert_no_token(&run, &director);
    assert_eq!(token_requests(&world), 0, "refused before any request");

    // The same token, as the blob, still enrolls: it was not burned.
    let run = enroll_with(&world, &director.raw_encoded, &[]);
    assert_enrolled(&world, run, &director);
}

#[test]
fn kyma_rest_refuses_a_blob_without_a_url_and_the_token_stays_usable() {
    let world = world_without_connector_url("kyma-rest");
    let director = world.sim.mint_director_token(world.sim.app());
    let run = enroll_with(&world, &director.raw_encoded, &[]).fails_with(2);
    let stderr = run.stderr();
    assert!(
        stderr.contains("rawEncoded blob does not fit a kyma-rest certificate"),
        "{stderr}"
    );
    assert!(
        stderr.contains("kyma-rest accepts the legacy connector URL"),
        "{stderr}"
    );
    assert_no_token(&run, &director);

    // A raw token without a configuration URL: refused the same way.
    let run = enroll_with(&world, &director.token, &[]).fails_with(2);
    assert!(
        run.stderr().contains("no enrollment URL"),
        "{}",
        run.stderr()
    );
    assert_no_token(&run, &director);
    assert_eq!(token_requests(&world), 0, "refused before any request");

    let run = enroll_with(&world, &director.legacy_connector_url, &[]);
    assert_enrolled(&world, run, &director);
}

#[test]
fn a_garbled_token_file_is_a_usage_error_that_shows_no_token() {
    let world = World::with(Settings::one_shot(), LONG);
    world.write_config(&[world.compass("app")]);
    let director = world.sim.mint_director_token(world.sim.app());
    let two_tokens = format!("{}\n{}\n", director.token, director.token);
    let run = enroll_with(&world, &two_tokens, &[]).fails_with(2);
    assert!(run.stderr().contains("whitespace"), "{}", run.stderr());
    assert_no_token(&run, &director);
    let broken_blob = &director.raw_encoded[..director.raw_encoded.len() / 2];
    let run = enroll_with(&world, &format!("{{\"token\": {broken_blob}"), &[]).fails_with(2);
    assert!(run.stderr().contains("rawEncoded blob"), "{}", run.stderr());
    assert_eq!(token_requests(&world), 0);
}

#[test]
fn a_used_token_is_refused_with_a_clear_error() {
    let world = World::with(Settings::one_shot(), LONG);
    world.write_config(&[world.compass("app")]);
    let token = world.sim.mint_compass_token();
    world
        .command(&["enroll", "--name", "app", "--token", &token])
        .run()
        .ok();
    let before = world.files("app");
    let again = world
        .command(&["enroll", "--name", "app", "--token", &token])
        .run()
        .fails_with(1);
    assert!(
        again.stderr().contains("token"),
        "names the token problem: {}",
        again.stderr()
    );
    assert!(!again.stderr().contains(&token), "never prints the token");
    assert_eq!(world.files("app"), before);
}

#[test]
fn an_expired_token_is_refused_for_both_protocols() {
    let world = World::with_sim(
        Settings::one_shot(),
        SimConfig {
            validity: LONG,
            token_ttl: Duration::from_secs(1),
            ..SimConfig::default()
        },
    );
    world.write_config(&[world.compass("a"), world.kyma_rest("b")]);
    let token = world.sim.mint_compass_token();
    let (_, url) = world.sim.mint_rest_token();
    std::thread::sleep(Duration::from_millis(1500));
    let compass = world
        .command(&["enroll", "--name", "a", "--token", &token])
        .run()
        .fails_with(1);
    assert!(compass.stderr().contains("token"), "{}", compass.stderr());
    let rest = world
        .command(&["enroll", "--name", "b", "--url", url.as_str()])
        .run()
        .fails_with(1);
    assert!(
        rest.stderr().contains("403") || rest.stderr().contains("token"),
        "{}",
        rest.stderr()
    );
    assert!(
        !rest.stderr().contains(url.query().unwrap()),
        "never prints the token"
    );
}

#[test]
fn token_file_keeps_the_token_off_the_command_line() {
    let world = World::with(Settings::one_shot(), LONG);
    world.write_config(&[world.compass("app")]);
    let file = world.root().join("token");
    std::fs::write(&file, format!("{}\n", world.sim.mint_compass_token())).unwrap();
    world
        .command(&[
            "enroll",
            "--name",
            "app",
            "--token-file",
            file.to_str().unwrap(),
        ])
        .run()
        .ok();
    assert_eq!(world.status("app")["state"], "valid");
}
