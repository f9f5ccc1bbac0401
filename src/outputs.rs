//! Encodes the extra files of `[[certificate.output]]` (a combined PEM bundle, a PKCS#12
//! keystore and truststore) from the PEM texts of one generation. Returns bytes; does not
//! write files (the store does, inside the generation, so they swap with the rest).

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKeyChain};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

/// One part of a `pem-bundle` output; the bundle holds the parts in the order given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemPart {
    /// The private key (PKCS#8): makes the bundle a secret.
    Key,
    /// The leaf certificate.
    Cert,
    /// The certificates that follow the leaf in the returned chain (the CA for Kyma).
    Chain,
    /// The CA certificate(s) the connector returned.
    Ca,
}

impl PemPart {
    pub fn as_str(self) -> &'static str {
        match self {
            PemPart::Key => "key",
            PemPart::Cert => "cert",
            PemPart::Chain => "chain",
            PemPart::Ca => "ca",
        }
    }
}

/// One `[[certificate.output]]`: an extra file written into each generation and swapped
/// with the rest. File names are plain names inside the generation directory.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputConfig {
    /// `kind = "pem-bundle"`: PEM parts concatenated (HAProxy, Postfix).
    PemBundle { file: String, parts: Vec<PemPart> },
    /// `kind = "pkcs12"`: key and chain in a PKCS#12 keystore (Java), and optionally the
    /// CA as trusted entries in a second file.
    Pkcs12 {
        file: String,
        /// Read each time the keystore is written; never kept.
        password_file: PathBuf,
        truststore: Option<String>,
    },
}

impl OutputConfig {
    /// The file names this output writes.
    pub fn files(&self) -> Vec<&str> {
        match self {
            OutputConfig::PemBundle { file, .. } => vec![file],
            OutputConfig::Pkcs12 {
                file, truststore, ..
            } => std::iter::once(file.as_str())
                .chain(truststore.as_deref())
                .collect(),
        }
    }
}

/// A PKCS#12 password file larger than this is not a password.
const MAX_PASSWORD_BYTES: u64 = 4096;

/// The PEM texts of one generation, as written to `key.pem`, `cert.pem`, `chain.pem` and
/// `ca.pem`.
#[derive(Clone, Copy)]
pub struct PemTexts<'a> {
    /// The private key, PKCS#8 PEM.
    pub key: &'a str,
    /// The leaf certificate.
    pub cert: &'a str,
    /// The leaf followed by the CA chain.
    pub chain: &'a str,
    /// The CA certificate(s).
    pub ca: &'a str,
}

impl fmt::Debug for PemTexts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PemTexts").finish_non_exhaustive()
    }
}

/// One file to write into the generation; its bytes are wiped on drop.
pub struct OutputFile {
    /// A plain name inside the generation directory.
    pub name: String,
    pub bytes: Zeroizing<Vec<u8>>,
    /// Holds the private key: write it with `key_mode`, else with `cert_mode`.
    pub secret: bool,
}

impl fmt::Debug for OutputFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputFile")
            .field("name", &self.name)
            .field("bytes", &format_args!("<{} bytes>", self.bytes.len()))
            .field("secret", &self.secret)
            .finish()
    }
}

/// A keystore password, wiped on drop, never shown.
pub struct Password(Zeroizing<String>);

impl Password {
    pub fn new(text: impl Into<String>) -> Password {
        Password(Zeroizing::new(text.into()))
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Why an output could not be encoded. No variant carries key material or a password.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot read the keystore password file {path}")]
    PasswordFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the keystore password file {path} is {problem}")]
    BadPassword {
        path: PathBuf,
        problem: &'static str,
    },
    #[error("the {part} PEM of the generation holds no usable {what}")]
    Pem {
        part: &'static str,
        what: &'static str,
    },
    #[error("cannot encode the PKCS#12 file {file}: {detail}")]
    Pkcs12 { file: String, detail: String },
}

/// Reads a keystore password: the file's text without one trailing newline (`\n` or
/// `\r\n`), which must be non-empty, valid UTF-8 and without NUL.
pub fn read_password(path: &Path) -> Result<Password, OutputError> {
    let bad = |problem| OutputError::BadPassword {
        path: path.to_owned(),
        problem,
    };
    let mut bytes = Zeroizing::new(Vec::new());
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PASSWORD_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|source| OutputError::PasswordFile {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > MAX_PASSWORD_BYTES {
        return Err(bad("larger than 4 KiB"));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| bad("not UTF-8 text"))?;
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    if text.is_empty() {
        return Err(bad("empty"));
    }
    if text.contains('\0') {
        return Err(bad("holding a NUL character"));
    }
    Ok(Password::new(text))
}

/// Whether `outputs` can be produced: every keystore password file reads (its text is
/// wiped at once). Run before a one-time token is spent.
pub fn preflight(outputs: &[OutputConfig]) -> Result<(), OutputError> {
    for output in outputs {
        if let OutputConfig::Pkcs12 { password_file, .. } = output {
            drop(read_password(password_file)?);
        }
    }
    Ok(())
}

/// The files of `outputs` for one generation; keystore passwords are read from their
/// files now and wiped when this returns. `alias` names the key entry (the certificate's
/// name).
pub fn render(
    alias: &str,
    pems: PemTexts<'_>,
    outputs: &[OutputConfig],
) -> Result<Vec<OutputFile>, OutputError> {
    render_with(alias, pems, outputs, read_password)
}

/// [`render`] with the passwords from `password` instead of their files.
pub fn render_with(
    alias: &str,
    pems: PemTexts<'_>,
    outputs: &[OutputConfig],
    mut password: impl FnMut(&Path) -> Result<Password, OutputError>,
) -> Result<Vec<OutputFile>, OutputError> {
    let mut files = Vec::new();
    for output in outputs {
        match output {
            OutputConfig::PemBundle { file, parts } => {
                files.push(pem_bundle(file, parts, pems)?);
            }
            OutputConfig::Pkcs12 {
                file,
                password_file,
                truststore,
            } => {
                let password = password(password_file)?;
                files.push(keystore(file, alias, pems, &password)?);
                if let Some(name) = truststore {
                    files.push(trust_store(name, alias, pems.ca, &password)?);
                }
            }
        }
    }
    Ok(files)
}

/// The parts in the order given, each ending with a newline.
fn pem_bundle(
    file: &str,
    parts: &[PemPart],
    pems: PemTexts<'_>,
) -> Result<OutputFile, OutputError> {
    let mut bytes = Zeroizing::new(Vec::new());
    for part in parts {
        let text = match part {
            PemPart::Key => Zeroizing::new(pems.key.to_owned()),
            PemPart::Cert => Zeroizing::new(pems.cert.to_owned()),
            PemPart::Chain => Zeroizing::new(chain_after_leaf(pems.chain)?),
            PemPart::Ca => Zeroizing::new(pems.ca.to_owned()),
        };
        bytes.extend_from_slice(text.trim_end().as_bytes());
        bytes.push(b'\n');
    }
    Ok(OutputFile {
        name: file.to_owned(),
        bytes,
        secret: parts.contains(&PemPart::Key),
    })
}

/// The certificates of `chain.pem` after the leaf, re-armoured.
fn chain_after_leaf(chain: &str) -> Result<String, OutputError> {
    let certs = certificates(chain, "chain")?;
    Ok(certs
        .iter()
        .skip(1)
        .map(|der| pem("CERTIFICATE", der))
        .collect())
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn certificates(
    text: &str,
    part: &'static str,
) -> Result<Vec<CertificateDer<'static>>, OutputError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|_| OutputError::Pem {
            part,
            what: "certificate",
        })?;
    if certs.is_empty() {
        return Err(OutputError::Pem {
            part,
            what: "certificate",
        });
    }
    Ok(certs)
}

fn p12_certificate(der: &[u8], part: &'static str) -> Result<Certificate, OutputError> {
    Certificate::from_der(der).map_err(|_| OutputError::Pem {
        part,
        what: "certificate",
    })
}

fn encode_error(file: &str, error: p12_keystore::error::Error) -> OutputError {
    OutputError::Pkcs12 {
        file: file.to_owned(),
        detail: error.to_string(),
    }
}

/// Key and chain (leaf first), AES-256-CBC with PBKDF2-HMAC-SHA256, MAC HMAC-SHA256.
fn keystore(
    file: &str,
    alias: &str,
    pems: PemTexts<'_>,
    password: &Password,
) -> Result<OutputFile, OutputError> {
    let key_der = match PrivateKeyDer::from_pem_slice(pems.key.as_bytes()) {
        Ok(PrivateKeyDer::Pkcs8(der)) => Zeroizing::new(der.secret_pkcs8_der().to_vec()),
        _ => {
            return Err(OutputError::Pem {
                part: "key",
                what: "PKCS#8 private key",
            });
        }
    };
    let key = p12_keystore::PrivateKey::from_der(&key_der).map_err(|_| OutputError::Pem {
        part: "key",
        what: "PKCS#8 private key",
    })?;
    let chain = certificates(pems.chain, "chain")?;
    let certs = chain
        .iter()
        .map(|der| p12_certificate(der, "chain"))
        .collect::<Result<Vec<_>, _>>()?;
    // The key and its certificate are matched by this id; the leaf's digest is stable.
    let local_key_id = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &chain[0]);
    let mut store = KeyStore::new();
    store.add_entry(
        alias,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id.as_ref(), key, certs)),
    );
    let bytes = store
        .writer(password.expose())
        .write()
        .map_err(|e| encode_error(file, e))?;
    Ok(OutputFile {
        name: file.to_owned(),
        bytes: Zeroizing::new(bytes),
        secret: true,
    })
}

/// The CA certificate(s) as trusted certificate entries (with the attribute Java needs to
/// list them as `trustedCertEntry`), protected by the keystore's password.
fn trust_store(
    file: &str,
    alias: &str,
    ca: &str,
    password: &Password,
) -> Result<OutputFile, OutputError> {
    let mut store = KeyStore::new();
    for (index, der) in certificates(ca, "ca")?.iter().enumerate() {
        let name = match index {
            0 => format!("{alias}-ca"),
            n => format!("{alias}-ca-{}", n + 1),
        };
        store.add_entry(
            &name,
            KeyStoreEntry::Certificate(p12_certificate(der, "ca")?),
        );
    }
    let bytes = store
        .writer(password.expose())
        .write()
        .map_err(|e| encode_error(file, e))?;
    Ok(OutputFile {
        name: file.to_owned(),
        bytes: Zeroizing::new(bytes),
        secret: false,
    })
}

#[cfg(test)]
mod tests;
