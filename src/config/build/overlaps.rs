//! Refuses configurations where two certificates would write the same directory or
//! file. Does not look at the disk.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::super::model::{CertificateConfig, Layout};
use super::super::raw::RawCertificate;
use super::Builder;

impl Builder<'_> {
    /// Two certificates must not write the same directory or the same file.
    pub(super) fn check_overlaps(
        &mut self,
        certificates: &[(Range<usize>, &RawCertificate, CertificateConfig)],
    ) {
        let mut dirs: HashMap<&Path, &str> = HashMap::new();
        let mut files: HashMap<PathBuf, &str> = HashMap::new();
        for (_, raw, cert) in certificates {
            let ctx = format!("certificate {:?}", cert.name);
            if let Some(other) = dirs.insert(&cert.dir, &cert.name)
                && let Some(dir) = &raw.dir
            {
                self.problems.at(
                    dir.span(),
                    Some(&ctx),
                    Some("dir"),
                    format!("is already used by certificate {other:?}"),
                );
            }
            for (key, path) in written_files(cert) {
                if let Some(other) = files.get(&path)
                    && *other != cert.name.as_str()
                {
                    let span = file_key_span(raw, key).unwrap_or_default();
                    self.problems.at(
                        span,
                        Some(&ctx),
                        Some(key),
                        format!(
                            "{} is also written by certificate {other:?}",
                            path.display()
                        ),
                    );
                }
                files.insert(path, &cert.name);
            }
        }
    }
}

/// Every file a certificate writes, with the key that names it (`dir` for those inside
/// `dir`).
fn written_files(cert: &CertificateConfig) -> Vec<(&'static str, PathBuf)> {
    let mut out: Vec<(&'static str, PathBuf)> = ["state.json", "journal.json"]
        .iter()
        .map(|f| ("dir", cert.dir.join(f)))
        .collect();
    match &cert.layout {
        Layout::Symlink => {
            for f in ["cert.pem", "key.pem", "chain.pem", "ca.pem", "current"] {
                out.push(("dir", cert.dir.join(f)));
            }
        }
        Layout::Files(files) => {
            out.push(("cert_file", files.cert_file.clone()));
            out.push(("key_file", files.key_file.clone()));
            out.push(("chain_file", files.chain_file.clone()));
            out.push(("ca_file", files.ca_file.clone()));
        }
    }
    out
}

fn file_key_span(raw: &RawCertificate, key: &str) -> Option<Range<usize>> {
    let value = match key {
        "cert_file" => &raw.cert_file,
        "key_file" => &raw.key_file,
        "chain_file" => &raw.chain_file,
        "ca_file" => &raw.ca_file,
        _ => &raw.dir,
    };
    value.as_ref().map(Spanned::span)
}
