//! The `[[certificate.output]]` encoders on material the simulator issued (RSA, as the
//! real connectors sign), checked by the tools consumers use: `openssl pkcs12` for the
//! algorithms and contents, Java's `keytool` for the key entry and the trusted CA entries.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kyma_certd::config::{Checks, OutputConfig};
use kyma_certd::outputs::{OutputFile, PemTexts, render};
use support::pem::pem_bodies;
use support::world::{Settings, World};

const PASSWORD: &str = "Tr0ub4dor-kyma";

/// Enrolls a compass certificate and returns the environment and the four PEM files.
fn enrolled() -> (World, [String; 4]) {
    let world = World::with(Settings::one_shot(), Duration::from_secs(3600));
    world.write_config(&[world.compass("orders")]);
    world.enroll("orders");
    let dir = world.cert_dir("orders");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let pems = [
        read("key.pem"),
        read("cert.pem"),
        read("chain.pem"),
        read("ca.pem"),
    ];
    (world, pems)
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

#[test]
fn pkcs12_keystore_is_aes256_pbkdf2_sha256_and_holds_key_and_chain() {
    let (world, [key, cert, chain, ca]) = enrolled();
    let out = world.root().join("out");
    std::fs::create_dir(&out).unwrap();
    let pass = world.root().join("p12.pass");
    std::fs::write(&pass, format!("{PASSWORD}\n")).unwrap();
    let configured = outputs(
        world.root(),
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

#[test]
fn pem_bundle_for_haproxy_is_key_leaf_and_ca_that_openssl_reads() {
    let (world, [key, cert, chain, ca]) = enrolled();
    let out = world.root().join("out");
    std::fs::create_dir(&out).unwrap();
    let configured = outputs(
        world.root(),
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

#[test]
fn outputs_land_in_dir_for_both_layouts_with_the_key_mode() {
    use std::os::unix::fs::PermissionsExt as _;
    let world = World::with(Settings::one_shot(), Duration::from_secs(3600));
    let output = "[[certificate.output]]\nkind = \"pem-bundle\"\nfile = \"bundle.pem\"\nparts = [\"key\", \"cert\"]";
    let certs = [
        world
            .compass("linked")
            .with("key_mode = \"0640\"")
            .table(output),
        world.compass("files").files_layout().table(output),
    ];
    world.write_config(&certs);
    for cert in &certs {
        world.enroll(&cert.name);
        let bundle = cert.dir.join("bundle.pem");
        let text = std::fs::read_to_string(&bundle).unwrap();
        let key = std::fs::read_to_string(cert.key_path()).unwrap();
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
