//! Validates `[[certificate.output]]` entries: kinds, plain file names that clash with
//! nothing else in a generation, PEM parts, and the keystore password file. Does not
//! encode anything (see `crate::outputs`).

use std::collections::HashMap;
use std::path::Path;

use toml::Spanned;

use super::super::model::{OutputConfig, PemPart};
use super::super::raw::RawOutput;
use super::{Builder, Checks, own};

/// Names the store already uses in a generation or in `dir` (see `crate::store`): an
/// output is linked (symlink layout) or written (files layout) as `dir/<file>`, so it
/// must not take any of them.
pub(crate) const RESERVED_NAMES: [&str; 9] = [
    "cert.pem",
    "key.pem",
    "chain.pem",
    "ca.pem",
    "connection.json",
    "state.json",
    "journal.json",
    "current",
    "previous",
];

/// Prefixes of names the store creates, prunes or cleans up in `dir` (generations, a
/// set-aside corrupt state); temporary files contain `.tmp-`.
const RESERVED_PREFIXES: [&str; 2] = ["gen-", "state.json.corrupt-"];

impl Builder<'_> {
    pub(super) fn outputs(
        &mut self,
        raw: &[Spanned<RawOutput>],
        ctx: &str,
        in_dir: &[&Path],
    ) -> Vec<OutputConfig> {
        let ctx = format!("{ctx}: output");
        let ctx = ctx.as_str();
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut outputs = Vec::new();
        for entry in raw {
            let Some(output) = self.output(entry, ctx) else {
                continue;
            };
            self.check_unique_names(entry.get_ref(), &mut names, ctx);
            self.check_not_configured(entry.get_ref(), in_dir, ctx);
            outputs.push(output);
        }
        outputs
    }

    fn output(&mut self, entry: &Spanned<RawOutput>, ctx: &str) -> Option<OutputConfig> {
        let span = entry.span();
        let raw = entry.get_ref();
        let kind = self.required(&raw.kind, &span, ctx, "kind", |_, s| match s.as_str() {
            "pem-bundle" | "pkcs12" => Ok(s.clone()),
            _ => Err("must be \"pem-bundle\" or \"pkcs12\"".into()),
        })?;
        let file = self.required(&raw.file, &span, ctx, "file", |_, s| {
            check_file_name(s).map(|()| s.clone())
        });
        if kind == "pem-bundle" {
            self.not_for(&raw.password_file, ctx, "password_file", "pkcs12");
            self.not_for(&raw.truststore, ctx, "truststore", "pkcs12");
            let parts = match &raw.parts {
                Some(parts) => {
                    self.check(own(&Some(parts.clone())), ctx, "parts", |p| parse_parts(p))
                }
                None => {
                    self.problems.at(
                        span,
                        Some(ctx),
                        Some("parts"),
                        "is required: a list of \"key\", \"cert\", \"chain\", \"ca\" in the order wanted",
                    );
                    None
                }
            };
            return Some(OutputConfig::PemBundle {
                file: file?,
                parts: parts?,
            });
        }
        if let Some(parts) = &raw.parts {
            self.problems.at(
                parts.span(),
                Some(ctx),
                Some("parts"),
                "only applies to kind = \"pem-bundle\"",
            );
        }
        let password_file =
            self.required(&raw.password_file, &span, ctx, "password_file", |b, s| {
                b.path(s)
            });
        if let (Some(path), Some(src), Checks::Full) =
            (&password_file, &raw.password_file, self.checks)
            && let Err(e) = crate::outputs::read_password(path)
        {
            self.problems
                .at(src.span(), Some(ctx), Some("password_file"), e.to_string());
        }
        let truststore = self.check(own(&raw.truststore), ctx, "truststore", |s| {
            check_file_name(s).map(|()| s.clone())
        });
        if raw.truststore.is_some() && truststore.is_none() {
            return None;
        }
        Some(OutputConfig::Pkcs12 {
            file: file?,
            password_file: password_file?,
            truststore,
        })
    }

    fn not_for(&mut self, value: &Option<Spanned<String>>, ctx: &str, key: &str, kind: &str) {
        if let Some(value) = value {
            self.problems.at(
                value.span(),
                Some(ctx),
                Some(key),
                format!("only applies to kind = \"{kind}\""),
            );
        }
    }

    /// Records a problem for every name of `raw` that another output of the same
    /// certificate already writes.
    fn check_unique_names(
        &mut self,
        raw: &RawOutput,
        names: &mut HashMap<String, usize>,
        ctx: &str,
    ) {
        for (key, value) in [("file", &raw.file), ("truststore", &raw.truststore)] {
            let Some(value) = value else { continue };
            if let Some(first) = names.insert(value.get_ref().clone(), value.span().start) {
                let line = self.problems.position(first).0;
                self.problems.at(
                    value.span(),
                    Some(ctx),
                    Some(key),
                    format!("names the same file as the `file` or `truststore` on line {line}"),
                );
            }
        }
    }
}

impl Builder<'_> {
    /// With the files layout, outputs are written in `dir`: none may be one of the four
    /// configured files when those live in `dir` too.
    fn check_not_configured(&mut self, raw: &RawOutput, in_dir: &[&Path], ctx: &str) {
        for (key, value) in [("file", &raw.file), ("truststore", &raw.truststore)] {
            let Some(value) = value else { continue };
            if in_dir
                .iter()
                .any(|p| p.file_name().is_some_and(|n| n == value.get_ref().as_str()))
            {
                self.problems.at(
                    value.span(),
                    Some(ctx),
                    Some(key),
                    "is also a configured cert_file, key_file, chain_file or ca_file in `dir`",
                );
            }
        }
    }
}

/// A plain file name inside a generation directory.
fn check_file_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.contains('/') || name.contains('\0') {
        return Err("must be a plain file name inside the generation, without `/`".into());
    }
    if name.starts_with('.') {
        return Err("must not start with `.`".into());
    }
    if name.len() > 255 {
        return Err("is longer than 255 bytes".into());
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(format!(
            "is a name kyma-certd already uses ({})",
            RESERVED_NAMES.join(", ")
        ));
    }
    if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| name.starts_with(*p)) {
        return Err(format!(
            "must not start with `{prefix}`, which kyma-certd uses"
        ));
    }
    if name.contains(".tmp-") {
        return Err("must not contain `.tmp-`, which marks kyma-certd's temporary files".into());
    }
    Ok(())
}

fn parse_parts(parts: &[String]) -> Result<Vec<PemPart>, String> {
    if parts.is_empty() {
        return Err("must name at least one of \"key\", \"cert\", \"chain\", \"ca\"".into());
    }
    let mut out = Vec::new();
    for part in parts {
        let parsed = match part.as_str() {
            "key" => PemPart::Key,
            "cert" => PemPart::Cert,
            "chain" => PemPart::Chain,
            "ca" => PemPart::Ca,
            other => {
                return Err(format!(
                    "has {other:?}; the parts are \"key\", \"cert\", \"chain\", \"ca\""
                ));
            }
        };
        if out.contains(&parsed) {
            return Err(format!("names {part:?} twice"));
        }
        out.push(parsed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Checks, OutputConfig, PemPart, ProxySetting, parse_with};

    const CERT: &str =
        "[[certificate]]\nname = \"orders\"\nprotocol = \"compass\"\ndir = \"/var/lib/o\"\n";

    fn parse(extra: &str) -> Result<crate::config::Config, String> {
        parse_with(
            &format!("{CERT}{extra}\n"),
            Path::new("c.toml"),
            Checks::Syntax,
        )
        .map_err(|e| e.to_string())
    }

    fn refused(extra: &str, expected: &str) {
        let err = parse(extra).expect_err("the configuration is refused");
        assert!(err.contains(expected), "no {expected:?} in {err}");
    }

    #[test]
    fn outputs_are_read_in_order_with_their_parts() {
        let config = parse(
            "[[certificate.output]]\nkind = \"pem-bundle\"\nfile = \"bundle.pem\"\nparts = [\"key\", \"cert\", \"chain\"]\n\
             [[certificate.output]]\nkind = \"pkcs12\"\nfile = \"keystore.p12\"\npassword_file = \"p12.pass\"\ntruststore = \"trust.p12\"\n",
        )
        .unwrap();
        let cert = &config.certificates[0];
        assert_eq!(
            cert.outputs,
            [
                OutputConfig::PemBundle {
                    file: "bundle.pem".into(),
                    parts: vec![PemPart::Key, PemPart::Cert, PemPart::Chain],
                },
                OutputConfig::Pkcs12 {
                    file: "keystore.p12".into(),
                    password_file: "p12.pass".into(),
                    truststore: Some("trust.p12".into()),
                },
            ]
        );
        let shown = config.render_resolved();
        assert!(
            shown.contains("parts = [\"key\", \"cert\", \"chain\"]"),
            "{shown}"
        );
        assert!(shown.contains("truststore = \"trust.p12\""), "{shown}");
    }

    #[test]
    fn bad_outputs_are_refused_with_line_and_key() {
        let bundle = |file: &str, parts: &str| {
            format!(
                "[[certificate.output]]\nkind = \"pem-bundle\"\nfile = {file:?}\nparts = {parts}\n"
            )
        };
        refused(&bundle("../x.pem", "[\"key\"]"), "c.toml:7");
        refused(
            &bundle("../x.pem", "[\"key\"]"),
            "key `file`: must be a plain file name",
        );
        for taken in [
            "key.pem",
            "connection.json",
            "state.json",
            "current",
            "previous",
        ] {
            refused(
                &bundle(taken, "[\"key\"]"),
                "is a name kyma-certd already uses",
            );
        }
        refused(
            &bundle("gen-x.pem", "[\"key\"]"),
            "must not start with `gen-`",
        );
        refused(&bundle("a.tmp-1", "[\"key\"]"), "must not contain `.tmp-`");
        refused(&bundle(".hidden", "[\"key\"]"), "must not start with `.`");
        refused(
            &bundle("b.pem", "[]"),
            "key `parts`: must name at least one",
        );
        refused(&bundle("b.pem", "[\"key\", \"leaf\"]"), "has \"leaf\"");
        refused(&bundle("b.pem", "[\"ca\", \"ca\"]"), "names \"ca\" twice");
        refused(
            "[[certificate.output]]\nkind = \"jks\"\nfile = \"a\"\n",
            "key `kind`: must be",
        );
        refused(
            "[[certificate.output]]\nkind = \"pem-bundle\"\nfile = \"a\"\n",
            "key `parts`: is required",
        );
        refused(
            "[[certificate.output]]\nkind = \"pkcs12\"\nfile = \"a\"\n",
            "key `password_file`: is required",
        );
        refused(
            "[[certificate.output]]\nkind = \"pkcs12\"\nfile = \"a\"\npassword_file = \"p\"\nparts = [\"key\"]\n",
            "key `parts`: only applies to kind = \"pem-bundle\"",
        );
        refused(
            "[[certificate.output]]\nkind = \"pkcs12\"\nfile = \"a.p12\"\npassword_file = \"p\"\ntruststore = \"a.p12\"\n",
            "key `truststore`: names the same file as the `file` or `truststore` on line 7",
        );
        refused(
            &format!(
                "{}{}",
                bundle("same", "[\"key\"]"),
                bundle("same", "[\"ca\"]")
            ),
            "key `file`: names the same file",
        );
        refused(
            "[[certificate.output]]\nkind = \"pem-bundle\"\nfile = \"a\"\nparts = [\"key\"]\nmode = \"0600\"\n",
            "mode",
        );
        let files = |cert_file: &str| {
            format!(
                "layout = \"files\"\ncert_file = {cert_file:?}\nkey_file = \"/t/k\"\nchain_file = \"/t/ch\"\nca_file = \"/t/ca\"\n{}",
                bundle("b.pem", "[\"key\"]")
            )
        };
        refused(
            &files("/var/lib/o/b.pem"),
            "key `file`: is also a configured cert_file",
        );
        let config =
            parse(&files("/elsewhere/b.pem")).expect("an output in dir beside files elsewhere");
        assert_eq!(config.certificates[0].outputs.len(), 1);
    }

    #[test]
    fn reserved_names_match_the_store() {
        use crate::store::{CONNECTION_FILE, JOURNAL_FILE, STATE_FILE};
        for name in [CONNECTION_FILE, JOURNAL_FILE, STATE_FILE] {
            assert!(super::RESERVED_NAMES.contains(&name), "{name}");
        }
    }

    #[test]
    fn a_password_file_is_checked_when_the_daemon_loads_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let pass = dir.path().join("p12.pass");
        let text = format!(
            "{CERT}[[certificate.output]]\nkind = \"pkcs12\"\nfile = \"k.p12\"\npassword_file = {:?}\n",
            pass.display().to_string()
        );
        let load = || parse_with(&text, &dir.path().join("c.toml"), Checks::Full);
        let err = load().unwrap_err().to_string();
        assert!(
            err.contains("key `password_file`: cannot read the keystore password file"),
            "{err}"
        );
        std::fs::write(&pass, "\n").unwrap();
        let err = load().unwrap_err().to_string();
        assert!(err.contains("is empty"), "{err}");
        std::fs::write(&pass, "pw-s3cret\n").unwrap();
        load().unwrap();
    }

    #[test]
    fn proxy_is_inherited_and_none_means_direct() {
        let with_defaults = |defaults: &str, own: &str| {
            let text = format!("[defaults]\n{defaults}\n{CERT}{own}\n");
            parse_with(&text, Path::new("c.toml"), Checks::Syntax)
                .map(|c| c.certificates[0].proxy.clone())
                .map_err(|e| e.to_string())
        };
        assert_eq!(with_defaults("", "").unwrap(), ProxySetting::Environment);
        let url = url::Url::parse("http://proxy.example:3128").unwrap();
        assert_eq!(
            with_defaults("proxy = \"http://proxy.example:3128\"", "").unwrap(),
            ProxySetting::Url(url)
        );
        for none in ["\"none\"", "\"\""] {
            let own = format!("proxy = {none}");
            assert_eq!(
                with_defaults("proxy = \"http://proxy.example:3128\"", &own).unwrap(),
                ProxySetting::Direct
            );
        }
        let err = with_defaults("", "proxy = \"socks5://u:hunter2@p:1\"").unwrap_err();
        assert!(err.contains("key `proxy`: has scheme `socks5`"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = with_defaults("", "proxy = \"http://u:hunter2@p:1/path\"").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn check_config_hides_the_proxy_password() {
        let config = parse("proxy = \"http://user:hunter2@proxy.example:3128\"").unwrap();
        let shown = config.render_resolved();
        assert!(
            shown.contains("proxy = \"http://user:redacted@proxy.example:3128/\""),
            "{shown}"
        );
        assert!(!shown.contains("hunter2"));
    }
}
