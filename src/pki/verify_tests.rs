//! Tests of the checks a returned certificate must pass before it replaces the current
//! one, and of the renewal point verification holds it to.

use super::*;
use crate::testutil::{SUBJECT, TestCa, issued, key};

const DAY: Duration = Duration::from_secs(86_400);

fn expect(subject: &Subject, now: SystemTime) -> Expectations<'_> {
    Expectations {
        subject,
        now,
        renew: RenewPolicy::At(0.7),
        jitter: 0.05,
        previous_lifetime: None,
    }
}

fn pems<'a>(t: &'a (String, String, String)) -> ReturnedPems<'a> {
    ReturnedPems {
        client_cert: &t.0,
        ca: &t.1,
        chain: &t.2,
    }
}

#[test]
fn fresh_certificate_from_the_ca_for_our_key_passes() {
    let ca = TestCa::new("ca");
    let key = key();
    let now = SystemTime::now();
    let got = issued(&ca, &key, now, 10 * DAY);
    let subject = Subject::parse(SUBJECT).unwrap();
    let material = verify(pems(&got), key.clone(), &expect(&subject, now)).unwrap();
    assert_eq!(material.info.lifetime(), 10 * DAY);
    assert!(material.chain_pem.starts_with(&material.cert_pem));
    assert_eq!(
        crate::pki::x509::parse_pem_bundle(&material.chain_pem)
            .unwrap()
            .len(),
        2
    );
    assert_eq!(material.key.public_key_der(), key.public_key_der());
    assert!(material.warnings.is_empty());
    let debug = format!("{material:?}");
    assert!(!debug.contains("BEGIN"), "{debug}");
}

#[test]
fn ca_bundle_in_any_order_with_an_unrelated_ca_still_verifies() {
    let ca = TestCa::new("ca");
    let other = TestCa::new("other");
    let key = key();
    let now = SystemTime::now();
    let (client, ca_pem, chain) = issued(&ca, &key, now, DAY);
    let bundle = format!("{}{ca_pem}", other.pem());
    let subject = Subject::parse(SUBJECT).unwrap();
    let returned = (client, bundle, chain);
    assert!(verify(pems(&returned), key, &expect(&subject, now)).is_ok());
}

#[test]
fn certificate_for_another_key_is_refused() {
    let ca = TestCa::new("ca");
    let got = issued(&ca, &key(), SystemTime::now(), DAY);
    let subject = Subject::parse(SUBJECT).unwrap();
    let err = verify(pems(&got), key(), &expect(&subject, SystemTime::now())).unwrap_err();
    assert!(
        matches!(err, VerifyError::PublicKeyMismatch { .. }),
        "{err}"
    );
}

#[test]
fn certificate_with_another_subject_is_refused() {
    let ca = TestCa::new("ca");
    let key = key();
    let now = SystemTime::now();
    let client = ca.issue(&key, "O=Org,CN=intruder", now, DAY);
    let got = (client.clone(), ca.pem(), format!("{client}{}", ca.pem()));
    let subject = Subject::parse(SUBJECT).unwrap();
    let err = verify(pems(&got), key, &expect(&subject, now)).unwrap_err();
    assert!(matches!(err, VerifyError::SubjectMismatch { .. }), "{err}");
}

#[test]
fn certificate_from_an_unrelated_ca_is_refused() {
    let ca = TestCa::new("ca");
    let other = TestCa::new("other");
    let key = key();
    let now = SystemTime::now();
    let (client, _, chain) = issued(&ca, &key, now, DAY);
    let got = (client, other.pem(), chain);
    let subject = Subject::parse(SUBJECT).unwrap();
    let err = verify(pems(&got), key, &expect(&subject, now)).unwrap_err();
    assert!(matches!(err, VerifyError::Untrusted { .. }), "{err}");
}

#[test]
fn expired_and_future_certificates_are_refused() {
    let ca = TestCa::new("ca");
    let key = key();
    let now = SystemTime::now();
    let subject = Subject::parse(SUBJECT).unwrap();
    let old = issued(&ca, &key, now - 2 * DAY, DAY);
    let err = verify(pems(&old), key.clone(), &expect(&subject, now)).unwrap_err();
    assert!(matches!(err, VerifyError::Expired { .. }), "{err}");
    let future = issued(&ca, &key, now + Duration::from_secs(600), DAY);
    let err = verify(pems(&future), key.clone(), &expect(&subject, now)).unwrap_err();
    assert!(matches!(err, VerifyError::NotYetValid { .. }), "{err}");
}

#[test]
fn server_clock_a_little_ahead_is_tolerated() {
    let ca = TestCa::new("ca");
    let key = key();
    let now = SystemTime::now();
    let got = issued(&ca, &key, now + Duration::from_secs(120), DAY);
    let subject = Subject::parse(SUBJECT).unwrap();
    assert!(verify(pems(&got), key, &expect(&subject, now)).is_ok());
}

#[test]
fn a_stale_certificate_is_refused_but_never_a_fresh_one_for_its_window() {
    let ca = TestCa::new("ca");
    let key = key();
    let now = SystemTime::now();
    let subject = Subject::parse(SUBJECT).unwrap();
    // 10 days, issued 6.6 days ago: 66% elapsed, due at 70% - 5% = 65%.
    let got = issued(&ca, &key, now - DAY.mul_f64(6.6), 10 * DAY);
    let err = verify(pems(&got), key.clone(), &expect(&subject, now)).unwrap_err();
    assert!(err.is_stale(), "{err}");
    // A guide's renew_before = "2h" with 10% jitter on a 1-hour certificate: kept, with
    // a warning naming the setting, and due at 70% less at most 10% of the lifetime.
    let hour = Duration::from_secs(3600);
    let mut e = expect(&subject, now);
    e.renew = RenewPolicy::Before(2 * hour);
    e.jitter = 0.1;
    let fresh = issued(&ca, &key, now, hour);
    let material = verify(pems(&fresh), key.clone(), &e).expect("a fresh certificate is kept");
    assert_eq!(
        material.warnings,
        [VerifyWarning::WindowClamped {
            setting: "renew_before = \"2h\" with jitter = \"10%\"".into(),
            lifetime: hour
        }]
    );
    assert!(material.warnings[0].to_string().contains("renew_before"));
    let due = crate::schedule::earliest_renewal_time(now, now + hour, e.renew, e.jitter);
    assert_eq!(due, now + hour.mul_f64(0.6));
    // Clamped or not, a certificate issued long ago is stale.
    let older = issued(&ca, &key, now - hour.mul_f64(0.65), hour);
    let err = verify(pems(&older), key, &e).unwrap_err();
    assert!(err.is_stale(), "{err}");
}

#[test]
fn much_longer_lifetime_passes_with_a_warning() {
    let ca = TestCa::new("ca");
    let key = key();
    let now = SystemTime::now();
    let got = issued(&ca, &key, now, 10 * DAY);
    let subject = Subject::parse(SUBJECT).unwrap();
    let mut e = expect(&subject, now);
    e.previous_lifetime = Some(DAY);
    let material = verify(pems(&got), key, &e).unwrap();
    assert_eq!(
        material.warnings,
        [VerifyWarning::LifetimeMuchLonger {
            previous: DAY,
            new: 10 * DAY
        }]
    );
}

#[test]
fn chain_that_does_not_start_with_the_client_certificate_is_refused() {
    let ca = TestCa::new("ca");
    let key = key();
    let now = SystemTime::now();
    let (client, ca_pem, _) = issued(&ca, &key, now, DAY);
    let got = (client, ca_pem.clone(), ca_pem);
    let subject = Subject::parse(SUBJECT).unwrap();
    let err = verify(pems(&got), key, &expect(&subject, now)).unwrap_err();
    assert!(matches!(err, VerifyError::ChainMismatch), "{err}");
}

#[test]
fn unreadable_pem_is_refused_per_field() {
    let ca = TestCa::new("ca");
    let key = key();
    let now = SystemTime::now();
    let subject = Subject::parse(SUBJECT).unwrap();
    let (client, ca_pem, chain) = issued(&ca, &key, now, DAY);
    let cases = [
        ("garbage".to_owned(), ca_pem.clone(), chain.clone()),
        (client.clone(), "garbage".to_owned(), chain.clone()),
        (client.clone(), ca_pem.clone(), String::new()),
    ];
    let errs: Vec<_> = cases
        .iter()
        .map(|c| verify(pems(c), key.clone(), &expect(&subject, now)).unwrap_err())
        .collect();
    assert!(matches!(errs[0], VerifyError::ClientCert(_)));
    assert!(matches!(errs[1], VerifyError::Ca(_)));
    assert!(matches!(errs[2], VerifyError::Chain(_)));
}

#[test]
fn the_earliest_renewal_time_subtracts_the_full_jitter() {
    let worst_case_renewal_time = |info: &CertInfo, renew, jitter| {
        crate::schedule::earliest_renewal_time(info.not_before, info.not_after, renew, jitter)
    };
    let ca = TestCa::new("ca");
    let key = key();
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
    let (client, _, _) = issued(&ca, &key, start, 100 * DAY);
    let info = CertInfo::from_pem(&client).unwrap();
    assert_eq!(
        worst_case_renewal_time(&info, RenewPolicy::At(0.7), 0.05),
        start + 65 * DAY
    );
    assert_eq!(
        worst_case_renewal_time(&info, RenewPolicy::Before(30 * DAY), 0.05),
        start + 65 * DAY
    );
    // A window longer than the lifetime is clamped to 70% of it.
    assert_eq!(
        worst_case_renewal_time(&info, RenewPolicy::Before(300 * DAY), 0.0),
        start + 70 * DAY
    );
    // Never earlier than the schedule's floor, 10% of the lifetime, jitter included.
    assert_eq!(
        worst_case_renewal_time(&info, RenewPolicy::Before(85 * DAY), 0.5),
        start + 10 * DAY
    );
    // A policy that cannot be read still waits for the floor.
    assert_eq!(
        worst_case_renewal_time(&info, RenewPolicy::At(f64::NAN), f64::INFINITY),
        start + 10 * DAY
    );
}
