//! `docs/reference.md` lists exactly the keys the parser accepts, table by table: a key
//! added to (or removed from) the raw structs without the reference fails here, and the
//! man page, rendered from the reference, carries every one of them.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::{self, DeserializeOwned, Visitor};

use super::raw::{RawCertificate, RawDaemon, RawDefaults, RawHook, RawMetrics, RawOutput};

const REFERENCE: &str = include_str!("../../docs/reference.md");

/// A deserializer that only learns which fields a struct accepts: serde hands them to
/// `deserialize_struct`, generated from the struct itself.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> de::Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only structs are asked for their fields"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("fields recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

fn fields_of<T: DeserializeOwned>() -> BTreeSet<String> {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut fields));
    assert!(!fields.is_empty(), "no fields recorded");
    fields.iter().map(|f| (*f).to_owned()).collect()
}

/// What the parser accepts, by table.
fn parsed() -> BTreeMap<&'static str, BTreeSet<String>> {
    BTreeMap::from([
        ("[daemon]", fields_of::<RawDaemon>()),
        ("[metrics]", fields_of::<RawMetrics>()),
        ("[defaults]", fields_of::<RawDefaults>()),
        ("[[certificate]]", fields_of::<RawCertificate>()),
        ("[[certificate.output]]", fields_of::<RawOutput>()),
        ("[[certificate.on_renew]]", fields_of::<RawHook>()),
    ])
}

/// The keys the reference's Configuration section documents, by table: each `###`
/// heading names its table; in the certificate table, a "yes" in the `[defaults]`
/// column documents the key for `[defaults]` too.
fn documented() -> BTreeMap<&'static str, BTreeSet<String>> {
    let start = REFERENCE
        .find("\n## Configuration\n")
        .expect("a Configuration section");
    let rest = &REFERENCE[start + 1..];
    let section = &rest[..rest[3..].find("\n## ").map_or(rest.len(), |end| end + 3)];
    let mut tables: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    for part in section.split("\n### ").skip(1) {
        let heading = part.lines().next().unwrap_or_default();
        let table = [
            "[[certificate.output]]",
            "[[certificate.on_renew]]",
            "[[certificate]]",
            "[daemon]",
            "[metrics]",
        ]
        .into_iter()
        .find(|t| heading.contains(&format!("`{t}`")))
        .unwrap_or_else(|| panic!("the heading {heading:?} names no table"));
        let rows: Vec<Vec<&str>> = part
            .lines()
            .filter(|l| l.starts_with('|'))
            .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
            .collect();
        let Some((header, body)) = rows.split_first() else {
            panic!("no table under {heading:?}");
        };
        let defaults_column = header.iter().position(|c| c.contains("`[defaults]`"));
        for row in body.iter().filter(|r| r[0].starts_with('`')) {
            let key = row[0].trim_matches('`').to_owned();
            tables.entry(table).or_default().insert(key.clone());
            if defaults_column.is_some_and(|c| row.get(c) == Some(&"yes")) {
                tables.entry("[defaults]").or_default().insert(key);
            }
        }
    }
    tables
}

#[test]
fn the_reference_documents_exactly_the_keys_the_parser_accepts() {
    let parsed = parsed();
    let documented = documented();
    let mut problems = Vec::new();
    for (table, keys) in &parsed {
        let listed = documented.get(table).cloned().unwrap_or_default();
        for key in keys.difference(&listed) {
            problems.push(format!(
                "the parser accepts `{key}` in {table}, but docs/reference.md does not document it there"
            ));
        }
        for key in listed.difference(keys) {
            problems.push(format!(
                "docs/reference.md documents `{key}` in {table}, but the parser refuses it"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_field_names_are_read_from_the_structs_themselves() {
    assert_eq!(
        fields_of::<RawMetrics>(),
        BTreeSet::from(["listen".to_owned()])
    );
    assert!(fields_of::<RawCertificate>().contains("token_file"));
    assert!(fields_of::<RawDefaults>().contains("proxy"));
    assert!(!fields_of::<RawDefaults>().contains("name"));
}

#[test]
fn the_man_page_carries_every_configuration_key() {
    let man = crate::man::reference_sections();
    for (table, keys) in parsed() {
        for key in keys {
            assert!(
                man.contains(&format!("\\fB{key}\\fR")),
                "the man page lacks `{key}` ({table})"
            );
        }
    }
}
