//! The routing part of the file: `routing_rules`, and each group's `strategy`, `affinity`, `fallbacks` and
//! `context_window_fallback`. Everything a rule could get wrong is refused here, at load, with its place:
//! an unknown group, a bad glob or threshold, a rule that can never match, a fallback cycle.

use std::collections::HashMap;

use http::HeaderName;

use super::file::{OneOrMany, RuleEntry, WhenEntry};
use super::glob::Glob;
use super::validate::Problems;
use crate::protocol::Protocol;
use crate::protocol::features::Features;

/// One `routing_rules` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    pub name: String,
    pub when: Condition,
    /// A group name, or a `model_list` name served directly.
    pub route: String,
}

/// A rule's `when`, as a tree. A `when` with several fields is `All` of them; `when: {}` is `All([])`,
/// which always matches.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    /// The client's model name, or the group it resolves to.
    Model(Glob),
    /// Any of these client protocols.
    Ingress(Vec<Protocol>),
    PromptTokens(Threshold),
    /// All of these features.
    Has(Features),
    /// The header's value; a missing header does not match.
    Header(HeaderName, Glob),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    pub comparison: Comparison,
    pub tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Above,
    AtLeast,
    Below,
    AtMost,
}

impl Threshold {
    pub fn holds(self, tokens: u64) -> bool {
        match self.comparison {
            Comparison::Above => tokens > self.tokens,
            Comparison::AtLeast => tokens >= self.tokens,
            Comparison::Below => tokens < self.tokens,
            Comparison::AtMost => tokens <= self.tokens,
        }
    }
}

/// Which deployment a request with a session key goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Affinity {
    /// The group's strategy picks for every request.
    #[default]
    None,
    /// Requests of one session go to the same deployment while it is healthy (weighted rendezvous hashing).
    Session,
}

pub(super) fn affinity(value: Option<&str>, default: Affinity, place: &str) -> Result<Affinity, String> {
    match value {
        None => Ok(default),
        Some("session") => Ok(Affinity::Session),
        Some("none") => Ok(Affinity::None),
        Some(other) => Err(format!(
            "{place}.affinity: unknown affinity '{other}' (expected session or none)"
        )),
    }
}

/// The rules that are sound, in file order; each problem of the others is noted.
pub(super) fn rules(entries: Vec<RuleEntry>, served: &dyn Fn(&str) -> bool, problems: &mut Problems) -> Vec<RuleSpec> {
    let mut rules: Vec<RuleSpec> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let place = format!("router_settings.routing_rules[{i}]");
        if let Some(rule) = problems.take(rule(entry, &place, &rules, served)) {
            rules.push(rule);
        }
    }
    rules
}

fn rule(
    entry: RuleEntry,
    place: &str,
    earlier: &[RuleSpec],
    served: &dyn Fn(&str) -> bool,
) -> Result<RuleSpec, String> {
    if entry.name.trim().is_empty() {
        return Err(format!("{place}.name: must not be empty"));
    }
    if earlier.iter().any(|r| r.name == entry.name) {
        return Err(format!("{place}.name: duplicate rule name '{}'", entry.name));
    }
    if !served(&entry.route) {
        return Err(format!(
            "{place}.route: unknown group '{}' (a model group or a model_name)",
            entry.route
        ));
    }
    let when = condition(entry.when, &format!("{place}.when"))?;
    for earlier in earlier {
        if always(&earlier.when) {
            return Err(format!(
                "{place}: rule '{}' can never match: rule '{}' before it matches every request",
                entry.name, earlier.name
            ));
        }
        if earlier.when == when {
            return Err(format!(
                "{place}: rule '{}' can never match: rule '{}' before it has the same `when`",
                entry.name, earlier.name
            ));
        }
    }
    Ok(RuleSpec {
        name: entry.name,
        when,
        route: entry.route,
    })
}

fn condition(when: WhenEntry, place: &str) -> Result<Condition, String> {
    let mut all = Vec::new();
    if let Some(model) = when.model {
        all.push(Condition::Model(pattern(&model, &format!("{place}.model"))?));
    }
    if let Some(ingress) = when.ingress {
        let names = ingress.into_vec();
        if names.is_empty() {
            return Err(format!("{place}.ingress: must name at least one protocol"));
        }
        let protocols = names
            .iter()
            .map(|name| {
                Protocol::ALL.into_iter().find(|p| p.ingress() == name).ok_or_else(|| {
                    format!("{place}.ingress: unknown ingress '{name}' (expected chat, messages, responses or gemini)")
                })
            })
            .collect::<Result<_, _>>()?;
        all.push(Condition::Ingress(protocols));
    }
    // Cheap tests first: `All` stops at the first that fails, so a rule whose model or header does not
    // match never has the body read.
    if let Some(headers) = when.header {
        for (name, value) in headers {
            let place = format!("{place}.header.{name}");
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("{place}: '{name}' is not a valid header name"))?;
            let serde_json::Value::String(glob) = value else {
                return Err(format!("{place}: must be a string (a glob on the header's value)"));
            };
            all.push(Condition::Header(header, pattern(&glob, &place)?));
        }
    }
    if let Some(value) = when.prompt_tokens {
        all.push(Condition::PromptTokens(threshold(
            &value,
            &format!("{place}.prompt_tokens"),
        )?));
    }
    if let Some(has) = when.has {
        all.push(Condition::Has(features(has, &format!("{place}.has"))?));
    }
    if let Some(any) = when.any {
        let place = format!("{place}.any");
        if any.is_empty() {
            return Err(format!("{place}: must list at least one condition"));
        }
        let alternatives = any
            .into_iter()
            .enumerate()
            .map(|(k, when)| condition(when, &format!("{place}[{k}]")))
            .collect::<Result<_, _>>()?;
        all.push(Condition::Any(alternatives));
    }
    if let Some(not) = when.not {
        all.push(Condition::Not(Box::new(condition(*not, &format!("{place}.not"))?)));
    }
    Ok(match all.len() {
        1 => all.pop().expect("one condition"),
        _ => Condition::All(all),
    })
}

fn pattern(glob: &str, place: &str) -> Result<Glob, String> {
    if glob.is_empty() {
        return Err(format!("{place}: must not be empty"));
    }
    Glob::new(glob).map_err(|e| format!("{place}: '{glob}' is not a valid pattern: {}", e.msg))
}

/// `">60000"`, `">= 8k"`, `"<1000"`, `"<=32k"`.
fn threshold(value: &serde_json::Value, place: &str) -> Result<Threshold, String> {
    let bad = || {
        format!(
            "{place}: {value} is not a threshold (write a comparison and a token count, e.g. \">60000\" or \"<=8k\")"
        )
    };
    let serde_json::Value::String(text) = value else {
        return Err(bad());
    };
    let text = text.trim();
    let (comparison, rest) = [
        (">=", Comparison::AtLeast),
        ("<=", Comparison::AtMost),
        (">", Comparison::Above),
        ("<", Comparison::Below),
    ]
    .into_iter()
    .find_map(|(op, comparison)| text.strip_prefix(op).map(|rest| (comparison, rest.trim())))
    .ok_or_else(bad)?;
    let (digits, scale) = match rest.strip_suffix(['k', 'K']) {
        Some(digits) => (digits, 1000),
        None => (rest, 1),
    };
    let tokens = digits
        .trim()
        .replace('_', "")
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(bad)?;
    Ok(Threshold { comparison, tokens })
}

fn features(has: OneOrMany, place: &str) -> Result<Features, String> {
    let names = has.into_vec();
    if names.is_empty() {
        return Err(format!("{place}: must name at least one feature"));
    }
    names.iter().try_fold(Features::NONE, |set, name| {
        let feature = Features::named(name).ok_or_else(|| {
            let known: Vec<&str> = Features::NAMES.iter().map(|(n, _)| *n).collect();
            format!(
                "{place}: unknown feature '{name}' (expected one of {})",
                known.join(", ")
            )
        })?;
        Ok(set | feature)
    })
}

/// Whether a condition holds for every request, whatever it holds: a rule after it can never match.
fn always(condition: &Condition) -> bool {
    match condition {
        Condition::All(all) => all.iter().all(always),
        Condition::Any(any) => any.iter().any(always),
        Condition::Not(inner) => never(inner),
        Condition::Model(glob) => glob.as_str() == "*",
        Condition::Ingress(protocols) => Protocol::ALL.iter().all(|p| protocols.contains(p)),
        Condition::PromptTokens(threshold) => threshold.comparison == Comparison::AtLeast && threshold.tokens == 0,
        Condition::Has(_) | Condition::Header(..) => false,
    }
}

/// Whether a condition holds for no request.
fn never(condition: &Condition) -> bool {
    match condition {
        Condition::All(all) => all.iter().any(never),
        Condition::Any(any) => any.iter().all(never),
        Condition::Not(inner) => always(inner),
        Condition::PromptTokens(threshold) => threshold.comparison == Comparison::Below && threshold.tokens == 0,
        _ => false,
    }
}

/// Refuses a chain of `fallbacks` and `context_window_fallback` that comes back to a group it left:
/// `edges` maps each configured group (by its index in the file) to the groups it hands requests to.
pub(super) fn check_fallback_cycles(names: &[&str], edges: &HashMap<&str, Vec<&str>>) -> Result<(), String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    fn visit<'a>(
        group: &'a str,
        edges: &HashMap<&'a str, Vec<&'a str>>,
        marks: &mut HashMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
    ) -> Result<(), Vec<&'a str>> {
        match marks.get(group).copied().unwrap_or(Mark::New) {
            Mark::Done => return Ok(()),
            Mark::OnPath => {
                let from = path.iter().position(|g| *g == group).expect("on the path");
                let mut cycle = path[from..].to_vec();
                cycle.push(group);
                return Err(cycle);
            }
            Mark::New => {}
        }
        marks.insert(group, Mark::OnPath);
        path.push(group);
        for next in edges.get(group).into_iter().flatten() {
            visit(next, edges, marks, path)?;
        }
        path.pop();
        marks.insert(group, Mark::Done);
        Ok(())
    }
    let mut marks = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        if let Err(cycle) = visit(name, edges, &mut marks, &mut Vec::new()) {
            return Err(format!(
                "router_settings.model_groups[{i}]: fallbacks form a cycle: {}",
                cycle.join(" -> ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> serde_json::Value {
        serde_json::Value::String(text.into())
    }

    #[test]
    fn thresholds() {
        let t = |text: &str| threshold(&value(text), "p");
        assert_eq!(
            t(">60000").unwrap(),
            Threshold {
                comparison: Comparison::Above,
                tokens: 60000
            }
        );
        assert_eq!(t(">= 8k").unwrap().tokens, 8000);
        assert_eq!(t("<=32K").unwrap().comparison, Comparison::AtMost);
        assert_eq!(t("<1_000").unwrap().tokens, 1000);
        for bad in ["60000", "=5", ">", ">x", ">-1", "> 99999999999999999999k"] {
            assert!(t(bad).is_err(), "{bad}");
        }
        assert!(
            threshold(&serde_json::json!(5), "p")
                .unwrap_err()
                .contains("is not a threshold")
        );
        assert!(t(">5").unwrap().holds(6) && !t(">5").unwrap().holds(5));
        assert!(t(">=5").unwrap().holds(5) && t("<=5").unwrap().holds(5) && !t("<5").unwrap().holds(5));
    }

    #[test]
    fn always_and_never() {
        let model = |g: &str| Condition::Model(Glob::new(g).unwrap());
        assert!(always(&Condition::All(vec![])));
        assert!(always(&model("*")));
        assert!(!always(&model("gpt-*")));
        assert!(always(&Condition::Any(vec![model("a"), model("*")])));
        assert!(always(&Condition::Ingress(Protocol::ALL.to_vec())));
        assert!(!always(&Condition::Ingress(vec![Protocol::OpenAi])));
        assert!(always(&Condition::Not(Box::new(Condition::Any(vec![
            Condition::PromptTokens(Threshold {
                comparison: Comparison::Below,
                tokens: 0
            })
        ])))));
        assert!(!always(&Condition::Not(Box::new(model("*x")))));
    }

    #[test]
    fn group_settings_are_checked_with_their_place() {
        let config = |groups: &str| {
            format!(
                "model_list:\n  - model_name: m\n    llm_params: {{api_type: openai, model: x, api_base: \"http://127.0.0.1:1/v1\"}}\n\
                 router_settings:\n  model_groups:\n{groups}"
            )
        };
        let error = |groups: &str| {
            crate::config::parse(&config(groups), std::path::Path::new("c.yaml"))
                .unwrap_err()
                .to_string()
        };
        let cases = [
            (
                "    - {name: a, models: [{name: m}], fallbacks: [nope]}\n",
                "model_groups[0].fallbacks[0]: unknown group 'nope'",
            ),
            (
                "    - {name: a, models: [{name: m}], fallbacks: [a]}\n",
                "model_groups[0].fallbacks[0]: a group cannot fall back to itself",
            ),
            (
                "    - {name: a, models: [{name: m}], fallbacks: [m, m]}\n",
                "model_groups[0].fallbacks[1]: 'm' is listed twice",
            ),
            (
                "    - {name: a, models: [{name: m}], context_window_fallback: zz}\n",
                "model_groups[0].context_window_fallback: unknown group 'zz'",
            ),
            (
                "    - {name: a, models: [{name: m}], fallbacks: [b]}\n    - {name: b, models: [{name: m}], context_window_fallback: a}\n",
                "fallbacks form a cycle: a -> b -> a",
            ),
            (
                "    - {name: a, models: [{name: m}], strategy: fastest}\n",
                "model_groups[0].strategy: unknown strategy 'fastest'",
            ),
            (
                "    - {name: a, models: [{name: m}], affinity: sticky}\n",
                "model_groups[0].affinity: unknown affinity 'sticky'",
            ),
        ];
        for (groups, expected) in cases {
            let message = error(groups);
            assert!(message.contains(expected), "{groups}: {message}");
        }
        let ok = crate::config::parse(
            &config("    - {name: a, models: [{name: m}], strategy: leastconn, affinity: session, fallbacks: [m]}\n"),
            std::path::Path::new("c.yaml"),
        )
        .unwrap();
        assert_eq!(ok.groups[0].strategy, super::super::Strategy::LeastConn);
        assert_eq!(ok.groups[0].affinity, Affinity::Session);
        assert_eq!(ok.groups[0].fallbacks, ["m"]);
    }

    #[test]
    fn fallback_cycles_are_named() {
        let edges = HashMap::from([("a", vec!["b"]), ("b", vec!["c", "x"]), ("c", vec!["a"])]);
        let error = check_fallback_cycles(&["a", "b", "c"], &edges).unwrap_err();
        assert!(error.contains("a -> b -> c -> a"), "{error}");
        let edges = HashMap::from([("a", vec!["b", "c"]), ("b", vec!["c"])]);
        assert!(check_fallback_cycles(&["a", "b", "c"], &edges).is_ok());
    }
}
