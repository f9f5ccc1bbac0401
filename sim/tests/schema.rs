//! The simulator's copy of the Compass connector schema must keep the upstream types, fields,
//! arguments and field types.

use std::collections::BTreeMap;

use apollo_compiler::Schema;
use apollo_compiler::schema::ExtendedType;

const UPSTREAM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/upstream/compass-connector/schema.graphql"
);
const OURS: &str = include_str!("../src/schema.graphql");

/// type name -> field name -> "(arguments): type"
fn shape(sdl: &str, name: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let schema = Schema::parse_and_validate(sdl, name).expect("schema validates");
    schema
        .types
        .iter()
        .filter(|(_, ty)| !ty.is_built_in())
        .map(|(type_name, ty)| {
            let fields = match ty {
                ExtendedType::Object(object) => object
                    .fields
                    .iter()
                    .map(|(field_name, field)| {
                        let arguments: Vec<String> = field
                            .arguments
                            .iter()
                            .map(|a| format!("{}: {}", a.name, a.ty))
                            .collect();
                        (
                            field_name.to_string(),
                            format!("({}): {}", arguments.join(", "), field.ty),
                        )
                    })
                    .collect(),
                other => panic!("unexpected kind of type {type_name}: {other:?}"),
            };
            (type_name.to_string(), fields)
        })
        .collect()
}

#[test]
fn the_schema_copy_has_the_upstream_types_fields_and_field_types() {
    let Ok(upstream) = std::fs::read_to_string(UPSTREAM) else {
        // CI always has the upstream files beside the repository: there, a skip is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "the upstream schema is not at {UPSTREAM}"
        );
        eprintln!("skipped: the upstream schema is not at {UPSTREAM}");
        return;
    };
    let theirs = shape(&upstream, "upstream.graphql");
    let ours = shape(OURS, "schema.graphql");
    assert_eq!(ours, theirs);
    assert_eq!(
        theirs["Mutation"]["signCertificateSigningRequest"],
        "(csr: String!): CertificationResult!"
    );
}
