//! The certificate subject a connector announces (`O=Org,OU=Unit,...,CN=id`): parsing,
//! rendering, conversion for rcgen and set-wise comparison with an X.509 name. Does not
//! build CSRs (see `keys`) nor parse certificates (see `x509`).

use std::fmt;

use x509_parser::oid_registry;
use x509_parser::x509::X509Name;

/// One attribute type a connector subject may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SubjectKey {
    /// Country (encoded as a PrintableString).
    C,
    /// State or province.
    St,
    /// Locality.
    L,
    /// Organization.
    O,
    /// Organizational unit.
    Ou,
    /// Common name.
    Cn,
}

impl SubjectKey {
    /// The short name used in the `K=V` form.
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKey::C => "C",
            SubjectKey::St => "ST",
            SubjectKey::L => "L",
            SubjectKey::O => "O",
            SubjectKey::Ou => "OU",
            SubjectKey::Cn => "CN",
        }
    }

    /// Parses a short name, ignoring ASCII case.
    pub fn parse(text: &str) -> Option<SubjectKey> {
        Some(match text.to_ascii_uppercase().as_str() {
            "C" => SubjectKey::C,
            "ST" => SubjectKey::St,
            "L" => SubjectKey::L,
            "O" => SubjectKey::O,
            "OU" => SubjectKey::Ou,
            "CN" => SubjectKey::Cn,
            _ => return None,
        })
    }

    /// The key for an X.509 attribute type, if it is one of the six.
    pub fn from_oid(oid: &x509_parser::der_parser::oid::Oid<'_>) -> Option<SubjectKey> {
        use oid_registry::{
            OID_X509_COMMON_NAME, OID_X509_COUNTRY_NAME, OID_X509_LOCALITY_NAME,
            OID_X509_ORGANIZATION_NAME, OID_X509_ORGANIZATIONAL_UNIT,
            OID_X509_STATE_OR_PROVINCE_NAME,
        };
        let key = if *oid == OID_X509_COUNTRY_NAME {
            SubjectKey::C
        } else if *oid == OID_X509_STATE_OR_PROVINCE_NAME {
            SubjectKey::St
        } else if *oid == OID_X509_LOCALITY_NAME {
            SubjectKey::L
        } else if *oid == OID_X509_ORGANIZATION_NAME {
            SubjectKey::O
        } else if *oid == OID_X509_ORGANIZATIONAL_UNIT {
            SubjectKey::Ou
        } else if *oid == OID_X509_COMMON_NAME {
            SubjectKey::Cn
        } else {
            return None;
        };
        Some(key)
    }

    fn dn_type(self) -> rcgen::DnType {
        match self {
            SubjectKey::C => rcgen::DnType::CountryName,
            SubjectKey::St => rcgen::DnType::StateOrProvinceName,
            SubjectKey::L => rcgen::DnType::LocalityName,
            SubjectKey::O => rcgen::DnType::OrganizationName,
            SubjectKey::Ou => rcgen::DnType::OrganizationalUnitName,
            SubjectKey::Cn => rcgen::DnType::CommonName,
        }
    }
}

impl fmt::Display for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a subject string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("subject is empty")]
    Empty,
    #[error("subject part {index} is empty")]
    EmptyPart { index: usize },
    #[error("subject part {index} has no `=`")]
    MissingEquals { index: usize },
    #[error("subject attribute `{key}` is not one of C, ST, L, O, OU, CN")]
    UnknownKey { key: String },
    #[error("subject attribute `{key}` appears more than once")]
    Duplicate { key: SubjectKey },
    #[error("subject attribute `{key}` has an empty value")]
    EmptyValue { key: SubjectKey },
    #[error("subject ends with a lone backslash")]
    TrailingBackslash,
    #[error(
        "subject attribute `C` must be a printable string (letters, digits, spaces, '()+,-./:=?)"
    )]
    CountryNotPrintable,
}

/// A parsed connector subject: attributes in the order they were written, each key at
/// most once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    attributes: Vec<(SubjectKey, String)>,
}

impl Subject {
    /// Parses the connector's `K=V,K=V` form. Keys are C, ST, L, O, OU, CN (any case, any
    /// order, each once); `\,` stands for a comma and `\\` for a backslash (a backslash
    /// before any other character keeps that character); whitespace around keys and
    /// values is trimmed unless escaped.
    pub fn parse(text: &str) -> Result<Subject, SubjectError> {
        let parts = split_parts(text)?;
        if parts.len() == 1 && parts[0].raw_is_blank {
            return Err(SubjectError::Empty);
        }
        let mut attributes: Vec<(SubjectKey, String)> = Vec::with_capacity(parts.len());
        for (index, part) in parts.into_iter().enumerate() {
            let index = index + 1;
            if part.raw_is_blank {
                return Err(SubjectError::EmptyPart { index });
            }
            let Some(key_text) = part.key else {
                return Err(SubjectError::MissingEquals { index });
            };
            let key =
                SubjectKey::parse(&key_text).ok_or(SubjectError::UnknownKey { key: key_text })?;
            if attributes.iter().any(|(k, _)| *k == key) {
                return Err(SubjectError::Duplicate { key });
            }
            if part.value.is_empty() {
                return Err(SubjectError::EmptyValue { key });
            }
            if key == SubjectKey::C && !is_printable_string(&part.value) {
                return Err(SubjectError::CountryNotPrintable);
            }
            attributes.push((key, part.value));
        }
        Ok(Subject { attributes })
    }

    /// The attributes in the written order.
    pub fn attributes(&self) -> &[(SubjectKey, String)] {
        &self.attributes
    }

    /// The value of one attribute, if present.
    pub fn get(&self, key: SubjectKey) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The subject as rcgen wants it, in the written order; C as a PrintableString, the
    /// others as UTF8String.
    pub fn to_distinguished_name(&self) -> rcgen::DistinguishedName {
        let mut name = rcgen::DistinguishedName::new();
        for (key, value) in &self.attributes {
            let dn_value = match key {
                SubjectKey::C => match rcgen::string::PrintableString::try_from(value.as_str()) {
                    Ok(printable) => rcgen::DnValue::PrintableString(printable),
                    // `parse` only accepts printable countries; keep the value regardless.
                    Err(_) => rcgen::DnValue::Utf8String(value.clone()),
                },
                _ => rcgen::DnValue::Utf8String(value.clone()),
            };
            name.push(key.dn_type(), dn_value);
        }
        name
    }

    /// Whether an X.509 name carries exactly these attribute/value pairs, in any order and
    /// with any string encoding (a server may re-encode the subject it was sent).
    pub fn matches_x509(&self, name: &X509Name<'_>) -> bool {
        match attribute_set(name) {
            Some(theirs) => theirs == self.sorted_set(),
            None => false,
        }
    }

    fn sorted_set(&self) -> Vec<(SubjectKey, String)> {
        let mut set = self.attributes.clone();
        set.sort();
        set
    }
}

/// The (key, value) pairs of an X.509 name, sorted; `None` when it holds an attribute
/// a connector subject cannot express or a value that is not a string.
pub fn attribute_set(name: &X509Name<'_>) -> Option<Vec<(SubjectKey, String)>> {
    let mut set = Vec::new();
    for attribute in name.iter_attributes() {
        let key = SubjectKey::from_oid(attribute.attr_type())?;
        let value = attribute.as_str().ok()?;
        set.push((key, value.to_owned()));
    }
    set.sort();
    Some(set)
}

impl fmt::Display for Subject {
    /// The `K=V,K=V` form in the written order, escaping what `parse` would otherwise
    /// split or trim, so that `parse(to_string())` gives the same subject.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, value)) in self.attributes.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{key}=")?;
            let last = value.chars().count().saturating_sub(1);
            for (j, c) in value.chars().enumerate() {
                let edge_space = c.is_whitespace() && (j == 0 || j == last);
                if c == ',' || c == '\\' || edge_space {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for Subject {
    type Err = SubjectError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Subject::parse(s)
    }
}

/// One comma-separated part, unescaped and trimmed.
struct Part {
    key: Option<String>,
    value: String,
    raw_is_blank: bool,
}

/// Accumulates characters, trimming unescaped whitespace at both ends.
#[derive(Default)]
struct Trimmed {
    text: String,
    /// Length of `text` up to the last character that must be kept.
    keep: usize,
}

impl Trimmed {
    fn push(&mut self, c: char, escaped: bool) {
        if !escaped && c.is_whitespace() {
            if !self.text.is_empty() {
                self.text.push(c);
            }
        } else {
            self.text.push(c);
            self.keep = self.text.len();
        }
    }

    fn finish(mut self) -> String {
        self.text.truncate(self.keep);
        self.text
    }
}

fn split_parts(text: &str) -> Result<Vec<Part>, SubjectError> {
    let mut parts = Vec::new();
    let mut key: Option<String> = None;
    let mut current = Trimmed::default();
    let mut blank = true;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let escaped = chars.next().ok_or(SubjectError::TrailingBackslash)?;
                current.push(escaped, true);
                blank = false;
            }
            ',' => {
                parts.push(Part {
                    key: key.take(),
                    value: std::mem::take(&mut current).finish(),
                    raw_is_blank: blank,
                });
                blank = true;
            }
            '=' if key.is_none() => {
                key = Some(std::mem::take(&mut current).finish());
                blank = false;
            }
            c => {
                current.push(c, false);
                if !c.is_whitespace() {
                    blank = false;
                }
            }
        }
    }
    parts.push(Part {
        key,
        value: current.finish(),
        raw_is_blank: blank,
    });
    Ok(parts)
}

/// ASN.1 PrintableString alphabet.
fn is_printable_string(text: &str) -> bool {
    text.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                ' ' | '\'' | '(' | ')' | '+' | ',' | '-' | '.' | '/' | ':' | '=' | '?'
            )
    })
}

#[cfg(test)]
#[path = "subject_tests.rs"]
mod tests;
