//! Tests of private keys and CSRs: generation per algorithm, PEM import and export, and
//! the local check of a CSR.

use std::sync::{Arc, Mutex};

use super::*;

fn subject() -> Subject {
    Subject::parse("O=Org,OU=OrgUnit,L=locality,ST=province,C=DE,CN=app").unwrap()
}

#[test]
fn generated_ecdsa_key_round_trips_through_pem() {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    assert!(key.to_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    let again = PrivateKey::from_pem(key.to_pem()).unwrap();
    assert_eq!(again.algorithm(), KeyAlgorithm::EcdsaP256);
    assert_eq!(again.public_key_der(), key.public_key_der());
}

#[test]
fn racing_searches_returns_the_first_key_found_without_waiting_for_the_others() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (release_slow, slow_released) = std::sync::mpsc::channel::<()>();
    let slow_released = Arc::new(Mutex::new(slow_released));
    let fast_key = Arc::new(Mutex::new(None));
    let search = {
        let (calls, fast_key) = (Arc::clone(&calls), Arc::clone(&fast_key));
        move || {
            let key = PrivateKey::generate_one(KeyAlgorithm::EcdsaP256)?;
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                // The first search is slow: it waits until the test has its answer.
                let _ = slow_released
                    .lock()
                    .unwrap()
                    .recv_timeout(std::time::Duration::from_secs(10));
            } else {
                fast_key
                    .lock()
                    .unwrap()
                    .get_or_insert(key.public_key_der.clone());
            }
            Ok(key)
        }
    };

    let key = first_success(2, search).unwrap();
    release_slow.send(()).unwrap();

    assert_eq!(Some(key.public_key_der), fast_key.lock().unwrap().clone());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn racing_searches_fails_only_when_every_search_fails() {
    let calls = Arc::new(AtomicUsize::new(0));
    let one_fails = {
        let calls = Arc::clone(&calls);
        move || {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(KeyError::Generate { algorithm: "test" })
            } else {
                PrivateKey::generate_one(KeyAlgorithm::EcdsaP256)
            }
        }
    };
    assert!(first_success(2, one_fails).is_ok());

    let all_fail = || Err(KeyError::Generate { algorithm: "test" });
    assert!(matches!(
        first_success(3, all_fail),
        Err(KeyError::Generate { algorithm: "test" })
    ));
}

#[test]
fn generated_rsa_key_has_the_requested_size() {
    let key = PrivateKey::generate(KeyAlgorithm::Rsa2048).unwrap();
    let again = PrivateKey::from_pem(key.to_pem()).unwrap();
    assert_eq!(again.algorithm(), KeyAlgorithm::Rsa2048);
    assert!(again.matches_spki(key.public_key_der()));
}

#[test]
fn pkcs1_rsa_and_sec1_ec_keys_are_read_and_stored_as_pkcs8() {
    // PKCS#8 wraps the PKCS#1 RSAPrivateKey in its third field, an OCTET STRING.
    let pkcs8 = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap()
        .serialize_der();
    let (_, info) = x509_parser::der_parser::parse_der(&pkcs8).unwrap();
    let pkcs1 = info.as_sequence().unwrap()[2].as_slice().unwrap();
    let pem = pem_encode("RSA PRIVATE KEY", pkcs1);
    let key = PrivateKey::from_pem(&pem).unwrap();
    assert_eq!(key.algorithm(), KeyAlgorithm::Rsa2048);
    assert!(key.to_pem().starts_with("-----BEGIN PRIVATE KEY-----"));

    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &rng,
    )
    .unwrap();
    let ec = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        pkcs8.as_ref(),
    )
    .unwrap();
    let sec1: aws_lc_rs::encoding::EcPrivateKeyRfc5915Der<'_> = ec.private_key().as_der().unwrap();
    let key = PrivateKey::from_pem(&pem_encode("EC PRIVATE KEY", sec1.as_ref())).unwrap();
    assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP256);
    assert!(key.to_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[test]
fn garbage_and_unsupported_keys_are_refused_without_echoing_them() {
    let err = PrivateKey::from_pem("not a key").unwrap_err();
    assert!(matches!(err, KeyError::NoKeyInPem));
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let err = PrivateKey::from_pem(&p384.serialize_pem()).unwrap_err();
    assert!(matches!(err, KeyError::Unsupported { .. }), "{err}");
    let garbled = pem_encode("PRIVATE KEY", b"\x30\x03\x02\x01\x00");
    let err = PrivateKey::from_pem(&garbled).unwrap_err();
    assert!(!err.to_string().contains("MAMCAQA"));
}

#[test]
fn debug_output_never_shows_the_key() {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let debug = format!("{key:?}");
    assert!(debug.contains("redacted"));
    assert!(!debug.contains("BEGIN"));
    let body = key.to_pem().lines().nth(1).unwrap();
    assert!(!debug.contains(body));
}

#[test]
fn csr_carries_exactly_the_subject_and_the_public_key() {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let csr = build_csr(&key, &subject()).unwrap();
    let params = rcgen::CertificateSigningRequestParams::from_pem(csr.as_str()).unwrap();
    let types: Vec<_> = params
        .params
        .distinguished_name
        .iter()
        .map(|(t, _)| t.clone())
        .collect();
    assert_eq!(types.len(), 6);
    assert_eq!(types[0], rcgen::DnType::OrganizationName);
    assert!(
        key.matches_spki(&rcgen::PublicKeyData::subject_public_key_info(
            &params.public_key
        ))
    );
}

#[test]
fn rsa_csr_is_signed_with_sha256_with_rsa() {
    let key = PrivateKey::generate(KeyAlgorithm::Rsa2048).unwrap();
    let csr = build_csr(&key, &subject()).unwrap();
    let der = CertificateSigningRequestDer::from_pem_slice(csr.as_str().as_bytes()).unwrap();
    let (_, parsed) =
        x509_parser::certification_request::X509CertificationRequest::from_der(der.as_ref())
            .unwrap();
    assert_eq!(
        parsed.signature_algorithm.algorithm,
        x509_parser::oid_registry::OID_PKCS1_SHA256WITHRSA
    );
}

#[test]
fn local_check_refuses_a_csr_for_another_key_or_subject() {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let other = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let csr = build_csr(&key, &subject()).unwrap();
    assert!(matches!(
        check_csr(csr.as_str(), &other, &subject()),
        Err(KeyError::CsrCheck {
            check: "public key"
        })
    ));
    let wrong = Subject::parse("CN=someone-else").unwrap();
    assert!(matches!(
        check_csr(csr.as_str(), &key, &wrong),
        Err(KeyError::CsrCheck { check: "subject" })
    ));
}

#[test]
fn csr_base64_is_one_padded_line_of_the_pem_text() {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let csr = build_csr(&key, &subject()).unwrap();
    let b64 = csr_base64(&csr);
    assert!(!b64.contains('\n'));
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&b64)
        .unwrap();
    assert_eq!(decoded, csr.as_str().as_bytes());
    assert!(format!("{csr:?}").starts_with("CsrPem(<"));
}
