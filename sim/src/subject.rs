//! The certificate subject the connectors announce, check and issue: the announced
//! `O=..,OU=..,L=..,ST=..,C=..,CN=..` string, the attribute-set comparison with a CSR's
//! subject, and the Go-ordered encoding of the issued subject. Does not parse CSRs.

use std::fmt;

use rcgen::{DistinguishedName, DnType, DnValue};
use x509_parser::oid_registry::{
    OID_X509_COMMON_NAME, OID_X509_COUNTRY_NAME, OID_X509_LOCALITY_NAME,
    OID_X509_ORGANIZATION_NAME, OID_X509_ORGANIZATIONAL_UNIT, OID_X509_STATE_OR_PROVINCE_NAME,
};
use x509_parser::x509::X509Name;

/// One of the six subject attributes the connectors care about, in Go's encoding order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribute {
    Country,
    Province,
    Locality,
    Organization,
    OrganizationalUnit,
    CommonName,
}

impl Attribute {
    /// Go's `pkix.Name` order, the order of the issued certificate's subject.
    pub const GO_ORDER: [Attribute; 6] = [
        Attribute::Country,
        Attribute::Province,
        Attribute::Locality,
        Attribute::Organization,
        Attribute::OrganizationalUnit,
        Attribute::CommonName,
    ];

    /// The order of the subject string Compass announces (`O=..,OU=..,L=..,ST=..,C=..,CN=..`).
    const COMPASS_ORDER: [Attribute; 6] = [
        Attribute::Organization,
        Attribute::OrganizationalUnit,
        Attribute::Locality,
        Attribute::Province,
        Attribute::Country,
        Attribute::CommonName,
    ];

    /// The order of the subject string Kyma REST announces (`OU=..,O=..,L=..,ST=..,C=..,CN=..`).
    const REST_ORDER: [Attribute; 6] = [
        Attribute::OrganizationalUnit,
        Attribute::Organization,
        Attribute::Locality,
        Attribute::Province,
        Attribute::Country,
        Attribute::CommonName,
    ];

    /// The short key used in subject strings.
    pub fn key(self) -> &'static str {
        match self {
            Attribute::Country => "C",
            Attribute::Province => "ST",
            Attribute::Locality => "L",
            Attribute::Organization => "O",
            Attribute::OrganizationalUnit => "OU",
            Attribute::CommonName => "CN",
        }
    }

    fn dn_type(self) -> DnType {
        match self {
            Attribute::Country => DnType::CountryName,
            Attribute::Province => DnType::StateOrProvinceName,
            Attribute::Locality => DnType::LocalityName,
            Attribute::Organization => DnType::OrganizationName,
            Attribute::OrganizationalUnit => DnType::OrganizationalUnitName,
            Attribute::CommonName => DnType::CommonName,
        }
    }

    fn oid(self) -> x509_parser::der_parser::oid::Oid<'static> {
        match self {
            Attribute::Country => OID_X509_COUNTRY_NAME,
            Attribute::Province => OID_X509_STATE_OR_PROVINCE_NAME,
            Attribute::Locality => OID_X509_LOCALITY_NAME,
            Attribute::Organization => OID_X509_ORGANIZATION_NAME,
            Attribute::OrganizationalUnit => OID_X509_ORGANIZATIONAL_UNIT,
            Attribute::CommonName => OID_X509_COMMON_NAME,
        }
    }
}

/// The fixed part of every subject this simulator announces (everything but the CN).
pub(crate) const ORGANIZATION: &str = "Org";
pub(crate) const ORGANIZATIONAL_UNIT: &str = "OrgUnit";
pub(crate) const LOCALITY: &str = "Waldorf";
pub(crate) const PROVINCE: &str = "Waldorf";
pub(crate) const COUNTRY: &str = "DE";

/// The subject a CSR must carry: the fixed organisation part plus the client's CN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedSubject {
    common_name: String,
}

/// Why a CSR's subject was refused; the message names the attribute and the expected value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectMismatch {
    #[error("the subject has no {key} attribute (expected {key}={expected})")]
    Missing { key: &'static str, expected: String },
    #[error("the subject has more than one {key} attribute")]
    Repeated { key: &'static str },
    #[error("the subject's {key} attribute is not a readable string")]
    Unreadable { key: &'static str },
    #[error("the subject's {key} is {found:?}, expected {expected:?}")]
    Different {
        key: &'static str,
        found: String,
        expected: String,
    },
}

impl ExpectedSubject {
    pub fn new(common_name: impl Into<String>) -> Self {
        ExpectedSubject {
            common_name: common_name.into(),
        }
    }

    pub fn common_name(&self) -> &str {
        &self.common_name
    }

    /// The value this subject requires for one attribute.
    pub fn value(&self, attribute: Attribute) -> &str {
        match attribute {
            Attribute::Country => COUNTRY,
            Attribute::Province => PROVINCE,
            Attribute::Locality => LOCALITY,
            Attribute::Organization => ORGANIZATION,
            Attribute::OrganizationalUnit => ORGANIZATIONAL_UNIT,
            Attribute::CommonName => &self.common_name,
        }
    }

    /// The string Compass announces: `O=Org,OU=OrgUnit,L=Waldorf,ST=Waldorf,C=DE,CN=<cn>`
    /// (commas and backslashes inside values escaped with `\`).
    pub fn announced(&self) -> String {
        join(self, &Attribute::COMPASS_ORDER)
    }

    /// The string Kyma REST announces, organisational unit first like upstream:
    /// `OU=OrgUnit,O=Org,L=Waldorf,ST=Waldorf,C=DE,CN=<cn>`.
    pub fn announced_rest(&self) -> String {
        join(self, &Attribute::REST_ORDER)
    }

    /// The issued certificate's subject in Go's order: `C=DE,ST=..,L=..,O=..,OU=..,CN=<cn>`.
    pub fn go_ordered(&self) -> String {
        join(self, &Attribute::GO_ORDER)
    }

    /// The issued certificate's subject, re-encoded like Go does: Go's attribute order, and
    /// PrintableString where the value allows it, UTF8String otherwise.
    pub fn distinguished_name(&self) -> DistinguishedName {
        let mut name = DistinguishedName::new();
        for attribute in Attribute::GO_ORDER {
            let value = self.value(attribute);
            let encoded = match value.to_owned().try_into() {
                Ok(printable) => DnValue::PrintableString(printable),
                Err(_) => DnValue::Utf8String(value.to_owned()),
            };
            name.push(attribute.dn_type(), encoded);
        }
        name
    }

    /// Compares a CSR's subject with this one as a set of attribute/value pairs: each of the
    /// six attributes must occur exactly once with the expected value; any other attribute is
    /// ignored (the issued subject carries only these six).
    pub fn check(&self, name: &X509Name<'_>) -> Result<(), SubjectMismatch> {
        for attribute in Attribute::GO_ORDER {
            let key = attribute.key();
            let expected = self.value(attribute);
            let oid = attribute.oid();
            let mut values = name.iter_by_oid(&oid);
            let Some(first) = values.next() else {
                return Err(SubjectMismatch::Missing {
                    key,
                    expected: expected.to_owned(),
                });
            };
            if values.next().is_some() {
                return Err(SubjectMismatch::Repeated { key });
            }
            let found = first
                .as_str()
                .map_err(|_| SubjectMismatch::Unreadable { key })?;
            if found != expected {
                return Err(SubjectMismatch::Different {
                    key,
                    found: found.to_owned(),
                    expected: expected.to_owned(),
                });
            }
        }
        Ok(())
    }
}

impl fmt::Display for ExpectedSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.announced())
    }
}

fn join(subject: &ExpectedSubject, order: &[Attribute]) -> String {
    order
        .iter()
        .map(|attribute| format!("{}={}", attribute.key(), escape(subject.value(*attribute))))
        .collect::<Vec<_>>()
        .join(",")
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace(',', "\\,")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};
    use x509_parser::prelude::FromDer;

    fn csr_subject_der(pairs: &[(DnType, &str)]) -> Vec<u8> {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        for (ty, value) in pairs {
            name.push(ty.clone(), *value);
        }
        params.distinguished_name = name;
        let key = KeyPair::generate().expect("p-256 key generation works");
        params
            .serialize_request(&key)
            .expect("request serialises")
            .der()
            .to_vec()
    }

    fn check(pairs: &[(DnType, &str)]) -> Result<(), SubjectMismatch> {
        let der = csr_subject_der(pairs);
        let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
            .expect("generated csr parses");
        ExpectedSubject::new("my-app").check(&csr.certification_request_info.subject)
    }

    fn full() -> Vec<(DnType, &'static str)> {
        vec![
            (DnType::CommonName, "my-app"),
            (DnType::CountryName, "DE"),
            (DnType::OrganizationalUnitName, "OrgUnit"),
            (DnType::OrganizationName, "Org"),
            (DnType::StateOrProvinceName, "Waldorf"),
            (DnType::LocalityName, "Waldorf"),
        ]
    }

    #[test]
    fn announced_subject_matches_the_connector_format() {
        assert_eq!(
            ExpectedSubject::new("my-app").announced(),
            "O=Org,OU=OrgUnit,L=Waldorf,ST=Waldorf,C=DE,CN=my-app"
        );
    }

    #[test]
    fn go_ordered_subject_starts_with_the_country() {
        assert_eq!(
            ExpectedSubject::new("my-app").go_ordered(),
            "C=DE,ST=Waldorf,L=Waldorf,O=Org,OU=OrgUnit,CN=my-app"
        );
    }

    #[test]
    fn commas_in_the_common_name_are_escaped() {
        assert!(
            ExpectedSubject::new("a,b")
                .announced()
                .ends_with("CN=a\\,b")
        );
    }

    #[test]
    fn subject_in_any_order_is_accepted() {
        assert_eq!(check(&full()), Ok(()));
    }

    #[test]
    fn subject_with_another_common_name_is_refused() {
        let mut pairs = full();
        pairs[0] = (DnType::CommonName, "other-app");
        assert!(matches!(
            check(&pairs),
            Err(SubjectMismatch::Different { key: "CN", .. })
        ));
    }

    #[test]
    fn subject_without_locality_is_refused() {
        let pairs: Vec<_> = full()
            .into_iter()
            .filter(|(ty, _)| *ty != DnType::LocalityName)
            .collect();
        assert!(matches!(
            check(&pairs),
            Err(SubjectMismatch::Missing { key: "L", .. })
        ));
    }

    #[test]
    fn extra_attributes_are_ignored() {
        let mut pairs = full();
        pairs.push((
            DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
            "a@b.c",
        ));
        assert_eq!(check(&pairs), Ok(()));
    }
}
