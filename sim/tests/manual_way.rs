//! The tutorials' manual flow, run with the real `openssl`, `base64` and `curl` binaries
//! against the simulator, for both protocols (README.md, "The manual way", shows the same steps).
//! Skips with a message when one of the tools is missing.

use std::path::Path;
use std::process::Stdio;

use kyma_connector_sim::{SimConfig, Simulator};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

fn tools_missing() -> Option<&'static str> {
    [
        ("openssl", "version"),
        ("curl", "--version"),
        ("base64", "--version"),
    ]
    .into_iter()
    .find(|(tool, arg)| {
        !std::process::Command::new(tool)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
    .map(|(tool, _)| tool)
}

/// Runs a tool in `dir`, feeding `stdin`; panics with its stderr when it fails.
async fn run_with(dir: &Path, program: &str, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(input).await.expect("stdin takes the input");
    }
    let output = child.wait_with_output().await.expect("tool finishes");
    assert!(
        output.status.success(),
        "{program} {} failed: {}",
        args.first().unwrap_or(&""),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

async fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    String::from_utf8(run_with(dir, program, args, None).await).expect("tool prints utf-8")
}

async fn curl_json(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["-sS"];
    all.extend_from_slice(args);
    let out = run(dir, "curl", &all).await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("curl printed no JSON ({e}): {out}"))
}

/// `base64 -d` of a response field into `file`.
async fn decode_into(dir: &Path, field: &Value, file: &str) {
    let text = field
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {field}"));
    let pem = run_with(dir, "base64", &["-d"], Some(text.as_bytes())).await;
    std::fs::write(dir.join(file), pem).expect("pem file written");
}

/// `O=Org,OU=OrgUnit,...,CN=x` becomes `/O=Org/OU=OrgUnit/.../CN=x` for `openssl req -subj`.
fn openssl_subject(subject: &str) -> String {
    format!("/{}", subject.replace(',', "/"))
}

async fn new_key_and_csr(dir: &Path, name: &str, bits: &str, subject: &str) -> String {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    run(dir, "openssl", &["genrsa", "-out", &key, bits]).await;
    run(
        dir,
        "openssl",
        &[
            "req", "-new", "-sha256", "-out", &csr, "-key", &key, "-subj", subject,
        ],
    )
    .await;
    run(dir, "base64", &["-w0", &csr]).await.trim().to_owned()
}

async fn assert_verifies(dir: &Path, cert: &str) {
    let out = run(dir, "openssl", &["verify", "-CAfile", "ca.crt", cert]).await;
    assert_eq!(out.trim(), format!("{cert}: OK"));
}

async fn assert_same_public_key(dir: &Path, cert: &str, key: &str) {
    let from_cert = run(dir, "openssl", &["x509", "-in", cert, "-noout", "-pubkey"]).await;
    let from_key = run(dir, "openssl", &["pkey", "-in", key, "-pubout"]).await;
    assert_eq!(from_cert, from_key);
}

async fn start(dir: &Path) -> Simulator {
    Simulator::start(SimConfig {
        out_dir: Some(dir.join("sim")),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

const SIGN_MUTATION: &str = "mutation { result: signCertificateSigningRequest(csr: \"CSR\") { certificateChain caCertificate clientCertificate } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compass_manual_flow_with_openssl_and_curl() {
    if let Some(tool) = tools_missing() {
        // CI installs the tools: there, a skip is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "`{tool}` is not installed"
        );
        eprintln!("skipped: `{tool}` is not installed");
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let dir = work.path();
    let sim = start(dir).await;
    let ca = sim.server_ca_path().display().to_string();
    let url = sim.compass_token_url().to_string();
    let token = sim.mint_compass_token();

    // 1. Configuration with the one-time token.
    let query = json!({"query": "{ result: configuration { token { token } certificateSigningRequestInfo { subject keyAlgorithm } managementPlaneInfo { certificateSecuredConnectorURL } } }"}).to_string();
    let header = format!("Connector-Token: {token}");
    let config = curl_json(
        dir,
        &[
            "--cacert",
            &ca,
            "-H",
            &header,
            "-H",
            "Content-Type: application/json",
            "-d",
            &query,
            &url,
        ],
    )
    .await;
    let result = &config["data"]["result"];
    let next_token = result["token"]["token"].as_str().expect("a new token");
    let subject = result["certificateSigningRequestInfo"]["subject"]
        .as_str()
        .unwrap();
    let mtls_url = result["managementPlaneInfo"]["certificateSecuredConnectorURL"]
        .as_str()
        .unwrap();

    // 2. Key and CSR, as the tutorial does (RSA 4096).
    let csr = new_key_and_csr(dir, "compass", "4096", &openssl_subject(subject)).await;

    // 3. Signing with the new token.
    let body = json!({"query": SIGN_MUTATION.replace("CSR", &csr)}).to_string();
    let header = format!("Connector-Token: {next_token}");
    let signed = curl_json(
        dir,
        &[
            "--cacert",
            &ca,
            "-H",
            &header,
            "-H",
            "Content-Type: application/json",
            "-d",
            &body,
            &url,
        ],
    )
    .await;
    let result = &signed["data"]["result"];
    decode_into(dir, &result["clientCertificate"], "compass.crt").await;
    decode_into(dir, &result["caCertificate"], "ca.crt").await;
    assert_verifies(dir, "compass.crt").await;
    assert_same_public_key(dir, "compass.crt", "compass.key").await;

    // 4. Renewal over mTLS with the current certificate and a new key.
    let csr = new_key_and_csr(dir, "renewed", "2048", &openssl_subject(subject)).await;
    let body = json!({"query": SIGN_MUTATION.replace("CSR", &csr)}).to_string();
    let renewed = curl_json(
        dir,
        &[
            "--cacert",
            &ca,
            "--cert",
            "compass.crt",
            "--key",
            "compass.key",
            "-H",
            "Content-Type: application/json",
            "-d",
            &body,
            mtls_url,
        ],
    )
    .await;
    decode_into(
        dir,
        &renewed["data"]["result"]["clientCertificate"],
        "renewed.crt",
    )
    .await;
    assert_verifies(dir, "renewed.crt").await;
    assert_same_public_key(dir, "renewed.crt", "renewed.key").await;
    assert_eq!(sim.issued_certificates().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kyma_rest_manual_flow_with_openssl_and_curl() {
    if let Some(tool) = tools_missing() {
        // CI installs the tools: there, a skip is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "`{tool}` is not installed"
        );
        eprintln!("skipped: `{tool}` is not installed");
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let dir = work.path();
    let sim = start(dir).await;
    let ca = sim.server_ca_path().display().to_string();
    let (_, config_url) = sim.mint_rest_token();

    // 1. The configuration URL (the TokenRequest's status.url).
    let info = curl_json(dir, &["--cacert", &ca, config_url.as_str()]).await;
    let csr_url = info["csrUrl"].as_str().expect("csrUrl");
    let info_url = info["api"]["infoUrl"].as_str().expect("infoUrl");
    let subject = info["certificate"]["subject"].as_str().expect("subject");

    // 2. Key, CSR, signing.
    let csr = new_key_and_csr(dir, "app", "2048", &openssl_subject(subject)).await;
    let body = json!({"csr": csr}).to_string();
    let signed = curl_json(
        dir,
        &[
            "--cacert",
            &ca,
            "-H",
            "Content-Type: application/json",
            "-d",
            &body,
            csr_url,
        ],
    )
    .await;
    decode_into(dir, &signed["clientCrt"], "app.crt").await;
    decode_into(dir, &signed["caCrt"], "ca.crt").await;
    assert_verifies(dir, "app.crt").await;
    assert_same_public_key(dir, "app.crt", "app.key").await;

    // 3. Management info and renewal over mTLS.
    let mtls = [
        "--cacert",
        ca.as_str(),
        "--cert",
        "app.crt",
        "--key",
        "app.key",
    ];
    let management = curl_json(dir, &[&mtls[..], &[info_url]].concat()).await;
    assert_eq!(management["clientIdentity"]["application"], "my-app");
    let renew_url = management["urls"]["renewCertUrl"].as_str().unwrap();
    let revoke_url = management["urls"]["revokeCertUrl"].as_str().unwrap();
    let csr = new_key_and_csr(dir, "renewed", "2048", &openssl_subject(subject)).await;
    let body = json!({"csr": csr}).to_string();
    let json_body = ["-H", "Content-Type: application/json", "-d", body.as_str()];
    let renewed = curl_json(dir, &[&mtls[..], &json_body, &[renew_url]].concat()).await;
    decode_into(dir, &renewed["clientCrt"], "renewed.crt").await;
    assert_verifies(dir, "renewed.crt").await;
    assert_same_public_key(dir, "renewed.crt", "renewed.key").await;

    // 4. Revocation, after which renewal is refused.
    let status = run(
        dir,
        "curl",
        &[
            &["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"],
            &mtls[..],
            &[revoke_url],
        ]
        .concat(),
    )
    .await;
    assert_eq!(status, "201");
    let refused = curl_json(dir, &[&mtls[..], &json_body, &[renew_url]].concat()).await;
    assert_eq!(
        refused,
        json!({"code": 403, "error": "Certificate has been revoked."})
    );
}
