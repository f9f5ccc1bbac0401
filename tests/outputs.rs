//! The `[[certificate.output]]` encoders on material the simulator issued (RSA, as the
//! real connectors sign), checked by the tools consumers use: `openssl pkcs12` for the
//! algorithms and contents, Java's `keytool` for the key entry and the trusted CA entries.

#[path = "support/cli.rs"]
mod harness;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use harness::{Cert, Env};
use kyma_certd::config::{Checks, OutputConfig};
use kyma_certd::outputs::{OutputFile, PemTexts, render};

const PASSWORD: &str = "Tr0ub4dor-kyma";

/// Enrolls a compass certificate and returns the environment and the four PEM files.
async fn enrolled() -> (Env, [String; 4]) {
    let env = Env::start(Duration::from_secs(3600)).await;
    env.write_config(&[], &[Cert::compass("orders")]);
    env.enroll("orders", "compass").ok();
    let dir = env.cert_dir("orders");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let pems = [
        read("key.pem"),
        read("cert.pem"),
        read("chain.pem"),
        read("ca.pem"),
    ];
    (env, pems)
}

/// The outputs of a config snippet, as the daemon would parse them.
fn outputs(dir: &Path, snippet: &str) -> Vec<OutputConfig> {
    let text = format!(
        "[[certificate]]\nname = \"orders\"\nprotocol = \"compass\"\ndir = \"{}\"\n{snippet}",
        dir.join("certs").display()
    );
    let path = dir.join("outputs.toml");
    let config = kyma_certd::config::parse_with(&text, &path, Checks::Full).unwrap();
    config.certificates[0].outputs.clone()
}

fn write_all(dir: &Path, files: &[OutputFile]) {
    for file in files {
        std::fs::write(dir.join(&file.name), &*file.bytes).unwrap();
    }
}

fn run(program: &str, args: &[&str]) -> (String, String) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} runs (Debian: openssl, openjdk-17-jre-headless): {e}")
        });
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "{program} {args:?} failed\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

/// The base64 bodies of the PEM blocks in `text`, in order (armour and line breaks aside).
fn pem_bodies(text: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.starts_with("-----BEGIN") {
            current = Some(String::new());
        } else if line.starts_with("-----END") {
            bodies.extend(current.take());
        } else if let Some(body) = current.as_mut() {
            body.push_str(line.trim());
        }
    }
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkcs12_keystore_is_aes256_pbkdf2_sha256_and_holds_key_and_chain() {
    let (env, [key, cert, chain, ca]) = enrolled().await;
    let out = env.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let pass = env.dir.path().join("p12.pass");
    std::fs::write(&pass, format!("{PASSWORD}\n")).unwrap();
    let configured = outputs(
        env.dir.path(),
        &format!(
            "[[certificate.output]]\nkind = \"pkcs12\"\nfile = \"keystore.p12\"\npassword_file = {:?}\ntruststore = \"truststore.p12\"\n",
            pass.display().to_string()
        ),
    );
    let pems = PemTexts {
        key: &key,
        cert: &cert,
        chain: &chain,
        ca: &ca,
    };
    let files = render("orders", pems, &configured).unwrap();
    write_all(&out, &files);
    let keystore = out.join("keystore.p12");
    let keystore = keystore.to_str().unwrap();
    let passin = format!("file:{}", pass.display());

    let (_, info) = run(
        "openssl",
        &[
            "pkcs12", "-info", "-noout", "-in", keystore, "-passin", &passin,
        ],
    );
    assert!(info.contains("MAC: sha256"), "{info}");
    assert!(
        info.contains("Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC")
            && info.contains("PRF hmacWithSHA256"),
        "the key is AES-256 with PBKDF2-HMAC-SHA256: {info}"
    );
    assert!(
        info.contains("PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC"),
        "the certificates are AES-256 with PBKDF2: {info}"
    );
    let (certs, _) = run(
        "openssl",
        &["pkcs12", "-nokeys", "-in", keystore, "-passin", &passin],
    );
    assert_eq!(pem_bodies(&certs), pem_bodies(&chain), "leaf, then the CA");
    let (keys, _) = run(
        "openssl",
        &[
            "pkcs12", "-nocerts", "-noenc", "-in", keystore, "-passin", &passin,
        ],
    );
    assert_eq!(pem_bodies(&keys), pem_bodies(&key), "the generation's key");
    let wrong = Command::new("openssl")
        .args(["pkcs12", "-info", "-noout", "-in", keystore, "-passin"])
        .arg("pass:wrong-password")
        .output()
        .unwrap();
    assert!(!wrong.status.success(), "a wrong password fails the MAC");

    let (listed, _) = run(
        "keytool",
        &[
            "-list",
            "-keystore",
            keystore,
            "-storetype",
            "PKCS12",
            "-storepass",
            PASSWORD,
        ],
    );
    assert!(
        listed.contains("Your keystore contains 1 entry"),
        "{listed}"
    );
    assert!(
        listed.contains("orders,") && listed.contains("PrivateKeyEntry"),
        "{listed}"
    );

    let truststore = out.join("truststore.p12");
    let (trusted, _) = run(
        "keytool",
        &[
            "-list",
            "-keystore",
            truststore.to_str().unwrap(),
            "-storetype",
            "PKCS12",
            "-storepass",
            PASSWORD,
        ],
    );
    assert!(
        trusted.contains("orders-ca,") && trusted.contains("trustedCertEntry"),
        "Java sees the CA as a trusted entry: {trusted}"
    );
    let (trust_certs, _) = run(
        "openssl",
        &[
            "pkcs12",
            "-nokeys",
            "-in",
            truststore.to_str().unwrap(),
            "-passin",
            &passin,
        ],
    );
    assert_eq!(pem_bodies(&trust_certs), pem_bodies(&ca));
    assert!(files[0].secret && !files[1].secret);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pem_bundle_for_haproxy_is_key_leaf_and_ca_that_openssl_reads() {
    let (env, [key, cert, chain, ca]) = enrolled().await;
    let out = env.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let configured = outputs(
        env.dir.path(),
        "[[certificate.output]]\nkind = \"pem-bundle\"\nfile = \"bundle.pem\"\nparts = [\"key\", \"cert\", \"chain\"]\n",
    );
    let pems = PemTexts {
        key: &key,
        cert: &cert,
        chain: &chain,
        ca: &ca,
    };
    let files = render("orders", pems, &configured).unwrap();
    assert!(files[0].secret);
    write_all(&out, &files);
    let bundle = out.join("bundle.pem");
    let text = std::fs::read_to_string(&bundle).unwrap();
    let expected: Vec<String> = [&key, &cert, &ca]
        .iter()
        .flat_map(|p| pem_bodies(p))
        .collect();
    assert_eq!(pem_bodies(&text), expected);
    // openssl reads the key and the leaf from the one file, as HAProxy does.
    let bundle = bundle.to_str().unwrap();
    let (modulus_key, _) = run("openssl", &["rsa", "-noout", "-modulus", "-in", bundle]);
    let (modulus_cert, _) = run("openssl", &["x509", "-noout", "-modulus", "-in", bundle]);
    assert_eq!(modulus_key, modulus_cert, "the key belongs to the leaf");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_land_in_dir_for_both_layouts_with_the_key_mode() {
    use std::os::unix::fs::PermissionsExt as _;
    let env = Env::start(Duration::from_secs(3600)).await;
    let tls = env.dir.path().join("tls");
    let output = "[[certificate.output]]\nkind = \"pem-bundle\"\nfile = \"bundle.pem\"\nparts = [\"key\", \"cert\"]";
    let mut files = Cert::compass("files").with("layout = \"files\"");
    for (key, name) in [
        ("cert_file", "c.pem"),
        ("key_file", "k.pem"),
        ("chain_file", "ch.pem"),
        ("ca_file", "ca.pem"),
    ] {
        files = files.with(&format!(
            "{key} = {:?}",
            tls.join(name).display().to_string()
        ));
    }
    let certs = [
        Cert::compass("linked")
            .with("key_mode = \"0640\"")
            .with(output),
        files.with(output),
    ];
    env.write_config(&[], &certs);
    for cert in &certs {
        env.enroll(&cert.name, "compass").ok();
        let bundle = env.cert_dir(&cert.name).join("bundle.pem");
        let text = std::fs::read_to_string(&bundle).unwrap();
        let key_path = if cert.name == "files" {
            tls.join("k.pem")
        } else {
            env.cert_dir(&cert.name).join("key.pem")
        };
        let key = std::fs::read_to_string(key_path).unwrap();
        assert_eq!(pem_bodies(&text)[0], pem_bodies(&key)[0], "{}", cert.name);
        let mode = std::fs::metadata(&bundle).unwrap().permissions().mode() & 0o777;
        let expected = if cert.name == "files" { 0o600 } else { 0o640 };
        assert_eq!(
            mode, expected,
            "{}: a bundle with the key has key_mode",
            cert.name
        );
        let link = std::fs::symlink_metadata(&bundle).unwrap();
        assert_eq!(
            link.file_type().is_symlink(),
            cert.name == "linked",
            "{}: linked into the generation only with the symlink layout",
            cert.name
        );
    }
}
