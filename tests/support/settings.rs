//! The `[daemon]`, `[metrics]` and `[defaults]` tables a world's configuration carries
//! besides its certificates: four presets, and single lines set by a test.

/// The `key = value` lines of one table; setting a key again replaces its line.
#[derive(Clone, Debug, Default)]
pub struct Section(Vec<String>);

impl Section {
    fn of(lines: &[&str]) -> Section {
        Section(lines.iter().map(|l| l.to_string()).collect())
    }

    /// Sets `line` (`key = value`), replacing the line of the same key.
    pub fn set(&mut self, line: &str) {
        self.0.retain(|l| key_of(l) != key_of(line));
        self.0.push(line.to_owned());
    }

    /// The table `[header]` with these lines.
    pub(super) fn toml(&self, header: &str) -> String {
        let mut text = format!("[{header}]\n");
        for line in &self.0 {
            text.push_str(line);
            text.push('\n');
        }
        text
    }
}

/// The key of a `key = value` line.
pub(super) fn key_of(line: &str) -> &str {
    line.split('=').next().unwrap_or_default().trim()
}

/// What a world writes into `[daemon]`, `[metrics]` and `[defaults]`; a test changes
/// single lines with [`Section::set`].
#[derive(Clone, Debug)]
pub struct Settings {
    pub daemon: Section,
    pub metrics: Section,
    pub defaults: Section,
}

impl Settings {
    /// For tests of the running daemon: JSON logs at info (parsed line by line), metrics
    /// on an OS-chosen loopback port, fast ECDSA keys, retries within seconds.
    pub fn daemon() -> Settings {
        Settings {
            daemon: Section::of(&["log_format = \"json\"", "log_level = \"info\""]),
            metrics: Section::of(&["listen = \"127.0.0.1:0\""]),
            defaults: Section::of(&[
                "key_algorithm = \"ecdsa-p256\"",
                "retry_min = \"1s\"",
                "retry_max = \"2s\"",
                "timeout = \"5s\"",
            ]),
        }
    }

    /// For one-shot commands: text output as an operator reads it, no metrics listener,
    /// RSA-2048 keys as upstream connectors ask, short timeouts.
    pub fn one_shot() -> Settings {
        Settings {
            daemon: Section::default(),
            metrics: Section::of(&["listen = \"\""]),
            defaults: Section::of(&[
                "key_algorithm = \"rsa2048\"",
                "timeout = \"3s\"",
                "retry_min = \"1s\"",
                "retry_max = \"4s\"",
            ]),
        }
    }

    /// For watching a daemon from the outside: JSON logs, metrics, RSA-2048, renewal at
    /// 70% of the lifetime, no jitter, and retries far enough apart that only the test
    /// triggers attempts.
    pub fn quiet() -> Settings {
        Settings {
            defaults: Section::of(&[
                "key_algorithm = \"rsa2048\"",
                "renew_at = \"70%\"",
                "jitter = \"0%\"",
                "retry_min = \"20m\"",
                "retry_max = \"20m\"",
                "timeout = \"10s\"",
            ]),
            ..Settings::daemon()
        }
    }

    /// For faults and load: text logs at info, up to 32 renewals at once, ECDSA keys, a
    /// 2 s timeout, retries within a second, renewal at half the lifetime, no jitter.
    pub fn stress() -> Settings {
        Settings {
            daemon: Section::of(&["log_level = \"info\"", "max_concurrent_renewals = 32"]),
            metrics: Section::of(&["listen = \"127.0.0.1:0\""]),
            defaults: Section::of(&[
                "key_algorithm = \"ecdsa-p256\"",
                "timeout = \"2s\"",
                "retry_min = \"500ms\"",
                "retry_max = \"1s\"",
                "renew_at = \"50%\"",
                "jitter = \"0%\"",
            ]),
        }
    }
}
