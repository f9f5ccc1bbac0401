//! A reader for one scrape in the classic Prometheus text format: every sample line is
//! parsed (label values unescaped), and a line that does not parse fails the test.

use std::collections::BTreeMap;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed scrape in the classic text format.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub text: String,
    pub samples: Vec<Sample>,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| parse_sample(l).unwrap_or_else(|| panic!("unparsable sample line {l:?}")))
            .collect();
        Scrape {
            text: text.to_owned(),
            samples,
        }
    }

    /// The samples named `name` whose labels include all of `labels`.
    pub fn matching(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The one sample named `name` with `labels`, if there is one; panics on several.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found = self.matching(name, labels);
        assert!(
            found.len() <= 1,
            "several samples match {name} {labels:?}: {found:?}"
        );
        found.first().map(|s| s.value)
    }

    /// Like [`Scrape::get`], but the sample must exist.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?} in\n{}", self.text))
    }

    /// The state whose `certificate_state` sample is 1 for `name`; `None` when there is
    /// not exactly one.
    pub fn state(&self, name: &str) -> Option<String> {
        let on: Vec<&Sample> = self
            .matching("kyma_certd_certificate_state", &[("name", name)])
            .into_iter()
            .filter(|s| s.value == 1.0)
            .collect();
        match on.as_slice() {
            [one] => one.labels.get("state").cloned(),
            _ => None,
        }
    }

    /// The sum of the samples named `name` whose labels include `labels`; 0 when none.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).iter().map(|s| s.value).sum()
    }

    /// Whether any series carries `name="<name>"`.
    pub fn mentions(&self, name: &str) -> bool {
        self.samples
            .iter()
            .any(|s| s.labels.get("name").map(String::as_str) == Some(name))
    }

    /// Every `renewal_failures_total` of `name`, by reason, zeros included.
    pub fn failures_by_reason(&self, name: &str) -> BTreeMap<String, f64> {
        self.matching("kyma_certd_renewal_failures_total", &[("name", name)])
            .into_iter()
            .map(|s| (s.labels["reason"].clone(), s.value))
            .collect()
    }

    /// The reasons `name` has failed for, with their counts.
    pub fn failure_reasons(&self, name: &str) -> BTreeMap<String, f64> {
        let mut reasons = self.failures_by_reason(name);
        reasons.retain(|_, count| *count > 0.0);
        reasons
    }

    /// `renewals_total` of `name` with `result`; the series must exist.
    pub fn renewals(&self, name: &str, result: &str) -> f64 {
        self.value(
            "kyma_certd_renewals_total",
            &[("name", name), ("result", result)],
        )
    }

    /// Successful renewals of `name`, 0 before the series exists.
    pub fn successes(&self, name: &str) -> f64 {
        self.sum(
            "kyma_certd_renewals_total",
            &[("name", name), ("result", "success")],
        )
    }

    /// Failed renewals of `name`, 0 before the series exists.
    pub fn failures(&self, name: &str) -> f64 {
        self.sum(
            "kyma_certd_renewals_total",
            &[("name", name), ("result", "failure")],
        )
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (name_end, mut rest) = match line.find(['{', ' ']) {
        Some(i) => (i, &line[i..]),
        None => return None,
    };
    let name = line[..name_end].to_owned();
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find('=')?;
            let key = rest[..eq].trim().to_owned();
            rest = rest[eq + 1..].strip_prefix('"')?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '"' => break i,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    other => value.push(other),
                }
            };
            labels.insert(key, value);
            rest = &rest[end + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}
