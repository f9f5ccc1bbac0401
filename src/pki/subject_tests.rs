//! Tests of subject strings: parsing, rendering, the attributes rcgen is given, and the
//! comparison with an X.509 name.

use super::*;
use proptest::prelude::*;

const KYMA: &str = "O=Org,OU=OrgUnit,L=locality,ST=province,C=DE,CN=app-orders";

#[test]
fn connector_subject_parses_in_written_order() {
    let subject = Subject::parse(KYMA).unwrap();
    let keys: Vec<_> = subject.attributes().iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys,
        [
            SubjectKey::O,
            SubjectKey::Ou,
            SubjectKey::L,
            SubjectKey::St,
            SubjectKey::C,
            SubjectKey::Cn
        ]
    );
    assert_eq!(subject.get(SubjectKey::Cn), Some("app-orders"));
    assert_eq!(subject.to_string(), KYMA);
}

#[test]
fn escaped_commas_and_backslashes_stay_in_values() {
    let subject = Subject::parse(r"O=Acme\, Inc.,CN=a\\b").unwrap();
    assert_eq!(subject.get(SubjectKey::O), Some("Acme, Inc."));
    assert_eq!(subject.get(SubjectKey::Cn), Some(r"a\b"));
    assert_eq!(Subject::parse(&subject.to_string()).unwrap(), subject);
}

#[test]
fn whitespace_around_parts_is_trimmed_but_escaped_spaces_kept() {
    let subject = Subject::parse("  o = Org ,  CN=  id\\  ").unwrap();
    assert_eq!(subject.get(SubjectKey::O), Some("Org"));
    assert_eq!(subject.get(SubjectKey::Cn), Some("id "));
}

#[test]
fn values_may_contain_equals_signs() {
    let subject = Subject::parse("CN=a=b").unwrap();
    assert_eq!(subject.get(SubjectKey::Cn), Some("a=b"));
}

#[test]
fn bad_subjects_are_refused_with_the_reason() {
    assert_eq!(Subject::parse(""), Err(SubjectError::Empty));
    assert_eq!(Subject::parse("  "), Err(SubjectError::Empty));
    assert_eq!(
        Subject::parse("O=a,,CN=b"),
        Err(SubjectError::EmptyPart { index: 2 })
    );
    assert_eq!(
        Subject::parse("O=a,CN"),
        Err(SubjectError::MissingEquals { index: 2 })
    );
    assert_eq!(
        Subject::parse("O=a,E=x"),
        Err(SubjectError::UnknownKey { key: "E".into() })
    );
    assert_eq!(
        Subject::parse("OU=a,OU=b"),
        Err(SubjectError::Duplicate {
            key: SubjectKey::Ou
        })
    );
    assert_eq!(
        Subject::parse("CN= "),
        Err(SubjectError::EmptyValue {
            key: SubjectKey::Cn
        })
    );
    assert_eq!(
        Subject::parse("CN=a\\"),
        Err(SubjectError::TrailingBackslash)
    );
    assert_eq!(
        Subject::parse("C=Ü"),
        Err(SubjectError::CountryNotPrintable)
    );
}

#[test]
fn distinguished_name_keeps_order_and_country_is_printable() {
    let subject = Subject::parse(KYMA).unwrap();
    let dn = subject.to_distinguished_name();
    let types: Vec<_> = dn.iter().map(|(t, _)| t.clone()).collect();
    assert_eq!(types[0], rcgen::DnType::OrganizationName);
    assert_eq!(types[5], rcgen::DnType::CommonName);
    assert!(matches!(
        dn.get(&rcgen::DnType::CountryName),
        Some(rcgen::DnValue::PrintableString(_))
    ));
}

fn cert_name_der(subject: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = Subject::parse(subject).unwrap().to_distinguished_name();
    params.self_signed(&key).unwrap().der().to_vec()
}

#[test]
fn x509_name_matches_regardless_of_order() {
    let der = cert_name_der("C=DE,ST=province,L=locality,O=Org,OU=OrgUnit,CN=app-orders");
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert!(Subject::parse(KYMA).unwrap().matches_x509(cert.subject()));
}

#[test]
fn x509_name_with_other_values_or_extra_attributes_does_not_match() {
    let der = cert_name_der("O=Org,CN=app-orders");
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert!(
        !Subject::parse("O=Org,CN=other")
            .unwrap()
            .matches_x509(cert.subject())
    );
    assert!(
        !Subject::parse("O=Org")
            .unwrap()
            .matches_x509(cert.subject())
    );
    assert!(
        !Subject::parse("O=Org,OU=x,CN=app-orders")
            .unwrap()
            .matches_x509(cert.subject())
    );
}

fn key_strategy() -> impl Strategy<Value = SubjectKey> {
    prop::sample::select(vec![
        SubjectKey::C,
        SubjectKey::St,
        SubjectKey::L,
        SubjectKey::O,
        SubjectKey::Ou,
        SubjectKey::Cn,
    ])
}

proptest! {
    // Cheap: many inputs.
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn arbitrary_text_yields_a_subject_that_round_trips_or_a_clear_error(text in ".{0,80}") {
        match Subject::parse(&text) {
            Ok(subject) => prop_assert_eq!(Subject::parse(&subject.to_string()), Ok(subject)),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

}

proptest! {
    // Structured inputs cost more to generate.
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn subject_like_text_yields_a_subject_that_round_trips_or_a_clear_error(
        parts in prop::collection::vec(("(?i)(c|st|l|o|ou|cn|x| cn )", "[=, ]{0,2}", "[a-zA-Z0-9 ,=\\\\é]{0,8}"), 0..8),
        separator in "(,|, | ,|,,)",
    ) {
        let text = parts
            .iter()
            .map(|(k, eq, v)| format!("{k}{eq}{v}"))
            .collect::<Vec<_>>()
            .join(&separator);
        match Subject::parse(&text) {
            Ok(subject) => prop_assert_eq!(Subject::parse(&subject.to_string()), Ok(subject)),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn rendering_then_parsing_round_trips(
        pairs in prop::collection::vec((key_strategy(), "[ -~é,\\\\ ]{1,12}"), 1..6)
    ) {
        let mut attributes: Vec<(SubjectKey, String)> = Vec::new();
        for (key, value) in pairs {
            let value = if key == SubjectKey::C {
                value.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>()
            } else {
                value
            };
            if value.is_empty() || attributes.iter().any(|(k, _)| *k == key) {
                continue;
            }
            attributes.push((key, value));
        }
        prop_assume!(!attributes.is_empty());
        let subject = Subject { attributes };
        let text = subject.to_string();
        prop_assert_eq!(Subject::parse(&text), Ok(subject));
    }
}
