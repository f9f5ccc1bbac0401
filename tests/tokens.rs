//! `enroll` with every form of one-time token the Compass Director hands out (the raw
//! token, the base64 `rawEncoded` blob, the legacy connector URL), each on the protocol it
//! fits, and the forms that do not fit: refused before any request, so that the same token
//! still enrolls afterwards. No form of the token reaches the output.

#[path = "support/cli.rs"]
mod harness;

use std::time::Duration;

use harness::{Cert, Env, Run};
use kyma_connector_sim::{DirectorToken, Endpoint};

const LONG: Duration = Duration::from_secs(3600);

/// An environment whose config names one certificate `app` of `protocol`, without
/// `connector_url` (so that the URL must come from the token or from `--url`).
async fn env_without_connector_url(protocol: &str) -> Env {
    let env = Env::start(LONG).await;
    let cert = match protocol {
        "compass" => Cert::compass("app"),
        _ => Cert::rest("app"),
    };
    env.write_config(&[], &[cert]);
    let text = std::fs::read_to_string(&env.config).unwrap();
    let line = format!("connector_url = \"{}\"\n", env.sim.compass_token_url());
    assert!(text.contains(&line), "the harness writes connector_url");
    std::fs::write(&env.config, text.replace(&line, "")).unwrap();
    env
}

/// `enroll --name app --token-file -` with `text` on standard input, plus `extra` arguments.
fn enroll_with(env: &Env, text: &str, extra: &[&str]) -> Run {
    let mut args = vec!["enroll", "--name", "app", "--token-file", "-"];
    args.extend_from_slice(extra);
    env.run_with(&args, Some(text), &[])
}

/// Asserts the run enrolled `app` and showed no form of the token.
fn assert_enrolled(env: &Env, run: Run, director: &DirectorToken) {
    let run = run.ok();
    assert!(run.stdout().contains("enrolled app"), "{}", run.stdout());
    assert_no_token(&run, director);
    let files = env.files("app");
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
fn token_requests(env: &Env) -> u64 {
    let counts = env.sim.request_counts();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compass_enrolls_with_the_raw_encoded_blob_and_its_connector_url() {
    let env = env_without_connector_url("compass").await;
    let director = env.sim.mint_director_token(env.sim.app());
    // A file written by hand or by a UI ends with newlines.
    let run = enroll_with(&env, &format!("{}\n\n", director.raw_encoded), &[]);
    assert_enrolled(&env, run, &director);
    assert_eq!(env.sim.request_counts().get(Endpoint::CompassSign), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compass_enrolls_with_the_raw_token_and_the_configured_connector_url() {
    let env = Env::start(LONG).await;
    env.write_config(&[], &[Cert::compass("app")]);
    let director = env.sim.mint_director_token(env.sim.app());
    let run = env.run(&["enroll", "--name", "app", "--token", &director.token]);
    assert_enrolled(&env, run, &director);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compass_uses_the_token_of_a_legacy_url_with_the_configured_connector_url() {
    let env = Env::start(LONG).await;
    env.write_config(&[], &[Cert::compass("app")]);
    let director = env.sim.mint_director_token(env.sim.app());
    let run = enroll_with(&env, &director.legacy_connector_url, &[]);
    assert_enrolled(&env, run, &director);
    let counts = env.sim.request_counts();
    assert_eq!(counts.get(Endpoint::CompassSign), 1);
    assert_eq!(
        counts.get(Endpoint::RestInfo),
        0,
        "the REST adapter was not asked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kyma_rest_enrolls_with_the_legacy_connector_url_alone() {
    let env = env_without_connector_url("kyma-rest").await;
    let director = env.sim.mint_director_token(env.sim.app());
    let run = enroll_with(&env, &format!("{}\n", director.legacy_connector_url), &[]);
    assert_enrolled(&env, run, &director);
    assert_eq!(env.sim.request_counts().get(Endpoint::RestSign), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kyma_rest_enrolls_with_the_blob_or_raw_token_and_a_configuration_url() {
    let env = env_without_connector_url("kyma-rest").await;
    for form in ["blob", "raw"] {
        let director = env.sim.mint_director_token(env.sim.app());
        let mut url = url::Url::parse(&director.legacy_connector_url).unwrap();
        url.set_query(None);
        let text = match form {
            "blob" => &director.raw_encoded,
            _ => &director.token,
        };
        let run = enroll_with(&env, text, &["--url", url.as_str()]);
        assert_enrolled(&env, run, &director);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compass_refuses_a_legacy_url_without_a_connector_url_and_the_token_stays_usable() {
    let env = env_without_connector_url("compass").await;
    let director = env.sim.mint_director_token(env.sim.app());
    let run = enroll_with(&env, &director.legacy_connector_url, &[]).fails_with(2);
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
    assert_eq!(token_requests(&env), 0, "refused before any request");

    // The same token, as the blob, still enrolls: it was not burned.
    let run = enroll_with(&env, &director.raw_encoded, &[]);
    assert_enrolled(&env, run, &director);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kyma_rest_refuses_a_blob_without_a_url_and_the_token_stays_usable() {
    let env = env_without_connector_url("kyma-rest").await;
    let director = env.sim.mint_director_token(env.sim.app());
    let run = enroll_with(&env, &director.raw_encoded, &[]).fails_with(2);
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
    let run = enroll_with(&env, &director.token, &[]).fails_with(2);
    assert!(
        run.stderr().contains("no enrollment URL"),
        "{}",
        run.stderr()
    );
    assert_no_token(&run, &director);
    assert_eq!(token_requests(&env), 0, "refused before any request");

    let run = enroll_with(&env, &director.legacy_connector_url, &[]);
    assert_enrolled(&env, run, &director);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbled_token_file_is_a_usage_error_that_shows_no_token() {
    let env = Env::start(LONG).await;
    env.write_config(&[], &[Cert::compass("app")]);
    let director = env.sim.mint_director_token(env.sim.app());
    let two_tokens = format!("{}\n{}\n", director.token, director.token);
    let run = enroll_with(&env, &two_tokens, &[]).fails_with(2);
    assert!(run.stderr().contains("whitespace"), "{}", run.stderr());
    assert_no_token(&run, &director);
    let broken_blob = &director.raw_encoded[..director.raw_encoded.len() / 2];
    let run = enroll_with(&env, &format!("{{\"token\": {broken_blob}"), &[]).fails_with(2);
    assert!(run.stderr().contains("rawEncoded blob"), "{}", run.stderr());
    assert_eq!(token_requests(&env), 0);
}
