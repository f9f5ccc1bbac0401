//! The `kyma-connector-sim` binary: prints working URLs and tokens, stops cleanly on SIGTERM,
//! refuses bad arguments with exit code 2.

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use common::{JsonBody, TIMEOUT, json_of};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_kyma-connector-sim");

/// Reads the banner until its last line; returns `label -> value`.
async fn banner(stdout: tokio::process::ChildStdout) -> HashMap<String, String> {
    let mut lines = BufReader::new(stdout).lines();
    let mut values = HashMap::new();
    while let Some(line) = lines.next_line().await.expect("stdout is readable") {
        if line == "Ctrl-C stops." {
            return values;
        }
        if let Some((label, value)) = line.split_once(": ") {
            values.insert(label.trim().to_owned(), value.trim().to_owned());
        }
    }
    panic!("the banner ended early: {values:?}");
}

#[tokio::test]
async fn the_binary_prints_urls_and_tokens_that_work_and_stops_on_sigterm() {
    let out = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(BINARY)
        .args(["--validity", "60s", "--app", "bin-app", "--out-dir"])
        .arg(out.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let values = tokio::time::timeout(TIMEOUT, banner(stdout))
        .await
        .expect("banner within the timeout");

    let ca_path = &values["server CA (trust it)"];
    assert_eq!(
        std::path::Path::new(ca_path),
        out.path().join("server-ca.pem")
    );
    let ca = std::fs::read(ca_path).expect("server CA written");
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .timeout(TIMEOUT)
        .no_proxy()
        .build()
        .unwrap();

    let response = client
        .post(&values["Compass token URL"])
        .header(kyma_connector_sim::TOKEN_HEADER, &values["Compass token"])
        .json_body(
            &json!({"query": "{ configuration { certificateSigningRequestInfo { subject } } }"}),
        )
        .send()
        .await
        .expect("compass answers");
    let (_, body) = json_of(response).await;
    let subject = body["data"]["configuration"]["certificateSigningRequestInfo"]["subject"]
        .as_str()
        .unwrap_or_else(|| panic!("no subject: {body}"));
    assert!(subject.ends_with("CN=bin-app"));

    let response = client
        .get(&values["Kyma REST config URL"])
        .send()
        .await
        .expect("rest answers");
    assert_eq!(response.status(), StatusCode::OK);

    let pid = child.id().expect("still running").to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().await;
    assert!(killed.is_ok_and(|s| s.success()));
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("exits after SIGTERM")
        .expect("exit status");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_bad_validity_is_a_usage_error() {
    let output = Command::new(BINARY)
        .args(["--validity", "soon"])
        .output()
        .await
        .expect("binary runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--validity"));
}

#[tokio::test]
async fn a_validity_under_a_second_fails_to_start_with_a_clear_message() {
    let output = Command::new(BINARY)
        .args(["--validity", "10ms"])
        .output()
        .await
        .expect("binary runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("validity"), "{stderr}");
}
