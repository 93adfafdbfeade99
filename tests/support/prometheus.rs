//! A small strict parser of the Prometheus / OpenMetrics text format, for asserting on `GET /metrics`:
//! every line must be a `# HELP`, `# TYPE` or `# UNIT` comment, a sample of a family whose `# TYPE` came
//! first, or the final `# EOF`. Anything else fails the test.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Default)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    /// Family name → type.
    pub types: BTreeMap<String, String>,
    pub help: BTreeMap<String, String>,
}

impl Scrape {
    /// The value of the one sample named `name` whose labels are exactly `labels`, or 0 when there is
    /// none (a counter never incremented has no series).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let wanted: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.name == name && s.labels == wanted)
            .collect();
        assert!(found.len() <= 1, "duplicate series {name}{wanted:?}");
        found.first().map_or(0.0, |s| s.value)
    }

    /// The sum over the samples named `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    pub fn matching<'a>(&'a self, name: &'a str, labels: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = &'a Sample> {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// How many series the family has (for a histogram: its `_count` samples).
    pub fn series(&self, name: &str) -> usize {
        self.samples.iter().filter(|s| s.name == name).count()
    }
}

pub fn parse(text: &str) -> Scrape {
    let mut scrape = Scrape::default();
    let mut eof = false;
    for line in text.lines() {
        assert!(!eof, "a line after # EOF: {line:?}");
        if line == "# EOF" {
            eof = true;
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let (kind, rest) = comment
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad comment {line:?}"));
            let (family, text) = rest.split_once(' ').unwrap_or((rest, ""));
            check_name(family, line);
            match kind {
                "HELP" => {
                    scrape.help.insert(family.to_owned(), text.to_owned());
                }
                "TYPE" => {
                    let known = [
                        "counter",
                        "gauge",
                        "histogram",
                        "summary",
                        "info",
                        "stateset",
                        "unknown",
                    ];
                    assert!(known.contains(&text), "unknown type in {line:?}");
                    scrape.types.insert(family.to_owned(), text.to_owned());
                }
                "UNIT" => {}
                _ => panic!("unknown comment {line:?}"),
            }
            continue;
        }
        assert!(!line.is_empty() && !line.starts_with('#'), "bad line {line:?}");
        let sample = parse_sample(line);
        assert!(
            family_of(&sample.name, &scrape.types).is_some(),
            "sample without a # TYPE before it: {line:?}"
        );
        scrape.samples.push(sample);
    }
    assert!(eof, "no # EOF at the end");
    scrape
}

/// The declared family a sample belongs to: its name, or its name without a type's suffix.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    for suffix in ["_total", "_created", "_bucket", "_count", "_sum", "_info"] {
        if let Some(base) = name.strip_suffix(suffix)
            && types.contains_key(base)
        {
            return Some(base);
        }
    }
    None
}

fn check_name(name: &str, line: &str) {
    let ok = !name.is_empty()
        && name
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c == ':' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
    assert!(ok, "bad metric name {name:?} in {line:?}");
}

fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).unwrap_or_else(|| panic!("no value in {line:?}"));
    let name = &line[..name_end];
    check_name(name, line);
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let mut key = String::new();
        loop {
            let (i, c) = chars
                .next()
                .unwrap_or_else(|| panic!("unterminated labels in {line:?}"));
            match c {
                '}' if key.is_empty() => {
                    rest = &inner[i + 1..];
                    break;
                }
                '=' => {
                    assert_eq!(
                        chars.next().map(|(_, c)| c),
                        Some('"'),
                        "unquoted label value in {line:?}"
                    );
                    let mut value = String::new();
                    loop {
                        match chars.next().map(|(_, c)| c) {
                            Some('"') => break,
                            Some('\\') => match chars.next().map(|(_, c)| c) {
                                Some('\\') => value.push('\\'),
                                Some('"') => value.push('"'),
                                Some('n') => value.push('\n'),
                                other => panic!("bad escape {other:?} in {line:?}"),
                            },
                            Some(c) => value.push(c),
                            None => panic!("unterminated label value in {line:?}"),
                        }
                    }
                    check_name(&key, line);
                    assert!(
                        labels.insert(std::mem::take(&mut key), value).is_none(),
                        "repeated label in {line:?}"
                    );
                    match chars.next() {
                        Some((_, ',')) => {}
                        Some((j, '}')) => {
                            rest = &inner[j + 1..];
                            break;
                        }
                        other => panic!("bad label separator {other:?} in {line:?}"),
                    }
                }
                c => key.push(c),
            }
        }
    }
    let mut fields = rest
        .strip_prefix(' ')
        .unwrap_or_else(|| panic!("no space before the value in {line:?}"))
        .split(' ');
    let value = fields.next().unwrap_or_default();
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().unwrap_or_else(|_| panic!("bad value {v:?} in {line:?}")),
    };
    if let Some(timestamp) = fields.next() {
        timestamp
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad timestamp in {line:?}"));
    }
    assert!(fields.next().is_none(), "trailing fields in {line:?}");
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}
