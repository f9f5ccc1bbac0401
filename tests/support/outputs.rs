//! `[[certificate.output]]` tables for the suites that check what outputs leave on disk
//! and in logs: a combined PEM, a trust PEM and PKCS#12 stores with a password file.

use super::world::World;

/// The `[[certificate.output]]` files every output table writes, and whether each holds the key.
pub const OUTPUT_FILES: [(&str, bool); 4] = [
    ("client.pem", true),
    ("trust.pem", false),
    ("keystore.p12", true),
    ("truststore.p12", false),
];

/// Output tables writing [`OUTPUT_FILES`], with a keystore password file in `world`.
pub fn outputs_tables(world: &World) -> String {
    let password = world.path("keystore.pass");
    std::fs::write(&password, format!("{KEYSTORE_PASSWORD}\n")).unwrap();
    format!(
        "[[certificate.output]]\nkind = \"pem-bundle\"\nfile = \"client.pem\"\nparts = [\"key\", \"cert\", \"chain\"]\n\
         [[certificate.output]]\nkind = \"pem-bundle\"\nfile = \"trust.pem\"\nparts = [\"ca\"]\n\
         [[certificate.output]]\nkind = \"pkcs12\"\nfile = \"keystore.p12\"\npassword_file = {:?}\ntruststore = \"truststore.p12\"\n",
        password.display().to_string()
    )
}

/// The keystore password [`outputs_tables`] writes: a secret the scans look for.
pub const KEYSTORE_PASSWORD: &str = "Keyst0re-pa55word";
