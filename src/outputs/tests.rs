use std::time::{Duration, SystemTime};

use p12_keystore::Pkcs12ImportPolicy;

use super::*;
use crate::testutil::{TestCa, issued, key};

struct Material {
    key: String,
    cert: String,
    chain: String,
    ca: String,
}

impl Material {
    fn new() -> Material {
        let ca = TestCa::new("outputs ca");
        let key = key();
        let (cert, ca_pem, chain) = issued(&ca, &key, SystemTime::now(), Duration::from_secs(3600));
        Material {
            key: key.to_pem().to_owned(),
            cert,
            chain,
            ca: ca_pem,
        }
    }

    fn pems(&self) -> PemTexts<'_> {
        PemTexts {
            key: &self.key,
            cert: &self.cert,
            chain: &self.chain,
            ca: &self.ca,
        }
    }
}

const PASSWORD: &str = "changeit-s3cret";

fn fixed_password(_: &Path) -> Result<Password, OutputError> {
    Ok(Password::new(PASSWORD))
}

fn pkcs12(truststore: Option<&str>) -> OutputConfig {
    OutputConfig::Pkcs12 {
        file: "keystore.p12".into(),
        password_file: "/nonexistent/pass".into(),
        truststore: truststore.map(str::to_owned),
    }
}

#[test]
fn pem_bundle_holds_the_parts_in_the_order_given() {
    let m = Material::new();
    let outputs = [
        OutputConfig::PemBundle {
            file: "haproxy.pem".into(),
            parts: vec![PemPart::Cert, PemPart::Chain, PemPart::Key],
        },
        OutputConfig::PemBundle {
            file: "trust.pem".into(),
            parts: vec![PemPart::Ca],
        },
    ];
    let files = render_with("orders", m.pems(), &outputs, fixed_password).unwrap();
    assert_eq!(files.len(), 2);
    let bundle = std::str::from_utf8(&files[0].bytes).unwrap();
    assert_eq!(files[0].name, "haproxy.pem");
    // The chain part is what follows the leaf in chain.pem: here the CA.
    let expected = format!(
        "{}\n{}\n{}\n",
        m.cert.trim_end(),
        m.ca.trim_end(),
        m.key.trim_end()
    );
    assert_eq!(bundle, expected);
    assert!(files[0].secret, "a bundle with the key is a secret");
    assert_eq!(
        std::str::from_utf8(&files[1].bytes).unwrap(),
        format!("{}\n", m.ca.trim_end())
    );
    assert!(!files[1].secret);
}

#[test]
fn keystore_holds_the_key_and_chain_and_truststore_the_trusted_ca() {
    let m = Material::new();
    let files = render_with(
        "orders",
        m.pems(),
        &[pkcs12(Some("truststore.p12"))],
        fixed_password,
    )
    .unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["keystore.p12", "truststore.p12"]);
    assert!(files[0].secret && !files[1].secret);

    let store =
        KeyStore::from_pkcs12(&files[0].bytes, PASSWORD, Pkcs12ImportPolicy::Strict).unwrap();
    let (alias, chain) = store.private_key_chain().expect("a key entry");
    assert_eq!(alias, "orders");
    let key_der = PrivateKeyDer::from_pem_slice(m.key.as_bytes()).unwrap();
    assert_eq!(chain.key().as_der(), key_der.secret_der());
    let expected: Vec<Vec<u8>> = certificates(&m.chain, "chain")
        .unwrap()
        .iter()
        .map(|c| c.to_vec())
        .collect();
    let got: Vec<Vec<u8>> = chain.certs().iter().map(|c| c.as_der().to_vec()).collect();
    assert_eq!(got, expected, "leaf first, then the CA");

    let trust =
        KeyStore::from_pkcs12(&files[1].bytes, PASSWORD, Pkcs12ImportPolicy::Strict).unwrap();
    match trust.entry("orders-ca") {
        Some(KeyStoreEntry::Certificate(c)) => {
            assert_eq!(c.as_der(), certificates(&m.ca, "ca").unwrap()[0].as_ref());
        }
        other => panic!("expected a trusted certificate entry, got {other:?}"),
    }
    assert!(
        KeyStore::from_pkcs12(&files[0].bytes, "wrong", Pkcs12ImportPolicy::Strict).is_err(),
        "the MAC is checked with the password"
    );
}

#[test]
fn a_missing_password_file_fails_and_names_the_file() {
    let m = Material::new();
    let err = render("orders", m.pems(), &[pkcs12(None)]).unwrap_err();
    assert!(matches!(err, OutputError::PasswordFile { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/pass"), "{err}");
}

#[test]
fn password_file_loses_one_trailing_newline_and_must_not_be_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pass");
    for (content, expected) in [
        ("pw\n", "pw"),
        ("pw\r\n", "pw"),
        (" pw \n\n", " pw \n"),
        ("pw", "pw"),
    ] {
        std::fs::write(&path, content).unwrap();
        assert_eq!(
            read_password(&path).unwrap().expose(),
            expected,
            "{content:?}"
        );
    }
    for content in ["", "\n", "a\0b"] {
        std::fs::write(&path, content).unwrap();
        let err = read_password(&path).unwrap_err();
        assert!(
            matches!(err, OutputError::BadPassword { .. }),
            "{content:?}: {err}"
        );
    }
}

#[test]
fn garbage_material_is_an_error_without_its_content() {
    let m = Material::new();
    let pems = PemTexts {
        key: "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleQ==\n-----END PRIVATE KEY-----\n",
        ..m.pems()
    };
    let err = render_with("orders", pems, &[pkcs12(None)], fixed_password).unwrap_err();
    assert!(matches!(err, OutputError::Pem { part: "key", .. }), "{err}");
    assert!(!format!("{err} {err:?}").contains("c2VjcmV0"));
}

#[test]
fn debug_output_shows_no_bytes_or_password() {
    let m = Material::new();
    let files = render_with("orders", m.pems(), &[pkcs12(None)], fixed_password).unwrap();
    let shown = format!("{files:?} {:?} {:?}", Password::new(PASSWORD), m.pems());
    assert!(
        !shown.contains(PASSWORD) && !shown.contains("BEGIN"),
        "{shown}"
    );
}
